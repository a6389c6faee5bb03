// The checks and small steps of the object API that every implementation shares — one member
// (ObjectStore) and the world (Cluster) — so both refuse the same input with the same words.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "engine/inode.h"
#include "shoal/engine.h"

namespace shoal::engine {

// Largest object: chunk tables stay addressable and offsets never overflow.
inline constexpr uint64_t kMaxObjectSize = 1ull << 50;

// Validates a Create (name, chunk size, declared size); returns the object's chunk size
// (`default_chunk` when the options leave it 0). InvalidArgument naming the bad field.
Result<uint32_t> CheckCreate(std::string_view path, const CreateOptions& options,
                             uint32_t default_chunk);

// InvalidArgument for a write of `len` bytes at `offset` past the maximum object size or past
// the declared size (kUnknownSize: none).
Status CheckWrite(std::string_view path, uint64_t offset, uint64_t len, uint64_t declared);

// The bytes a read of `dst_size` at `offset` returns from an object of `size` bytes;
// InvalidArgument when offset > size.
Result<uint64_t> ReadLength(std::string_view path, uint64_t offset, uint64_t dst_size,
                            uint64_t size);

// Copies dst.size() bytes at `offset` of an inline object after checking its CRC32C
// (Corruption on mismatch, nothing copied).
Status CopyInline(const Inode& inode, std::string_view path, uint64_t offset,
                  std::span<std::byte> dst);

// Wall clock in nanoseconds since the Unix epoch: an object's seal time.
int64_t SealTimeNs();

}  // namespace shoal::engine
