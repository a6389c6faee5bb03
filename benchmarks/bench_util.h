// Small helpers every shoal-bench mode uses: fail loudly, aligned buffers, medians.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "engine/buffer_pool.h"
#include "shoal/result.h"

namespace shoal::bench {

// Prints "shoal-bench: what: status" and exits 1 at once (no static destructors: a world rank
// still has transport threads running).
[[noreturn]] inline void Die(const Status& s, std::string_view what) {
  std::fflush(stdout);
  std::fprintf(stderr, "shoal-bench: %.*s: %s\n", static_cast<int>(what.size()), what.data(),
               s.ToString().c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

template <typename T>
T Check(Result<T> r, std::string_view what) {
  if (!r.ok()) Die(r.status(), what);
  return std::move(r).value();
}

inline void Check(const Status& s, std::string_view what) {
  if (!s.ok()) Die(s, what);
}

// Page-aligned buffer (O_DIRECT, registrable), freed on scope exit.
struct Buffer {
  explicit Buffer(size_t n) : b(engine::BufferPool::AllocateRaw(n)), size(n) {}
  ~Buffer() { engine::BufferPool::FreeRaw(b); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  std::byte* data() const { return b.data; }
  engine::IoBuffer b;
  size_t size;
};

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace shoal::bench
