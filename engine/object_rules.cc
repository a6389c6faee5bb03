#include "engine/object_rules.h"

#include <fmt/format.h>

#include <chrono>
#include <cstring>

#include "base/crc32c.h"
#include "engine/path.h"

namespace shoal::engine {

Result<uint32_t> CheckCreate(std::string_view path, const CreateOptions& co,
                             uint32_t default_chunk) {
  SHOAL_RETURN_IF_ERROR(ValidateObjectPath(path));
  uint32_t cs = co.chunk_size == 0 ? default_chunk : co.chunk_size;
  if (!IsValidChunkSize(cs)) {
    return Status::InvalidArgument(
        fmt::format("chunk size {} is not a power of two in 64 KiB..1 GiB", cs));
  }
  if (co.replicas > 16) {
    return Status::InvalidArgument(fmt::format("replicas {} not in 0..16", co.replicas));
  }
  if (co.size != kUnknownSize && co.size > kMaxObjectSize) {
    return Status::InvalidArgument(
        fmt::format("size {} above the maximum {}", co.size, kMaxObjectSize));
  }
  return cs;
}

Status CheckBatchObject(std::string_view path, uint64_t size, uint32_t chunk_size) {
  SHOAL_RETURN_IF_ERROR(ValidateObjectPath(path));
  if (size > chunk_size) {
    return Status::InvalidArgument(fmt::format(
        "\"{}\": {} bytes, more than one chunk ({}): a batch holds objects of one chunk at most, "
        "Put it on its own", path, size, chunk_size));
  }
  return Status::OK();
}

Status CheckWrite(std::string_view path, uint64_t offset, uint64_t len, uint64_t declared) {
  if (offset > kMaxObjectSize || len > kMaxObjectSize - offset) {
    return Status::InvalidArgument(
        fmt::format("write of {} bytes at {} passes the maximum object size", len, offset));
  }
  if (declared != kUnknownSize && offset + len > declared) {
    return Status::InvalidArgument(fmt::format("write [{}, {}) passes the declared size {} of \"{}\"",
                                               offset, offset + len, declared, path));
  }
  return Status::OK();
}

std::optional<uint64_t> StartRead(ReadRequest& req, const Result<Inode>& inode) {
  req.bytes_read = 0;
  if (!inode.ok()) {
    req.status = inode.status();
    return std::nullopt;
  }
  if (req.offset > inode->size) {
    req.status = Status::InvalidArgument(fmt::format(
        "read at offset {} past the end of \"{}\" ({} bytes)", req.offset, req.path, inode->size));
    return std::nullopt;
  }
  const uint64_t n = std::min<uint64_t>(req.dst.size(), inode->size - req.offset);
  req.bytes_read = n;
  req.status = Status::OK();
  if (!inode->is_inline) return n;
  if (Crc32c(inode->inline_data.data(), inode->size) != inode->inline_crc) {
    req.status = Status::Corruption(fmt::format("inline data of \"{}\": CRC32C mismatch", req.path));
  } else if (n > 0) {
    std::memcpy(req.dst.data(), inode->inline_data.data() + req.offset, n);
  }
  return std::nullopt;
}

Status NotBeingWritten(std::string_view path) {
  SHOAL_RETURN_IF_ERROR(ValidateObjectPath(path));
  return Status::FailedPrecondition(fmt::format(
      "\"{}\" is not being written by this rank (create it first; sealed objects are immutable)",
      path));
}

int64_t SealTimeNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace shoal::engine
