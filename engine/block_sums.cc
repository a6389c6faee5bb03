#include "engine/block_sums.h"

#include <algorithm>

#include "base/crc32c.h"

namespace shoal::engine {

uint32_t ComputeBlockSums(const std::byte* data, uint32_t length, std::vector<uint32_t>* sums) {
  static const Crc32cAppender kFullBlock(kSumBlock);
  sums->resize(SumBlocks(length));
  uint32_t crc = 0;
  for (uint32_t b = 0; b < sums->size(); ++b) {
    const uint32_t at = b * kSumBlock;
    const uint32_t n = std::min(kSumBlock, length - at);
    const uint32_t s = Crc32c(data + at, n);
    (*sums)[b] = s;
    crc = n == kSumBlock ? kFullBlock.Combine(crc, s) : Crc32cCombine(crc, s, n);
  }
  return crc;
}

BlockSpan CoverBlocks(uint32_t in, uint32_t len, uint32_t length) {
  const uint64_t end = std::min<uint64_t>(uint64_t{in} + len, length);
  BlockSpan s;
  s.begin = in / kSumBlock * kSumBlock;
  s.end = static_cast<uint32_t>((end + kSumBlock - 1) / kSumBlock * kSumBlock);
  if (s.end < s.begin) s.end = s.begin;
  return s;
}

std::optional<uint32_t> FirstBadBlock(const std::byte* data, BlockSpan span, uint32_t length,
                                      std::span<const uint32_t> sums) {
  for (uint32_t at = span.begin; at < span.end && at < length; at += kSumBlock) {
    const uint32_t b = at / kSumBlock;
    const uint32_t n = std::min(kSumBlock, length - at);
    if (b >= sums.size() || Crc32c(data + (at - span.begin), n) != sums[b]) return b;
  }
  return std::nullopt;
}

}  // namespace shoal::engine
