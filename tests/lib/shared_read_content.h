// What shared_reader_test stores and its reader processes check: object "o/<i>" holds
// SizeOf(i) bytes of Content(i, ...).
#pragma once

#include <cstddef>
#include <cstring>
#include <span>
#include <vector>

namespace shoal::testing {

inline std::vector<std::byte> Content(int i, size_t n) {
  std::vector<std::byte> b(n);
  for (size_t j = 0; j < n; ++j) b[j] = static_cast<std::byte>((i * 7 + j) & 0xff);
  return b;
}
inline size_t SizeOf(int i) { return 1000 + static_cast<size_t>(i) * 97; }

inline bool Same(std::span<const std::byte> a, std::span<const std::byte> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

inline bool Within(std::span<const std::byte> inner, std::span<const std::byte> outer) {
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

}  // namespace shoal::testing
