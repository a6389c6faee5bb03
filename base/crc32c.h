// CRC32C (Castagnoli), computed by ISA-L's crc32_iscsi (SSE4.2/PCLMUL/AVX-512 paths chosen at
// run time). Used for every chunk and inline object, and later on the wire.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shoal {

// CRC32C of `len` bytes at `data`, continuing from `crc` (0 to start).
uint32_t Crc32c(const void* data, size_t len, uint32_t crc = 0);

// The CRC32C of A followed by B from crc_a = Crc32c(A) and crc_b = Crc32c(B), B being `len_b`
// bytes long, without the bytes (zlib's crc32_combine, for the Castagnoli polynomial): a chunk's
// CRC from the CRCs of its 4 KiB blocks, so both come from one pass over the bytes.
uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

// Crc32cCombine for a fixed `len_b`, its operator computed once (a chunk's blocks).
class Crc32cAppender {
 public:
  explicit Crc32cAppender(uint64_t len_b);
  uint32_t Combine(uint32_t crc_a, uint32_t crc_b) const;

 private:
  uint32_t op_;
};

}  // namespace shoal
