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
  if (co.size != kUnknownSize && co.size > kMaxObjectSize) {
    return Status::InvalidArgument(
        fmt::format("size {} above the maximum {}", co.size, kMaxObjectSize));
  }
  return cs;
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

Result<uint64_t> ReadLength(std::string_view path, uint64_t offset, uint64_t dst_size,
                            uint64_t size) {
  if (offset > size) {
    return Status::InvalidArgument(fmt::format(
        "read at offset {} past the end of \"{}\" ({} bytes)", offset, path, size));
  }
  return std::min<uint64_t>(dst_size, size - offset);
}

Status CopyInline(const Inode& inode, std::string_view path, uint64_t offset,
                  std::span<std::byte> dst) {
  if (Crc32c(inode.inline_data.data(), inode.size) != inode.inline_crc) {
    return Status::Corruption(fmt::format("inline data of \"{}\": CRC32C mismatch", path));
  }
  if (!dst.empty()) std::memcpy(dst.data(), inode.inline_data.data() + offset, dst.size());
  return Status::OK();
}

int64_t SealTimeNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace shoal::engine
