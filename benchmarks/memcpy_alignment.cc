// How fast glibc's memcpy moves 512 MiB from a page-aligned source to a destination at a given
// offset within a page: why the async checkpoint's staging regions start at the phase of the
// bytes copied into them (lib/staging_pool.h). Not built by CMake; run:
//   g++ -O2 -std=c++20 benchmarks/memcpy_alignment.cc -o /tmp/memcpy_alignment && /tmp/memcpy_alignment
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main() {
  const size_t n = 512ull << 20;
  auto* src = static_cast<char*>(std::aligned_alloc(4096, n));
  auto* dst = static_cast<char*>(std::aligned_alloc(4096, n + 8192));
  std::memset(src, 1, n);
  std::memset(dst, 0, n + 8192);  // both touched: no page faults in the timings
  const size_t offsets[] = {0, 16, 64, 2048, 4096};
  for (int round = 0; round < 3; ++round) {
    std::printf("round %d:", round);
    for (size_t off : offsets) {
      auto t0 = std::chrono::steady_clock::now();
      std::memcpy(dst + off, src, n);
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("  +%zu %.3f s (%.1f GB/s)", off, s, n / s / 1e9);
    }
    std::printf("\n");
  }
  std::free(src);
  std::free(dst);
}
