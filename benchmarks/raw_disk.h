// The raw-device baseline of shoal-bench: O_DIRECT io_uring straight to one file, with the same
// block size and queue depth as the engine run it is compared with, and registered buffers.
// No checksums, no metadata, no copies: the ceiling the engine is measured against.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shoal/result.h"

namespace shoal::bench {

class Progress;

// Writes a distinct 8-byte stamp into every 4 KiB block of [p, p+n), so no two blocks written
// by a benchmark are equal (dedup-capable storage would otherwise flatter repeated data).
void StampBlocks(void* p, size_t n, uint64_t stamp);

struct RawResult {
  double seconds = 0;
  uint64_t bytes = 0;
  uint64_t ops = 0;
};

// Writes `size` bytes (a multiple of `block`) to a new file at `path`, then fdatasync.
Result<RawResult> RawSequentialWrite(const std::string& path, uint64_t size, uint32_t block,
                                     uint32_t depth, Progress* progress);
// Reads the file sequentially in `block`-sized I/Os.
Result<RawResult> RawSequentialRead(const std::string& path, uint64_t size, uint32_t block,
                                    uint32_t depth, Progress* progress);
// Reads `block` bytes at each of `offsets` (multiples of 4 KiB).
Result<RawResult> RawRandomRead(const std::string& path, const std::vector<uint64_t>& offsets,
                                uint32_t block, uint32_t depth);

}  // namespace shoal::bench
