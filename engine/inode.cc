#include "engine/inode.h"

#include <fmt/format.h>

#include <cstring>

#include "base/bytes.h"

namespace shoal::engine {
namespace {

constexpr uint8_t kInodeVersion = 1;
constexpr uint8_t kFlagInline = 1;
constexpr uint8_t kFlagStriped = 2;
constexpr uint8_t kFlagOwnReplicas = 4;  // with kFlagStriped: Inode::own_replicas
constexpr uint32_t kMaxLayout = 1u << 20;
constexpr size_t kExtentBytes = 4 + 8 + 4 + 4;
constexpr size_t kMaxOrigin = 64 << 10;  // "<epoch> <path>": paths are far shorter

// The optional origin tail of a local record: nothing, or one non-empty prefixed string that
// ends the record.
bool ReadOrigin(ByteReader& r, std::string* origin) {
  if (r.done()) return true;
  std::span<const std::byte> o;
  if (!r.Prefixed(kMaxOrigin, &o) || o.empty() || !r.done()) return false;
  *origin = std::string(AsChars(o));
  return true;
}

}  // namespace

bool IsValidChunkSize(uint64_t c) {
  return c >= kMinChunkSize && c <= kMaxChunkSize && (c & (c - 1)) == 0;
}

ObjectInfo InfoOf(std::string_view path, const Inode& inode) {
  ObjectInfo info;
  info.path = std::string(path);
  info.size = inode.size;
  info.chunk_size = inode.chunk_size;
  info.num_chunks = inode.NumChunks();
  info.is_inline = inode.is_inline;
  info.seal_time_ns = inode.seal_time_ns;
  info.replicas = inode.is_striped ? inode.replicas : 0;
  return info;
}

uint32_t Inode::ChunkLength(uint64_t index) const {
  uint64_t start = index * chunk_size;
  uint64_t end = std::min<uint64_t>(start + chunk_size, size);
  return static_cast<uint32_t>(end - start);
}

std::string EncodeInode(const Inode& inode) {
  ByteWriter w;
  w.Put<uint8_t>(kInodeVersion);
  w.Put<uint8_t>(inode.is_inline    ? kFlagInline
                 : inode.is_striped ? kFlagStriped | (inode.own_replicas ? kFlagOwnReplicas : 0)
                                    : 0);
  w.Put<uint64_t>(inode.id);
  w.Put<uint64_t>(inode.size);
  w.Put<uint32_t>(inode.chunk_size);
  w.Put<int64_t>(inode.seal_time_ns);
  if (inode.is_inline) {
    w.Put<uint32_t>(inode.inline_crc);
    w.Raw(inode.inline_data);
    if (!inode.origin.empty()) w.Prefixed(inode.origin);  // optional tail
  } else if (inode.is_striped) {
    w.Put<uint64_t>(inode.uid);
    w.Put<uint32_t>(inode.replicas);
    w.Put<uint32_t>(static_cast<uint32_t>(inode.layout.size()));
    for (const PlacementMember& m : inode.layout) {
      w.Prefixed(m.member_id);
      w.Prefixed(m.node);
    }
    w.Prefixed(std::span<const std::byte>(
        reinterpret_cast<const std::byte*>(inode.written.data()), inode.written.size()));
    // Optional tail (records without it decode as home -1, no copies).
    if (inode.home >= 0 || !inode.copies.empty()) {
      w.Put<int32_t>(inode.home);
      w.Put<uint32_t>(static_cast<uint32_t>(inode.copies.size()));
      for (const Inode::Copy& c : inode.copies) {
        w.Put<uint64_t>(c.chunk);
        w.Prefixed(c.member.member_id);
        w.Prefixed(c.member.node);
        w.Put<uint64_t>(c.uid);
      }
    }
  } else {
    w.Put<uint64_t>(inode.chunks.size());
    for (const Extent& e : inode.chunks) {
      w.Put<uint32_t>(e.segment);
      w.Put<uint64_t>(e.offset);
      w.Put<uint32_t>(e.length);
      w.Put<uint32_t>(e.crc);
    }
    if (!inode.origin.empty()) w.Prefixed(inode.origin);  // optional tail
  }
  return w.TakeString();
}

Result<Inode> DecodeInode(std::string_view bytes, std::string_view path) {
  auto bad = [&](std::string_view why) {
    return Status::Corruption(fmt::format("inode of \"{}\": {}", path, why));
  };
  ByteReader r(bytes);
  Inode n;
  uint8_t version = 0, flags = 0;
  if (!r.Get(&version) || !r.Get(&flags) || !r.Get(&n.id) || !r.Get(&n.size) ||
      !r.Get(&n.chunk_size) || !r.Get(&n.seal_time_ns)) {
    return bad("truncated header");
  }
  if (version != kInodeVersion) return bad(fmt::format("unknown version {}", version));
  if (flags != 0 && flags != kFlagInline && flags != kFlagStriped &&
      flags != (kFlagStriped | kFlagOwnReplicas)) {
    return bad("unknown flags");
  }
  if (!IsValidChunkSize(n.chunk_size)) return bad(fmt::format("chunk size {}", n.chunk_size));
  // Above the maximum, NumChunks() wraps: a size near 2^64 would pass with an empty chunk table.
  if (n.size > kMaxObjectSize) return bad(fmt::format("size {} above the maximum", n.size));
  n.is_inline = (flags & kFlagInline) != 0;
  if (n.is_inline) {
    std::span<const std::byte> data;
    if (!r.Get(&n.inline_crc)) return bad("truncated inline record");
    if (r.left() < n.size || !r.Raw(n.size, &data)) {
      return bad("inline data length differs from size");
    }
    n.inline_data = std::string(AsChars(data));
    if (!ReadOrigin(r, &n.origin)) return bad("trailing bytes after the inline data");
    return n;
  }
  if ((flags & kFlagStriped) != 0) {
    n.is_striped = true;
    n.own_replicas = (flags & kFlagOwnReplicas) != 0;
    uint32_t members = 0;
    if (!r.Get(&n.uid) || !r.Get(&n.replicas) || !r.Get(&members)) return bad("truncated layout");
    if (members == 0 || members > kMaxLayout || n.replicas == 0 || n.replicas > members) {
      return bad(fmt::format("layout of {} members, {} replicas", members, n.replicas));
    }
    for (uint32_t i = 0; i < members; ++i) {
      std::span<const std::byte> id, node;
      if (!r.Prefixed(64, &id) || !r.Prefixed(255, &node)) return bad("truncated layout member");
      n.layout.push_back({std::string(AsChars(id)), std::string(AsChars(node))});
    }
    std::span<const std::byte> bits;
    if (!r.Prefixed(1u << 30, &bits)) return bad("truncated chunk bitmap");
    if (bits.size() != (n.NumChunks() + 7) / 8) return bad("chunk bitmap length");
    n.written.assign(reinterpret_cast<const uint8_t*>(bits.data()),
                     reinterpret_cast<const uint8_t*>(bits.data()) + bits.size());
    if (r.done()) return n;
    uint32_t copies = 0;
    if (!r.Get(&n.home) || !r.Get(&copies)) return bad("truncated placement tail");
    if (n.home < -1 || n.home >= static_cast<int32_t>(members)) {
      return bad(fmt::format("home member {} of {}", n.home, members));
    }
    if (copies > r.left() / (8 + 1 + 1 + 8)) return bad(fmt::format("{} repaired copies", copies));
    for (uint32_t i = 0; i < copies; ++i) {
      Inode::Copy c;
      std::span<const std::byte> id, node;
      if (!r.Get(&c.chunk) || !r.Prefixed(64, &id) || !r.Prefixed(255, &node) || !r.Get(&c.uid)) {
        return bad("truncated repaired copy");
      }
      if (c.chunk >= n.NumChunks() || c.uid == 0 || id.empty() || node.empty()) {
        return bad(fmt::format("repaired copy of chunk {}", c.chunk));
      }
      c.member = {std::string(AsChars(id)), std::string(AsChars(node))};
      n.copies.push_back(std::move(c));
    }
    if (!r.done()) return bad("trailing bytes");
    return n;
  }
  uint64_t count = 0;
  if (!r.Get(&count)) return bad("truncated chunk count");
  if (count != n.NumChunks()) return bad(fmt::format("{} chunks for size {}", count, n.size));
  if (count > r.left() / kExtentBytes) return bad("chunk table length");
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
  if (!ReadOrigin(r, &n.origin)) return bad("trailing bytes after the chunk table");
  return n;
}

}  // namespace shoal::engine
