// Small helpers every shoal-bench mode uses: fail loudly, aligned buffers, medians.
#pragma once

#include <sys/resource.h>

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

// User + system CPU-seconds of this process so far, all threads (the engine's I/O and
// background threads included: a row's CPU is what the whole process spent meanwhile).
inline double ProcessCpuSeconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace shoal::bench
