// How fast glibc's memcpy moves 512 MiB in one call against calls of a slice size (the async
// checkpoint's staging slices, lib/checkpoint_async.cc), and base/copy_streaming's copy in the
// same slices. Not built by CMake; run:
//   g++ -O2 -std=c++20 -I. benchmarks/memcpy_slices.cc base/copy_streaming.cc \
//     -o /tmp/memcpy_slices && /tmp/memcpy_slices
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>

#include "base/copy_streaming.h"

int main() {
  const size_t n = 512ull << 20;
  auto src = std::make_unique_for_overwrite<char[]>(n);
  auto dst = std::make_unique_for_overwrite<char[]>(n);
  std::memset(src.get(), 1, n);
  std::memset(dst.get(), 0, n);  // both touched: no page faults in the timings
  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  for (int round = 0; round < 4; ++round) {
    std::printf("round %d: one call", round);
    auto t0 = std::chrono::steady_clock::now();
    std::memcpy(dst.get(), src.get(), n);
    std::printf(" %.3f s;", secs(t0, std::chrono::steady_clock::now()));
    for (size_t slice : {8ull << 20, 64ull << 20, 128ull << 20, 256ull << 20}) {
      t0 = std::chrono::steady_clock::now();
      for (size_t o = 0; o < n; o += slice) std::memcpy(dst.get() + o, src.get() + o, slice);
      std::printf(" %zu MiB calls %.3f s;", slice >> 20, secs(t0, std::chrono::steady_clock::now()));
    }
    for (size_t slice : {8ull << 20, 128ull << 20}) {
      t0 = std::chrono::steady_clock::now();
      for (size_t o = 0; o < n; o += slice) shoal::CopyStreaming(dst.get() + o, src.get() + o, slice);
      std::printf(" streaming %zu MiB calls %.3f s;", slice >> 20,
                  secs(t0, std::chrono::steady_clock::now()));
    }
    std::printf("\n");
  }
}
