// Contents of the blobs the checkpoint tests save: sizes and bytes are functions of (tag, name),
// so any later world (and the test itself) can check them.
#pragma once

#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace shoal::testing {

inline uint64_t Seed(const std::string& tag, const std::string& name) {
  std::string k = tag + "/" + name;
  return XXH3_64bits(k.data(), k.size());
}

inline uint64_t SizeOf(const std::string& tag, const std::string& name) {
  uint64_t h = Seed(tag, name);
  if (name.ends_with("/meta")) return 20 + h % 200;        // a small JSON-sized blob: inline
  if (name.ends_with("/optim")) return 1000 + h % 300000;  // one or two chunks
  return (1u << 20) + h % (1u << 20);                      // several chunks
}

inline std::vector<std::byte> Content(const std::string& tag, const std::string& name,
                                      size_t size) {
  std::vector<std::byte> v(size);
  uint64_t x = Seed(tag, name) | 1;
  for (size_t i = 0; i < v.size(); ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v[i] = static_cast<std::byte>(x);
  }
  return v;
}

inline std::vector<std::byte> Content(const std::string& tag, const std::string& name) {
  return Content(tag, name, SizeOf(tag, name));
}

}  // namespace shoal::testing
