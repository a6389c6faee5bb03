// The member-to-member protocol: every operation one member asks of another, as a named op with
// a typed request and reply, and their encodings. No message bytes are built or parsed anywhere
// else (the wire header is transport/message.h; a Status travels as base/status_codec.h).
//
// Decode functions check every field: lengths against the payload, counts against what the
// remaining bytes can hold, ranges (chunk sizes and offsets, list limits), enum values, paths
// (engine/path.h) and inodes (engine/inode.h). They return InvalidArgument naming the op and the
// field, never read out of bounds, and never allocate more than the payload can justify.
// Decoded requests may borrow from the payload (std::span / std::string_view members): the
// payload must outlive them.
//
//   op                  request                      reply
//   CollectiveContribute Contribute{seq}              the member's blob (raw bytes)
//   CollectiveResult    CollectiveResult{seq, table}  empty
//   ChunkWrite          ChunkWrite{uid, cs, chunk, in, data}   empty
//   ChunkCommit         ChunkCommit{uid, path}        empty
//   ChunkDrop           UidRequest{uid}               empty
//   ChunkRead           ChunkRead{uid, cs, chunk, in, len}     ChunkReadReply{crc, data}
//   MetaCheck           PathRequest{path}             empty
//   MetaGet             PathRequest{path}             InodeReply
//   MetaGetMany         PathsRequest{paths}           InodesReply{per path: status, inode?}
//   MetaInsert          MetaInsert{path, version, inode}  VersionReply{version}
//   MetaReplace         MetaReplace{path, uid, version, inode}  VersionReply{version}
//   MetaRemove          MetaRemove{path, uid, version}    RemoveReply{version, inode?}
//   MetaList            MetaList{dir, start, limit}   MetaListReply{truncated, entries}
//   ShardPage           ShardPage{shard, after, limit}    ShardPageReply{next, records}
//   ChunkPutMany        ChunkPutMany{cs, items}       empty
//   MetaInsertMany      MetaInsertMany{records}       VersionsReply{per record: status, version?}
//   Lease               LeaseRequest{path, holder, ttl, release}  LeaseReply{granted, holder, age}
// (versions: engine/meta_store.h; 0 in a request asks the owner to assign one)
//
// Carried inside Engine::AllGather contributions by the checkpoint commit (lib/):
//   CommitPart{status, blobs}   each rank's sealed blobs, or why it could not save
//   Verdict{status}             rank 0's outcome, told to every rank
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/inode.h"
#include "shoal/checkpoint.h"
#include "shoal/engine.h"
#include "shoal/result.h"

namespace shoal::engine::protocol {

using Bytes = std::vector<std::byte>;

enum class Op : uint16_t {
  kCollectiveContribute = 1,
  kCollectiveResult = 2,
  kChunkWrite = 16,
  kChunkCommit = 17,
  kChunkDrop = 18,
  kChunkRead = 19,
  kMetaCheck = 24,
  kMetaInsert = 25,
  kMetaGet = 26,
  kMetaList = 27,
  kMetaRemove = 28,
  kMetaReplace = 29,
  kShardPage = 30,
  kMetaGetMany = 31,
  kChunkPutMany = 32,
  kMetaInsertMany = 33,
  kLease = 34,
};
inline constexpr Op kAllOps[] = {Op::kCollectiveContribute, Op::kCollectiveResult,
                                 Op::kChunkWrite,  Op::kChunkCommit, Op::kChunkDrop,
                                 Op::kChunkRead,   Op::kMetaCheck,   Op::kMetaInsert,
                                 Op::kMetaGet,     Op::kMetaList,    Op::kMetaRemove,
                                 Op::kMetaReplace, Op::kShardPage, Op::kMetaGetMany,
                                 Op::kChunkPutMany, Op::kMetaInsertMany, Op::kLease};
// "chunk-write", ...; "unknown" for a value outside the enum.
std::string_view OpName(uint16_t op);
constexpr uint16_t Wire(Op op) { return static_cast<uint16_t>(op); }

inline constexpr uint32_t kMaxListLimit = 1000000;
inline constexpr size_t kMaxCollectiveBlob = 1u << 20;
inline constexpr uint32_t kMaxWorldSize = 1u << 16;

// ---- collectives (engine/world.h) ----
struct Contribute {
  uint64_t seq = 0;
};
struct CollectiveResult {
  uint64_t seq = 0;
  std::vector<Bytes> table;  // one blob per member, in rank order
};

// ---- chunk holder ----
// Bytes of chunk `chunk` (of size `chunk_size`) of the holder's local object `uid`, at offset
// `in_chunk` in the chunk. Decode checks chunk_size is valid and the range lies in one chunk of
// an object no larger than kMaxObjectSize.
struct ChunkWrite {
  uint64_t uid = 0;
  uint32_t chunk_size = 0;
  uint64_t chunk = 0;
  uint32_t in_chunk = 0;
  std::span<const std::byte> data;  // borrowed
};
struct UidRequest {
  uint64_t uid = 0;
};
// Seals the holder's local object of `uid`, recording the world path it belongs to.
struct ChunkCommit {
  uint64_t uid = 0;
  std::string_view path;  // a valid object path
};
struct ChunkRead {
  uint64_t uid = 0;
  uint32_t chunk_size = 0;
  uint64_t chunk = 0;
  uint32_t in_chunk = 0;
  uint32_t len = 0;
};
// The holder's bytes (at most the asked length; fewer when it has fewer: the rest are zeros)
// and their CRC32C, which the reader checks.
struct ChunkReadReply {
  uint32_t crc = 0;
  std::span<const std::byte> data;  // borrowed
};
inline constexpr size_t kChunkReadReplyHead = 4 + 8;

// ---- metadata owner ----
struct PathRequest {
  std::string_view path;  // a valid object path
};
struct InodeReply {  // encoded as the inode record itself (EncodeInode): an owner sends it as stored
  Inode inode;
};
// Many lookups at one owner (Engine::StatBatch): 1..kMaxPathsPerRequest valid object paths.
inline constexpr uint32_t kMaxPathsPerRequest = 4096;
struct PathsRequest {
  std::vector<std::string_view> paths;  // borrowed
};
// One outcome per path asked, in order: the inode, or why not (NotFound, Unavailable, ...).
struct InodesReply {
  std::vector<Result<Inode>> inodes;
};
struct MetaInsert {
  std::string_view path;
  uint64_t version = 0;
  Inode inode;  // inline or striped (never local extents)
};
struct VersionReply {
  uint64_t version = 0;
};
struct MetaReplace {
  std::string_view path;
  uint64_t uid = 0;  // replace only the record of this object
  uint64_t version = 0;  // 0: the primary assigns the next one; replicas get it
  Inode inode;
};
struct MetaRemove {
  std::string_view path;
  uint64_t uid = 0;  // 0: whatever is there; else only the record of that object
  uint64_t version = 0;
};
struct RemoveReply {
  uint64_t version = 0;  // the tombstone's
  std::optional<Inode> inode;  // the removed record; none when this copy had none
};
// A page of a metadata shard's versioned records (engine/meta_store.h), for a member merging
// its copy at Open.
struct ShardPage {
  uint32_t shard = 0;
  std::string_view after;  // an index key from the previous page's `next`; "" from the start
  uint32_t limit = 0;      // 1..kMaxShardPage
};
inline constexpr uint32_t kMaxShardPage = 65536;
struct ShardRecord {
  std::string path;
  uint64_t version = 0;
  bool tombstone = false;
  std::string inode;  // EncodeInode, when not a tombstone (checked by DecodeInode)
};
struct ShardPageReply {
  std::string next;  // "" when the shard has no more
  std::vector<ShardRecord> records;
};
struct MetaList {
  std::string_view dir;  // a valid directory path ("" = root)
  std::string_view start_after;
  uint32_t limit = 0;    // 1..kMaxListLimit
};
struct MetaListReply {
  bool truncated = false;
  std::vector<DirEntry> entries;
};

// ---- batched ingest (Engine::PutBatch) ----
// Whole objects of one chunk each (at most `chunk_size` bytes), which the holder stores as its
// local objects of `uid`, all in one commit (ObjectStore::PutMany). 1..kMaxPutBatch items, uids
// not 0.
struct ChunkPutItem {
  uint64_t uid = 0;
  std::string_view path;            // the world object's (recorded as its origin)
  std::span<const std::byte> data;  // borrowed
};
struct ChunkPutMany {
  uint32_t chunk_size = 0;
  std::vector<ChunkPutItem> items;
};
// Records inserted in one transaction (MetaStore::InsertVersionedMany): 1..kMaxPutBatch of
// them, each as a MetaInsert.
struct MetaInsertMany {
  std::vector<MetaInsert> records;
};
// One outcome per record, in order: its version, or why it was refused.
struct VersionsReply {
  std::vector<Result<uint64_t>> versions;
};

// ---- leases (Engine::TryLease), at the name's primary metadata owner ----
// `release`: end `holder`'s lease (ttl ignored); else take or renew it for ttl_ms (1 ..
// kMaxLeaseMs). holder is not 0.
inline constexpr uint32_t kMaxLeaseMs = 24 * 3600 * 1000;
struct LeaseRequest {
  std::string_view path;  // a valid object path
  uint64_t holder = 0;
  uint32_t ttl_ms = 0;
  bool release = false;
};
struct LeaseReply {
  bool granted = false;
  uint64_t holder = 0;  // who holds it now
  uint64_t age_ms = 0;
};

// ---- checkpoint commit (lib/checkpoint_commit.cc) ----
struct CommitPart {
  Status status;                // not OK: this rank could not save (blobs empty)
  std::vector<BlobInfo> blobs;  // name, size, crc32c (rank is the contributor's)
};
struct Verdict {
  Status status;
};
inline constexpr size_t kMaxCommitPart = (1u << 20) - 1024;  // inside one all-gather blob

Bytes Encode(const Contribute& m);
Bytes Encode(const CollectiveResult& m);
Bytes Encode(const ChunkWrite& m);
// A ChunkWrite's fixed fields only (kChunkWriteHead bytes): the data follows as the body of a
// gathered request (transport CallGather / SetBodyHandler).
inline constexpr size_t kChunkWriteHead = 24;
Bytes EncodeHead(const ChunkWrite& m);
Bytes Encode(const UidRequest& m);
Bytes Encode(const ChunkCommit& m);
Bytes Encode(const ChunkRead& m);
Bytes Encode(const ChunkReadReply& m);
// The reply head of a ChunkRead whose `n` bytes follow (the holder writes them in place).
void EncodeChunkReadHead(uint32_t crc, uint64_t n, std::byte out[kChunkReadReplyHead]);
Bytes Encode(const PathRequest& m);
Bytes Encode(const InodeReply& m);
Bytes Encode(const PathsRequest& m);
Bytes Encode(const InodesReply& m);
Bytes Encode(const MetaInsert& m);
Bytes Encode(const MetaReplace& m);
Bytes Encode(const MetaRemove& m);
Bytes Encode(const MetaList& m);
Bytes Encode(const MetaListReply& m);
Bytes Encode(const VersionReply& m);
Bytes Encode(const RemoveReply& m);
Bytes Encode(const ShardPage& m);
Bytes Encode(const ShardPageReply& m);

Bytes Encode(const ChunkPutMany& m);
Bytes Encode(const MetaInsertMany& m);
// The same bytes from records held elsewhere (no copy of them into a MetaInsertMany).
Bytes EncodeMetaInsertMany(std::span<const MetaInsert> records);
Bytes Encode(const VersionsReply& m);
Bytes Encode(const LeaseRequest& m);
Bytes Encode(const LeaseReply& m);

Bytes Encode(const CommitPart& m);
Bytes Encode(const Verdict& m);

Status Decode(std::span<const std::byte> b, Contribute* out);
// `rank`: the contributor, recorded in every blob.
Status Decode(std::span<const std::byte> b, uint32_t rank, CommitPart* out);
Status Decode(std::span<const std::byte> b, Verdict* out);
// `world_size`: the table must have exactly that many entries.
Status Decode(std::span<const std::byte> b, uint32_t world_size, CollectiveResult* out);
Status Decode(std::span<const std::byte> b, ChunkWrite* out);
// A gathered ChunkWrite: its head (exactly kChunkWriteHead bytes) and its data, received apart.
Status DecodeHead(std::span<const std::byte> head, std::span<const std::byte> data,
                  ChunkWrite* out);
Status Decode(std::span<const std::byte> b, UidRequest* out);
Status Decode(std::span<const std::byte> b, ChunkCommit* out);
Status Decode(std::span<const std::byte> b, ChunkRead* out);
// `asked`: the length requested; a reply with more bytes is refused.
Status Decode(std::span<const std::byte> b, uint32_t asked, ChunkReadReply* out);
// The head of a ChunkReadReply whose data landed elsewhere (Transport::CallInto): `body` bytes
// of it arrived there; the head must say exactly that many, at most `asked`.
Status DecodeChunkReadHead(std::span<const std::byte> head, uint64_t body, uint32_t asked,
                           uint32_t* crc);
Status Decode(std::span<const std::byte> b, PathRequest* out);
// `path`: the object the reply is about (named in a Corruption).
Status Decode(std::span<const std::byte> b, std::string_view path, InodeReply* out);
Status Decode(std::span<const std::byte> b, PathsRequest* out);
// `paths`: those asked; the reply must hold exactly one outcome per path, never OK without an
// inode, and each inode is checked as the record of its path.
Status Decode(std::span<const std::byte> b, std::span<const std::string_view> paths,
              InodesReply* out);
Status Decode(std::span<const std::byte> b, MetaInsert* out);
Status Decode(std::span<const std::byte> b, MetaReplace* out);
Status Decode(std::span<const std::byte> b, MetaRemove* out);
Status Decode(std::span<const std::byte> b, MetaList* out);
Status Decode(std::span<const std::byte> b, uint32_t limit, MetaListReply* out);
Status Decode(std::span<const std::byte> b, VersionReply* out);
Status Decode(std::span<const std::byte> b, std::string_view path, RemoveReply* out);
Status Decode(std::span<const std::byte> b, ShardPage* out);
// `limit`: the page size asked; more records are refused.
Status Decode(std::span<const std::byte> b, uint32_t limit, ShardPageReply* out);
Status Decode(std::span<const std::byte> b, ChunkPutMany* out);
Status Decode(std::span<const std::byte> b, MetaInsertMany* out);
// `count`: the records asked; the reply must hold exactly one outcome each, versions not 0.
Status Decode(std::span<const std::byte> b, size_t count, VersionsReply* out);
Status Decode(std::span<const std::byte> b, LeaseRequest* out);
Status Decode(std::span<const std::byte> b, LeaseReply* out);

}  // namespace shoal::engine::protocol
