// The checks and small steps of the object API that every implementation shares — one member
// (ObjectStore) and the world (Cluster) — so both refuse the same input with the same words.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "engine/inode.h"
#include "shoal/engine.h"

namespace shoal::engine {

// Validates a Create (name, chunk size, declared size); returns the object's chunk size
// (`default_chunk` when the options leave it 0). InvalidArgument naming the bad field.
Result<uint32_t> CheckCreate(std::string_view path, const CreateOptions& options,
                             uint32_t default_chunk);

// InvalidArgument for a write of `len` bytes at `offset` past the maximum object size or past
// the declared size (kUnknownSize: none).
Status CheckWrite(std::string_view path, uint64_t offset, uint64_t len, uint64_t declared);
// An object of a batch (Engine::PutBatch): a valid path and at most one chunk of `chunk_size`.
Status CheckBatchObject(std::string_view path, uint64_t size, uint32_t chunk_size);

// The first steps of one read of a batch, once its inode lookup is done: the lookup's error,
// InvalidArgument for an offset past the end, bytes_read set, and inline objects copied out
// after their CRC32C check (Corruption on mismatch). Returns the byte count still to be read
// from chunks, or nullopt when the request is finished (req.status tells how).
std::optional<uint64_t> StartRead(ReadRequest& req, const Result<Inode>& inode);

// Why a Write/Seal/Abort of `path` found no object being written: InvalidArgument for a bad
// name, else FailedPrecondition (never created here, or already sealed/aborted).
Status NotBeingWritten(std::string_view path);

// Wall clock in nanoseconds since the Unix epoch: an object's seal time.
int64_t SealTimeNs();

}  // namespace shoal::engine
