// Block sums: the CRC32C of every 4 KiB block of a chunk, kept beside the chunk's extent
// record (engine/meta_store.h, "extents"), so a read of a few KiB of a large chunk reads and
// verifies only the blocks it touches instead of the whole chunk (its CRC32C covers all of it).
// The chunk's CRC is combined from its blocks' CRCs (Crc32cCombine): one pass over the bytes
// gives both. Chunks written before format 6 have no block sums: their reads read the whole
// chunk, as before.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace shoal::engine {

inline constexpr uint32_t kSumBlock = 4096;

// Number of blocks (and sums) of a chunk of `length` bytes.
inline uint32_t SumBlocks(uint32_t length) { return (length + kSumBlock - 1) / kSumBlock; }

// Whether a read wanting `wanted` bytes of a chunk of `length` reads only its blocks (when the
// chunk has sums): less than half of it. Most of a chunk is read whole: one I/O, one CRC pass.
inline bool ReadByBlocks(uint64_t wanted, uint32_t length) {
  return wanted * 2 <= length && length > kSumBlock;
}

// Fills *sums with the CRC32C of each block of data[0, length) and returns the CRC32C of all
// of it.
uint32_t ComputeBlockSums(const std::byte* data, uint32_t length, std::vector<uint32_t>* sums);

// The blocks a read of [in, in + len) of a chunk of `length` bytes touches, as chunk byte
// offsets: begin is block-aligned, end is block-aligned (the chunk's disk footprint at most).
struct BlockSpan {
  uint32_t begin = 0;
  uint32_t end = 0;
};
BlockSpan CoverBlocks(uint32_t in, uint32_t len, uint32_t length);

// Checks `data`, the chunk's bytes [span.begin, span.end) as read from disk, against `sums`:
// returns the index of the first block whose logical bytes (the last block's stop at `length`)
// do not match, or nullopt when all match.
std::optional<uint32_t> FirstBadBlock(const std::byte* data, BlockSpan span, uint32_t length,
                                      std::span<const uint32_t> sums);

}  // namespace shoal::engine
