// CopyStreaming: memcpy with non-temporal stores, for large copies whose destination is not read
// again soon (an async checkpoint's staging copy: the background writer reads it later).
//
// Why not memcpy: glibc switches to non-temporal stores only above its
// x86_non_temporal_threshold, 192 MiB on this VM (ld.so --list-tunables). Below it a large copy
// goes through the cache: 128 MiB calls moved 512 MiB in 0.056-0.061 s against 0.034-0.037 s in
// one call, and this routine does it in 0.037-0.040 s in 128 MiB calls
// (benchmarks/memcpy_slices.cc). Below kStreamingMin it is memcpy: small copies are better
// served from the cache.
//
// Thread-safety: a pure function. The ranges must not overlap.
#pragma once

#include <cstddef>

namespace shoal {

inline constexpr size_t kStreamingMin = size_t{1} << 20;

void CopyStreaming(void* dst, const void* src, size_t n);

}  // namespace shoal
