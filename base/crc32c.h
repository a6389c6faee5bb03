// CRC32C (Castagnoli), computed by ISA-L's crc32_iscsi (SSE4.2/PCLMUL/AVX-512 paths chosen at
// run time). Used for every chunk and inline object, and later on the wire.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shoal {

// CRC32C of `len` bytes at `data`, continuing from `crc` (0 to start).
uint32_t Crc32c(const void* data, size_t len, uint32_t crc = 0);

}  // namespace shoal
