#include "engine/inode.h"

#include <fmt/format.h>

#include <cstring>

namespace shoal::engine {
namespace {

constexpr uint8_t kInodeVersion = 1;
constexpr uint8_t kFlagInline = 1;
constexpr size_t kExtentBytes = 4 + 8 + 4 + 4;
constexpr size_t kHeaderBytes = 1 + 1 + 8 + 8 + 4 + 8;

template <typename T>
void Put(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
  out->append(b, sizeof(T));
}

class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  template <typename T>
  bool Get(T* v) {
    if (b_.size() < sizeof(T)) return false;
    std::memcpy(v, b_.data(), sizeof(T));
    b_.remove_prefix(sizeof(T));
    return true;
  }
  std::string_view Take(size_t n) {
    std::string_view s = b_.substr(0, n);
    b_.remove_prefix(s.size());
    return s;
  }
  size_t left() const { return b_.size(); }

 private:
  std::string_view b_;
};

}  // namespace

bool IsValidChunkSize(uint64_t c) {
  return c >= kMinChunkSize && c <= kMaxChunkSize && (c & (c - 1)) == 0;
}

uint32_t Inode::ChunkLength(uint64_t index) const {
  uint64_t start = index * chunk_size;
  uint64_t end = std::min<uint64_t>(start + chunk_size, size);
  return static_cast<uint32_t>(end - start);
}

std::string EncodeInode(const Inode& inode) {
  std::string out;
  out.reserve(kHeaderBytes + 12 + inode.inline_data.size() + inode.chunks.size() * kExtentBytes);
  Put<uint8_t>(&out, kInodeVersion);
  Put<uint8_t>(&out, inode.is_inline ? kFlagInline : 0);
  Put<uint64_t>(&out, inode.id);
  Put<uint64_t>(&out, inode.size);
  Put<uint32_t>(&out, inode.chunk_size);
  Put<int64_t>(&out, inode.seal_time_ns);
  if (inode.is_inline) {
    Put<uint32_t>(&out, inode.inline_crc);
    out.append(inode.inline_data);
  } else {
    Put<uint64_t>(&out, inode.chunks.size());
    for (const Extent& e : inode.chunks) {
      Put<uint32_t>(&out, e.segment);
      Put<uint64_t>(&out, e.offset);
      Put<uint32_t>(&out, e.length);
      Put<uint32_t>(&out, e.crc);
    }
  }
  return out;
}

Result<Inode> DecodeInode(std::string_view bytes, std::string_view path) {
  auto bad = [&](std::string_view why) {
    return Status::Corruption(fmt::format("inode of \"{}\": {}", path, why));
  };
  Reader r(bytes);
  Inode n;
  uint8_t version = 0, flags = 0;
  if (!r.Get(&version) || !r.Get(&flags) || !r.Get(&n.id) || !r.Get(&n.size) ||
      !r.Get(&n.chunk_size) || !r.Get(&n.seal_time_ns)) {
    return bad("truncated header");
  }
  if (version != kInodeVersion) return bad(fmt::format("unknown version {}", version));
  if ((flags & ~kFlagInline) != 0) return bad("unknown flags");
  if (!IsValidChunkSize(n.chunk_size)) return bad(fmt::format("chunk size {}", n.chunk_size));
  n.is_inline = (flags & kFlagInline) != 0;
  if (n.is_inline) {
    if (!r.Get(&n.inline_crc)) return bad("truncated inline record");
    if (r.left() != n.size) return bad("inline data length differs from size");
    n.inline_data = std::string(r.Take(n.size));
    return n;
  }
  uint64_t count = 0;
  if (!r.Get(&count)) return bad("truncated chunk count");
  if (count != n.NumChunks()) return bad(fmt::format("{} chunks for size {}", count, n.size));
  if (r.left() != count * kExtentBytes) return bad("chunk table length");
  n.chunks.resize(count);
  for (uint64_t i = 0; i < count; ++i) {
    Extent& e = n.chunks[i];
    (void)r.Get(&e.segment);
    (void)r.Get(&e.offset);
    (void)r.Get(&e.length);
    (void)r.Get(&e.crc);
    if (e.length != n.ChunkLength(i)) return bad(fmt::format("chunk {} length {}", i, e.length));
    if (!e.is_hole() && e.offset % 4096 != 0) return bad(fmt::format("chunk {} misaligned", i));
  }
  return n;
}

}  // namespace shoal::engine
