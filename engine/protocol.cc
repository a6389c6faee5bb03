#include "engine/protocol.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "base/bytes.h"
#include "base/status_codec.h"
#include "engine/object_rules.h"
#include "engine/path.h"

namespace shoal::engine::protocol {
namespace {

// Requests that fail a check are refused as InvalidArgument; replies as Corruption (the peer
// answered something no correct member sends).
Status BadRequest(std::string_view op, std::string_view what) {
  return Status::InvalidArgument(fmt::format("malformed {} request: {}", op, what));
}
Status BadReply(std::string_view op, std::string_view what) {
  return Status::Corruption(fmt::format("malformed {} reply: {}", op, what));
}

bool GetPath(ByteReader* r, std::string_view* out) {
  std::span<const std::byte> p;
  if (!r->Prefixed(kMaxPathBytes, &p)) return false;
  *out = AsChars(p);
  return true;
}

Status CheckChunkRange(std::string_view op, uint32_t cs, uint64_t chunk, uint32_t in,
                       uint64_t len) {
  if (!IsValidChunkSize(cs) || len == 0 || in >= cs || len > cs - in ||
      chunk >= kMaxObjectSize / cs) {
    return BadRequest(op, fmt::format("range [{}, +{}) of chunk {} (size {}) is invalid", in, len,
                                      chunk, cs));
  }
  return Status::OK();
}

Status CheckPath(std::string_view op, std::string_view path) {
  Status v = ValidateObjectPath(path);
  return v.ok() ? v : BadRequest(op, v.message());
}

void PutInode(ByteWriter* w, const Inode& inode) { w->Raw(EncodeInode(inode)); }

}  // namespace

std::string_view OpName(uint16_t op) {
  switch (static_cast<Op>(op)) {
    case Op::kCollectiveContribute: return "collective-contribute";
    case Op::kCollectiveResult: return "collective-result";
    case Op::kChunkWrite: return "chunk-write";
    case Op::kChunkCommit: return "chunk-commit";
    case Op::kChunkDrop: return "chunk-drop";
    case Op::kChunkRead: return "chunk-read";
    case Op::kMetaCheck: return "meta-check";
    case Op::kMetaInsert: return "meta-insert";
    case Op::kMetaGet: return "meta-get";
    case Op::kMetaGetMany: return "meta-get-many";
    case Op::kMetaList: return "meta-list";
    case Op::kMetaRemove: return "meta-remove";
    case Op::kMetaReplace: return "meta-replace";
    case Op::kShardPage: return "shard-page";
    case Op::kChunkPutMany: return "chunk-put-many";
    case Op::kMetaInsertMany: return "meta-insert-many";
    case Op::kLease: return "lease";
  }
  return "unknown";
}

// ---- collectives ----

Bytes Encode(const Contribute& m) {
  ByteWriter w;
  w.Put<uint64_t>(m.seq);
  return w.Take();
}

Status Decode(std::span<const std::byte> b, Contribute* out) {
  ByteReader r(b);
  if (!r.Get(&out->seq) || !r.done()) return BadRequest("collective-contribute", "length");
  return Status::OK();
}

Bytes Encode(const CollectiveResult& m) {
  ByteWriter w;
  w.Put<uint64_t>(m.seq);
  w.Put<uint32_t>(static_cast<uint32_t>(m.table.size()));
  for (const Bytes& blob : m.table) w.Prefixed(blob);
  return w.Take();
}

Status Decode(std::span<const std::byte> b, uint32_t world_size, CollectiveResult* out) {
  ByteReader r(b);
  uint32_t n = 0;
  if (!r.Get(&out->seq) || !r.Get(&n)) return BadRequest("collective-result", "header");
  if (n != world_size) {
    return BadRequest("collective-result", fmt::format("{} entries in a world of {}", n,
                                                       world_size));
  }
  if (n > r.left() / 4) return BadRequest("collective-result", "more entries than bytes");
  out->table.assign(n, {});
  for (Bytes& blob : out->table) {
    std::span<const std::byte> s;
    if (!r.Prefixed(kMaxCollectiveBlob, &s)) return BadRequest("collective-result", "entry");
    blob.assign(s.begin(), s.end());
  }
  if (!r.done()) return BadRequest("collective-result", "trailing bytes");
  return Status::OK();
}

// ---- chunk holder ----

Bytes EncodeHead(const ChunkWrite& m) {
  ByteWriter w;
  w.Put<uint64_t>(m.uid);
  w.Put<uint32_t>(m.chunk_size);
  w.Put<uint64_t>(m.chunk);
  w.Put<uint32_t>(m.in_chunk);
  return w.Take();
}

Bytes Encode(const ChunkWrite& m) {
  Bytes b = EncodeHead(m);
  const size_t at = b.size();
  b.resize(at + m.data.size());
  if (!m.data.empty()) std::memcpy(b.data() + at, m.data.data(), m.data.size());
  return b;
}

namespace {
bool GetChunkWriteHead(ByteReader& r, ChunkWrite* out) {
  return r.Get(&out->uid) && r.Get(&out->chunk_size) && r.Get(&out->chunk) &&
         r.Get(&out->in_chunk);
}
}  // namespace

Status Decode(std::span<const std::byte> b, ChunkWrite* out) {
  ByteReader r(b);
  if (!GetChunkWriteHead(r, out) || !r.Raw(r.left(), &out->data)) {
    return BadRequest("chunk-write", "header");
  }
  return CheckChunkRange("chunk-write", out->chunk_size, out->chunk, out->in_chunk,
                         out->data.size());
}

Status DecodeHead(std::span<const std::byte> head, std::span<const std::byte> data,
                  ChunkWrite* out) {
  if (head.size() != kChunkWriteHead) {
    return BadRequest("chunk-write", fmt::format("head of {} bytes", head.size()));
  }
  ByteReader r(head);
  if (!GetChunkWriteHead(r, out) || r.left() != 0) return BadRequest("chunk-write", "header");
  out->data = data;
  return CheckChunkRange("chunk-write", out->chunk_size, out->chunk, out->in_chunk,
                         out->data.size());
}

Bytes Encode(const UidRequest& m) {
  ByteWriter w;
  w.Put<uint64_t>(m.uid);
  return w.Take();
}

Status Decode(std::span<const std::byte> b, UidRequest* out) {
  ByteReader r(b);
  if (!r.Get(&out->uid) || !r.done()) return BadRequest("chunk commit/drop", "length");
  return Status::OK();
}

Bytes Encode(const ChunkRead& m) {
  ByteWriter w;
  w.Put<uint64_t>(m.uid);
  w.Put<uint32_t>(m.chunk_size);
  w.Put<uint64_t>(m.chunk);
  w.Put<uint32_t>(m.in_chunk);
  w.Put<uint32_t>(m.len);
  return w.Take();
}

Status Decode(std::span<const std::byte> b, ChunkRead* out) {
  ByteReader r(b);
  if (!r.Get(&out->uid) || !r.Get(&out->chunk_size) || !r.Get(&out->chunk) ||
      !r.Get(&out->in_chunk) || !r.Get(&out->len) || !r.done()) {
    return BadRequest("chunk-read", "length");
  }
  return CheckChunkRange("chunk-read", out->chunk_size, out->chunk, out->in_chunk, out->len);
}

void EncodeChunkReadHead(uint32_t crc, uint64_t n, std::byte out[kChunkReadReplyHead]) {
  std::memcpy(out, &crc, 4);
  std::memcpy(out + 4, &n, 8);
}

Bytes Encode(const ChunkReadReply& m) {
  Bytes b(kChunkReadReplyHead + m.data.size());
  EncodeChunkReadHead(m.crc, m.data.size(), b.data());
  if (!m.data.empty()) std::memcpy(b.data() + kChunkReadReplyHead, m.data.data(), m.data.size());
  return b;
}

Status Decode(std::span<const std::byte> b, uint32_t asked, ChunkReadReply* out) {
  ByteReader r(b);
  uint64_t n = 0;
  if (!r.Get(&out->crc) || !r.Get(&n) || n > asked || !r.Raw(n, &out->data) || !r.done()) {
    return BadReply("chunk-read", "length");
  }
  return Status::OK();
}

Status DecodeChunkReadHead(std::span<const std::byte> head, uint64_t body, uint32_t asked,
                           uint32_t* crc) {
  ByteReader r(head);
  uint64_t n = 0;
  if (!r.Get(crc) || !r.Get(&n) || !r.done() || n > asked || n != body) {
    return BadReply("chunk-read", "length");
  }
  return Status::OK();
}

// ---- metadata owner ----

Bytes Encode(const PathRequest& m) {
  ByteWriter w;
  w.Prefixed(m.path);
  return w.Take();
}

Status Decode(std::span<const std::byte> b, PathRequest* out) {
  ByteReader r(b);
  if (!GetPath(&r, &out->path) || !r.done()) return BadRequest("metadata", "path");
  return CheckPath("metadata", out->path);
}

Bytes Encode(const InodeReply& m) {
  ByteWriter w;
  PutInode(&w, m.inode);
  return w.Take();
}

Status Decode(std::span<const std::byte> b, std::string_view path, InodeReply* out) {
  auto inode = DecodeInode(AsChars(b), path);
  if (!inode.ok()) return inode.status();
  out->inode = std::move(inode).value();
  return Status::OK();
}

Bytes Encode(const PathsRequest& m) {
  ByteWriter w;
  w.Put<uint32_t>(static_cast<uint32_t>(m.paths.size()));
  for (std::string_view p : m.paths) w.Prefixed(p);
  return w.Take();
}

Status Decode(std::span<const std::byte> b, PathsRequest* out) {
  ByteReader r(b);
  uint32_t count = 0;
  constexpr size_t kMinPath = 4 + 1;
  if (!r.Get(&count)) return BadRequest("meta-get-many", "count");
  if (count < 1 || count > kMaxPathsPerRequest || count > r.left() / kMinPath) {
    return BadRequest("meta-get-many", fmt::format("{} paths (1..{} fit)", count,
                                                   std::min<size_t>(kMaxPathsPerRequest,
                                                                    r.left() / kMinPath)));
  }
  out->paths.clear();
  out->paths.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    std::string_view path;
    if (!GetPath(&r, &path)) return BadRequest("meta-get-many", "path");
    SHOAL_RETURN_IF_ERROR(CheckPath("meta-get-many", path));
    out->paths.push_back(path);
  }
  if (!r.done()) return BadRequest("meta-get-many", "trailing bytes");
  return Status::OK();
}

Bytes Encode(const InodesReply& m) {
  ByteWriter w;
  w.Put<uint32_t>(static_cast<uint32_t>(m.inodes.size()));
  for (const Result<Inode>& i : m.inodes) {
    EncodeStatus(i.ok() ? Status::OK() : i.status(), &w);
    if (i.ok()) w.Prefixed(EncodeInode(*i));
  }
  return w.Take();
}

Status Decode(std::span<const std::byte> b, std::span<const std::string_view> paths,
              InodesReply* out) {
  ByteReader r(b);
  uint32_t count = 0;
  if (!r.Get(&count) || count != paths.size()) {
    return BadReply("meta-get-many", fmt::format("{} outcomes for {} paths", count, paths.size()));
  }
  out->inodes.clear();
  out->inodes.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    Status s;
    if (!DecodeStatus(&r, kMaxPathBytes + 1024, &s)) return BadReply("meta-get-many", "status");
    if (!s.ok()) {
      out->inodes.emplace_back(std::move(s));
      continue;
    }
    std::span<const std::byte> rec;
    if (!r.Prefixed(r.left(), &rec)) return BadReply("meta-get-many", "inode length");
    auto inode = DecodeInode(AsChars(rec), paths[i]);
    if (!inode.ok()) return inode.status();
    out->inodes.emplace_back(std::move(inode).value());
  }
  if (!r.done()) return BadReply("meta-get-many", "trailing bytes");
  return Status::OK();
}

Bytes Encode(const MetaInsert& m) {
  ByteWriter w;
  w.Prefixed(m.path);
  w.Put<uint64_t>(m.version);
  PutInode(&w, m.inode);
  return w.Take();
}

namespace {

// A MetaInsert's inode, checked as the record of its path: inline or striped, never local.
Status TakeInsertedInode(std::string_view op, std::span<const std::byte> rec, MetaInsert* out) {
  auto inode = DecodeInode(AsChars(rec), out->path);
  if (!inode.ok()) return BadRequest(op, inode.status().message());
  if (!inode->is_inline && !inode->is_striped) {
    return BadRequest(op, "the inode names local extents");
  }
  out->inode = std::move(inode).value();
  return Status::OK();
}

}  // namespace

Status Decode(std::span<const std::byte> b, MetaInsert* out) {
  ByteReader r(b);
  std::span<const std::byte> rec;
  if (!GetPath(&r, &out->path) || !r.Get(&out->version) || !r.Raw(r.left(), &rec)) {
    return BadRequest("meta-insert", "header");
  }
  SHOAL_RETURN_IF_ERROR(CheckPath("meta-insert", out->path));
  return TakeInsertedInode("meta-insert", rec, out);
}

Bytes Encode(const MetaReplace& m) {
  ByteWriter w;
  w.Prefixed(m.path);
  w.Put<uint64_t>(m.uid);
  w.Put<uint64_t>(m.version);
  PutInode(&w, m.inode);
  return w.Take();
}

Status Decode(std::span<const std::byte> b, MetaReplace* out) {
  ByteReader r(b);
  std::span<const std::byte> rec;
  if (!GetPath(&r, &out->path) || !r.Get(&out->uid) || !r.Get(&out->version) ||
      !r.Raw(r.left(), &rec)) {
    return BadRequest("meta-replace", "header");
  }
  SHOAL_RETURN_IF_ERROR(CheckPath("meta-replace", out->path));
  auto inode = DecodeInode(AsChars(rec), out->path);
  if (!inode.ok()) return BadRequest("meta-replace", inode.status().message());
  if (!inode->is_striped || inode->uid != out->uid) {
    return BadRequest("meta-replace", "the inode is not the striped object named");
  }
  out->inode = std::move(inode).value();
  return Status::OK();
}

Bytes Encode(const MetaRemove& m) {
  ByteWriter w;
  w.Prefixed(m.path);
  w.Put<uint64_t>(m.uid);
  w.Put<uint64_t>(m.version);
  return w.Take();
}

Status Decode(std::span<const std::byte> b, MetaRemove* out) {
  ByteReader r(b);
  if (!GetPath(&r, &out->path) || !r.Get(&out->uid) || !r.Get(&out->version) || !r.done()) {
    return BadRequest("meta-remove", "length");
  }
  return CheckPath("meta-remove", out->path);
}

Bytes Encode(const MetaList& m) {
  ByteWriter w;
  w.Prefixed(m.dir);
  w.Prefixed(m.start_after);
  w.Put<uint32_t>(m.limit);
  return w.Take();
}

Status Decode(std::span<const std::byte> b, MetaList* out) {
  ByteReader r(b);
  if (!GetPath(&r, &out->dir) || !GetPath(&r, &out->start_after) || !r.Get(&out->limit) ||
      !r.done()) {
    return BadRequest("meta-list", "length");
  }
  Status v = ValidateDirPath(out->dir);
  if (!v.ok()) return BadRequest("meta-list", v.message());
  if (out->limit < 1 || out->limit > kMaxListLimit) {
    return BadRequest("meta-list", fmt::format("limit {} not in 1..{}", out->limit, kMaxListLimit));
  }
  return Status::OK();
}

Bytes Encode(const MetaListReply& m) {
  ByteWriter w;
  w.Put<uint8_t>(m.truncated ? 1 : 0);
  w.Put<uint32_t>(static_cast<uint32_t>(m.entries.size()));
  for (const DirEntry& e : m.entries) {
    w.Prefixed(e.name);
    w.Put<uint8_t>(e.is_dir ? 1 : 0);
    w.Put<uint64_t>(e.size);
  }
  return w.Take();
}

Status Decode(std::span<const std::byte> b, uint32_t limit, MetaListReply* out) {
  ByteReader r(b);
  uint8_t truncated = 0;
  uint32_t count = 0;
  constexpr size_t kMinEntry = 4 + 1 + 1 + 8;  // a name of at least one byte, flag, size
  if (!r.Get(&truncated) || truncated > 1 || !r.Get(&count)) return BadReply("meta-list", "head");
  if (count > limit || count > r.left() / kMinEntry) {
    return BadReply("meta-list", fmt::format("{} entries for a limit of {}", count, limit));
  }
  out->truncated = truncated != 0;
  out->entries.clear();
  out->entries.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    std::span<const std::byte> name;
    uint8_t is_dir = 0;
    uint64_t size = 0;
    if (!r.Prefixed(kMaxComponentBytes, &name) || name.empty() || !r.Get(&is_dir) ||
        is_dir > 1 || !r.Get(&size)) {
      return BadReply("meta-list", "entry");
    }
    std::string_view n = AsChars(name);
    if (n.find('/') != std::string_view::npos || !ValidateObjectPath(n).ok()) {
      return BadReply("meta-list", "entry name");
    }
    out->entries.push_back(DirEntry{std::string(n), is_dir != 0, size});
  }
  if (!r.done()) return BadReply("meta-list", "trailing bytes");
  return Status::OK();
}

// ---- checkpoint commit ----

Bytes Encode(const CommitPart& m) {
  ByteWriter w;
  EncodeStatus(m.status, &w);
  w.Put<uint32_t>(static_cast<uint32_t>(m.blobs.size()));
  for (const BlobInfo& b : m.blobs) {
    w.Prefixed(b.name);
    w.Put<uint64_t>(b.size);
    w.Put<uint32_t>(b.crc32c);
  }
  return w.Take();
}

Status Decode(std::span<const std::byte> b, uint32_t rank, CommitPart* out) {
  ByteReader r(b);
  uint32_t n = 0;
  constexpr size_t kMinBlob = 4 + 1 + 8 + 4;
  if (!DecodeStatus(&r, kMaxCommitPart, &out->status) || !r.Get(&n) || n > r.left() / kMinBlob) {
    return BadReply("commit part", fmt::format("head from rank {}", rank));
  }
  if (!out->status.ok() && n != 0) return BadReply("commit part", "blobs of a failed rank");
  out->blobs.clear();
  for (uint32_t i = 0; i < n; ++i) {
    BlobInfo blob;
    std::span<const std::byte> name;
    if (!r.Prefixed(kMaxPathBytes, &name) || name.empty() || !r.Get(&blob.size) ||
        !r.Get(&blob.crc32c)) {
      return BadReply("commit part", fmt::format("blob {} from rank {}", i, rank));
    }
    blob.name = std::string(AsChars(name));
    blob.rank = rank;
    out->blobs.push_back(std::move(blob));
  }
  if (!r.done()) return BadReply("commit part", "trailing bytes");
  return Status::OK();
}

Bytes Encode(const Verdict& m) {
  ByteWriter w;
  EncodeStatus(m.status, &w);
  return w.Take();
}

Status Decode(std::span<const std::byte> b, Verdict* out) {
  ByteReader r(b);
  if (!DecodeStatus(&r, kMaxCommitPart, &out->status) || !r.done()) {
    return BadReply("checkpoint verdict", "length");
  }
  return Status::OK();
}

Bytes Encode(const ChunkCommit& m) {
  ByteWriter w;
  w.Put<uint64_t>(m.uid);
  w.Prefixed(m.path);
  return w.Take();
}

Status Decode(std::span<const std::byte> b, ChunkCommit* out) {
  ByteReader r(b);
  if (!r.Get(&out->uid) || !GetPath(&r, &out->path) || !r.done()) {
    return BadRequest("chunk-commit", "length");
  }
  return CheckPath("chunk-commit", out->path);
}

// ---- versions and shard pages ----

Bytes Encode(const VersionReply& m) {
  ByteWriter w;
  w.Put<uint64_t>(m.version);
  return w.Take();
}

Status Decode(std::span<const std::byte> b, VersionReply* out) {
  ByteReader r(b);
  if (!r.Get(&out->version) || !r.done() || out->version == 0) {
    return BadReply("meta-insert", "version");
  }
  return Status::OK();
}

Bytes Encode(const RemoveReply& m) {
  ByteWriter w;
  w.Put<uint64_t>(m.version);
  w.Put<uint8_t>(m.inode ? 1 : 0);
  if (m.inode) PutInode(&w, *m.inode);
  return w.Take();
}

Status Decode(std::span<const std::byte> b, std::string_view path, RemoveReply* out) {
  ByteReader r(b);
  uint8_t has = 0;
  std::span<const std::byte> rec;
  if (!r.Get(&out->version) || out->version == 0 || !r.Get(&has) || has > 1 ||
      (has == 0 && !r.done())) {
    return BadReply("meta-remove", "header");
  }
  out->inode.reset();
  if (has == 1) {
    (void)r.Raw(r.left(), &rec);
    auto inode = DecodeInode(AsChars(rec), path);
    if (!inode.ok()) return BadReply("meta-remove", inode.status().message());
    out->inode = std::move(inode).value();
  }
  return Status::OK();
}

Bytes Encode(const ShardPage& m) {
  ByteWriter w;
  w.Put<uint32_t>(m.shard);
  w.Prefixed(m.after);
  w.Put<uint32_t>(m.limit);
  return w.Take();
}

Status Decode(std::span<const std::byte> b, ShardPage* out) {
  ByteReader r(b);
  std::span<const std::byte> after;
  if (!r.Get(&out->shard) || !r.Prefixed(kMaxPathBytes + 2, &after) || !r.Get(&out->limit) ||
      !r.done()) {
    return BadRequest("shard-page", "length");
  }
  out->after = AsChars(after);
  if (out->shard >= (1u << 16) || out->limit == 0 || out->limit > kMaxShardPage) {
    return BadRequest("shard-page", fmt::format("shard {} or limit {} out of range", out->shard,
                                                out->limit));
  }
  return Status::OK();
}

Bytes Encode(const ShardPageReply& m) {
  ByteWriter w;
  w.Prefixed(m.next);
  w.Put<uint32_t>(static_cast<uint32_t>(m.records.size()));
  for (const ShardRecord& rec : m.records) {
    w.Prefixed(rec.path);
    w.Put<uint64_t>(rec.version);
    w.Put<uint8_t>(rec.tombstone ? 1 : 0);
    w.Prefixed(rec.inode);
  }
  return w.Take();
}

Status Decode(std::span<const std::byte> b, uint32_t limit, ShardPageReply* out) {
  ByteReader r(b);
  std::span<const std::byte> next;
  uint32_t n = 0;
  // A record takes at least 4 + 1 + 8 + 1 + 4 bytes.
  if (!r.Prefixed(kMaxPathBytes + 2, &next) || !r.Get(&n) || n > limit || n > r.left() / 18) {
    return BadReply("shard-page", "header");
  }
  out->next = std::string(AsChars(next));
  out->records.resize(n);
  for (ShardRecord& rec : out->records) {
    std::string_view path;
    std::span<const std::byte> inode;
    uint8_t tomb = 0;
    if (!GetPath(&r, &path) || !r.Get(&rec.version) || rec.version == 0 || !r.Get(&tomb) ||
        tomb > 1 || !r.Prefixed(r.left(), &inode)) {
      return BadReply("shard-page", "record");
    }
    if (!ValidateObjectPath(path).ok()) return BadReply("shard-page", "record path");
    rec.path = std::string(path);
    rec.tombstone = tomb == 1;
    if (rec.tombstone != inode.empty()) return BadReply("shard-page", "record kind");
    if (!rec.tombstone) {
      auto decoded = DecodeInode(AsChars(inode), path);
      if (!decoded.ok()) return BadReply("shard-page", decoded.status().message());
      rec.inode = std::string(AsChars(inode));
    }
  }
  if (!r.done()) return BadReply("shard-page", "trailing bytes");
  return Status::OK();
}


// ---- batched ingest ----

Bytes Encode(const ChunkPutMany& m) {
  ByteWriter w;
  w.Put<uint32_t>(m.chunk_size);
  w.Put<uint32_t>(static_cast<uint32_t>(m.items.size()));
  for (const ChunkPutItem& i : m.items) {
    w.Put<uint64_t>(i.uid);
    w.Prefixed(i.path);
    w.Prefixed(i.data);
  }
  return w.Take();
}

Status Decode(std::span<const std::byte> b, ChunkPutMany* out) {
  ByteReader r(b);
  uint32_t count = 0;
  if (!r.Get(&out->chunk_size) || !r.Get(&count)) return BadRequest("chunk-put-many", "header");
  if (!IsValidChunkSize(out->chunk_size)) {
    return BadRequest("chunk-put-many", fmt::format("chunk size {}", out->chunk_size));
  }
  constexpr size_t kMinItem = 8 + 4 + 1 + 4;
  if (count < 1 || count > kMaxPutBatch || count > r.left() / kMinItem) {
    return BadRequest("chunk-put-many", fmt::format("{} objects", count));
  }
  out->items.clear();
  out->items.reserve(count);
  for (uint32_t k = 0; k < count; ++k) {
    ChunkPutItem i;
    if (!r.Get(&i.uid) || !GetPath(&r, &i.path) || !r.Prefixed(out->chunk_size, &i.data)) {
      return BadRequest("chunk-put-many", fmt::format("object {}", k));
    }
    if (i.uid == 0) return BadRequest("chunk-put-many", "uid 0");
    SHOAL_RETURN_IF_ERROR(CheckPath("chunk-put-many", i.path));
    out->items.push_back(i);
  }
  if (!r.done()) return BadRequest("chunk-put-many", "trailing bytes");
  return Status::OK();
}

Bytes Encode(const MetaInsertMany& m) { return EncodeMetaInsertMany(m.records); }

Bytes EncodeMetaInsertMany(std::span<const MetaInsert> records) {
  ByteWriter w;
  w.Put<uint32_t>(static_cast<uint32_t>(records.size()));
  for (const MetaInsert& i : records) {
    w.Prefixed(i.path);
    w.Put<uint64_t>(i.version);
    w.Prefixed(EncodeInode(i.inode));
  }
  return w.Take();
}

Status Decode(std::span<const std::byte> b, MetaInsertMany* out) {
  ByteReader r(b);
  uint32_t count = 0;
  constexpr size_t kMinRecord = 4 + 1 + 8 + 4;
  if (!r.Get(&count) || count < 1 || count > kMaxPutBatch || count > r.left() / kMinRecord) {
    return BadRequest("meta-insert-many", fmt::format("{} records", count));
  }
  out->records.clear();
  out->records.reserve(count);
  for (uint32_t k = 0; k < count; ++k) {
    MetaInsert m;
    std::span<const std::byte> rec;
    if (!GetPath(&r, &m.path) || !r.Get(&m.version) || !r.Prefixed(r.left(), &rec)) {
      return BadRequest("meta-insert-many", fmt::format("record {}", k));
    }
    SHOAL_RETURN_IF_ERROR(CheckPath("meta-insert-many", m.path));
    SHOAL_RETURN_IF_ERROR(TakeInsertedInode("meta-insert-many", rec, &m));
    out->records.push_back(std::move(m));
  }
  if (!r.done()) return BadRequest("meta-insert-many", "trailing bytes");
  return Status::OK();
}

Bytes Encode(const VersionsReply& m) {
  ByteWriter w;
  w.Put<uint32_t>(static_cast<uint32_t>(m.versions.size()));
  for (const Result<uint64_t>& v : m.versions) {
    EncodeStatus(v.ok() ? Status::OK() : v.status(), &w);
    if (v.ok()) w.Put<uint64_t>(*v);
  }
  return w.Take();
}

Status Decode(std::span<const std::byte> b, size_t count, VersionsReply* out) {
  ByteReader r(b);
  uint32_t n = 0;
  if (!r.Get(&n) || n != count) {
    return BadReply("meta-insert-many", fmt::format("{} outcomes for {} records", n, count));
  }
  out->versions.clear();
  out->versions.reserve(n);
  for (uint32_t k = 0; k < n; ++k) {
    Status s;
    if (!DecodeStatus(&r, kMaxPathBytes + 1024, &s)) return BadReply("meta-insert-many", "status");
    if (!s.ok()) {
      out->versions.emplace_back(std::move(s));
      continue;
    }
    uint64_t v = 0;
    if (!r.Get(&v) || v == 0) return BadReply("meta-insert-many", "version");
    out->versions.emplace_back(v);
  }
  if (!r.done()) return BadReply("meta-insert-many", "trailing bytes");
  return Status::OK();
}

// ---- leases ----

Bytes Encode(const LeaseRequest& m) {
  ByteWriter w;
  w.Prefixed(m.path);
  w.Put<uint64_t>(m.holder);
  w.Put<uint32_t>(m.ttl_ms);
  w.Put<uint8_t>(m.release ? 1 : 0);
  return w.Take();
}

Status Decode(std::span<const std::byte> b, LeaseRequest* out) {
  ByteReader r(b);
  uint8_t release = 0;
  if (!GetPath(&r, &out->path) || !r.Get(&out->holder) || !r.Get(&out->ttl_ms) ||
      !r.Get(&release) || !r.done()) {
    return BadRequest("lease", "length");
  }
  SHOAL_RETURN_IF_ERROR(CheckPath("lease", out->path));
  if (release > 1) return BadRequest("lease", "release flag");
  out->release = release == 1;
  if (out->holder == 0) return BadRequest("lease", "holder 0");
  if (!out->release && (out->ttl_ms == 0 || out->ttl_ms > kMaxLeaseMs)) {
    return BadRequest("lease", fmt::format("ttl {} ms (1..{})", out->ttl_ms, kMaxLeaseMs));
  }
  return Status::OK();
}

Bytes Encode(const LeaseReply& m) {
  ByteWriter w;
  w.Put<uint8_t>(m.granted ? 1 : 0);
  w.Put<uint64_t>(m.holder);
  w.Put<uint64_t>(m.age_ms);
  return w.Take();
}

Status Decode(std::span<const std::byte> b, LeaseReply* out) {
  ByteReader r(b);
  uint8_t granted = 0;
  if (!r.Get(&granted) || !r.Get(&out->holder) || !r.Get(&out->age_ms) || !r.done() ||
      granted > 1) {
    return BadReply("lease", "length");
  }
  out->granted = granted == 1;
  return Status::OK();
}

}  // namespace shoal::engine::protocol
