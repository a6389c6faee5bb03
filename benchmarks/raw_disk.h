// The raw-device baseline of shoal-bench: O_DIRECT io_uring straight to one file with registered
// buffers. No checksums, no metadata, no copies: the ceiling the engine is measured against. Its
// shape (block size and queue depth) is the disk's best of a short sweep run first
// (SweepRawShapes), not the engine's: a baseline at the engine's own shape would hide a shape
// the engine should have used. benchmarks/fio_compare.sh runs fio at the same shapes right after
// and prints how close the baseline comes to it.
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

// One shape of raw I/O and what it measured.
struct RawShape {
  uint32_t block = 0;
  uint32_t depth = 0;
  double mbps = 0;
};

// The shapes a sequential sweep tries: block sizes {1 MiB, 4 MiB, chunk_size} that divide
// chunk_size (so every size the engine moves, a multiple of it, divides too) x queue depths
// {4, 16, 32, engine_depth}.
struct RawCandidates {
  std::vector<uint32_t> blocks, depths;
};
RawCandidates SequentialCandidates(uint32_t chunk_size, uint32_t engine_depth);

// Measures sequential writes (`write`) or reads of a probe file of `bytes` at `path` at every
// block x depth (blocks that do not divide `bytes` are skipped); a read sweep reads the file a
// write sweep or RawSequentialWrite left. Returns the shapes measured, fastest first.
Result<std::vector<RawShape>> SweepRawShapes(const std::string& path, bool write, uint64_t bytes,
                                             const std::vector<uint32_t>& blocks,
                                             const std::vector<uint32_t>& depths);
// The same for random reads of `block` bytes at `offsets` over `depths`.
Result<std::vector<RawShape>> SweepRawRandomDepths(const std::string& path,
                                                   const std::vector<uint64_t>& offsets,
                                                   uint32_t block,
                                                   const std::vector<uint32_t>& depths);

}  // namespace shoal::bench
