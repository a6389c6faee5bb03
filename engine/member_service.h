// MemberService: what a member does for the others (and for itself) — the server side of the
// protocol (engine/protocol.h), independent of the client paths.
//
//   chunk holder    keeps chunk replicas in the member's ObjectStore: chunk i of world object
//                   `uid` lives in the local object ChunkObjectName(uid) at offset i * chunk_size,
//                   so a holder's share of an object is one local object (written in the
//                   background, one fsync and one LMDB commit per object at commit, holes where
//                   it holds nothing).
//   metadata owner  keeps its shard of the world's metadata in a keyspace of the store's LMDB
//                   environment (databases "ring.*" in <store>/meta): the inode of every path
//                   placed on it, with the directory entry and size in the same transaction.
//   both            a seal whose only chunk holder and only metadata owner is this member (a
//                   world of one, a local_first object with one replica) commits the chunks'
//                   local object and the record in one transaction (ChunkCommitWithRecord).
//
// Each op has a typed method (called directly by this member's client, with no encoding) and a
// table entry that decodes a request from a peer, runs the method and encodes the reply
// (Handle). Every field of a request is checked by the protocol decoder before use.
//
// Thread-safety: all methods are thread-safe. The store and the shard must outlive the service.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>

#include "base/metrics.h"
#include "base/thread_annotations.h"
#include "engine/lease_table.h"
#include "engine/meta_store.h"
#include "engine/object_store.h"
#include "engine/protocol.h"
#include "transport/transport.h"

namespace shoal::engine {

// A chunk holder's local object records its origin: the epoch it was committed in and the world
// path it belongs to ("<epoch, 16 hex> <path>"), so a later sweep can tell an orphan.
std::string EncodeOrigin(uint64_t epoch, std::string_view path);
bool DecodeOrigin(std::string_view origin, uint64_t* epoch, std::string* path);
// The world objects whose chunks `store` holds, by their origins' paths (below `dir`, "" for
// all), each with the extent held: Engine::LocalObjects, and the CLI's view of a store alone.
Result<std::vector<LocalObject>> LocalObjectsOf(ObjectStore& store, std::string_view dir);

class MemberService {
 public:
  // `metrics` (may be null; must outlive the service) gets the chunk-write counters
  // member.remote.chunk_bytes_staged_in_place (a remote piece received straight into the
  // buffer its chunk is staged in) and member.remote.chunk_bytes_copied (copied there).
  MemberService(ObjectStore* store, MetaStore* shard, metrics::Registry* metrics = nullptr);

  // ---- chunk holder ----
  // `adopt`: the buffer req.data lies in (ObjectStore::LendWriteBuffer), taken as the chunk's
  // staging buffer when it can be (ObjectStore::Write).
  Status ChunkWrite(const protocol::ChunkWrite& req, IoBuffer* adopt = nullptr) EXCLUDES(mu_);
  // A remote ChunkWrite's body lands in a buffer of the store's pool (transport BodySink), and
  // is staged from there without a copy (the handler Install sets for kChunkWrite).
  transport::Body WriteBody(size_t length);
  transport::Reply ServeChunkWrite(std::span<const std::byte> head, transport::Body body);
  // Seals the local object of `uid`; OK again when it was sealed by an earlier commit whose
  // reply was lost; FailedPrecondition when this member holds nothing of it.
  Status ChunkCommit(uint64_t uid, std::string_view path) EXCLUDES(mu_);
  // ChunkCommit and MetaInsert (version 0: this member is the primary) in one LMDB transaction:
  // both or neither. Returns the record's version. FailedPrecondition when this member holds
  // nothing of `uid` (or has sealed it already: the two-step path is then the caller's) or when
  // the shard's keyspace is not in the store's environment.
  Result<uint64_t> ChunkCommitWithRecord(uint64_t uid, std::string_view path, Inode inode)
      EXCLUDES(mu_);
  // Aborts or removes the local object of `uid`; OK when there is none.
  Status ChunkDrop(uint64_t uid) EXCLUDES(mu_);
  // Reads the range into dst (dst.size() == req.len); *n is what the holder has (the rest of
  // the range was never written: the caller reads zeros there).
  Status ChunkRead(const protocol::ChunkRead& req, std::span<std::byte> dst, uint64_t* n);

  // Stores every item as the local object of its uid (origin: this epoch and the item's path),
  // all of them in one write pass and one commit, or none (ObjectStore::PutMany).
  Status ChunkPutMany(const protocol::ChunkPutMany& req);
  // ChunkPutMany of `chunks` and MetaInsertMany of `records` (versions 0: this member is their
  // primary owner) in one transaction: all of them or none, the first refusal the error.
  // Returns the records' versions. FailedPrecondition when the shard's keyspace is not in the
  // store's environment.
  Result<std::vector<uint64_t>> ChunkPutManyWithRecords(const protocol::ChunkPutMany& chunks,
                                                        std::span<protocol::MetaInsert> records);

  // ---- metadata owner ----
  Status MetaCheck(std::string_view path);
  Result<Inode> MetaGet(std::string_view path);
  // MetaGet of every path, in one read transaction of the shard keyspace; out[i] is paths[i]'s.
  std::vector<Result<Inode>> MetaGetMany(std::span<const std::string_view> paths);
  // MetaGet's record as stored, for the reply to another member (which decodes it).
  Result<std::string> MetaGetEncoded(std::string_view path);
  // Records are versioned (engine/meta_store.h): version 0 asks this owner to assign one (it is
  // the primary), above the current epoch's floor; a replica is given the primary's.
  Result<uint64_t> MetaInsert(std::string_view path, Inode inode, uint64_t version);
  Result<uint64_t> MetaReplace(std::string_view path, uint64_t uid, const Inode& inode,
                               uint64_t version);
  // MetaInsert of every record in one transaction (MetaStore::InsertVersionedMany): out[i] is
  // records[i]'s version, or why it was refused (the others are inserted).
  std::vector<Result<uint64_t>> MetaInsertMany(std::span<protocol::MetaInsert> records);
  // uid != 0: only the record of that object (a rollback must not remove a winner's record).
  Result<protocol::RemoveReply> MetaRemove(std::string_view path, uint64_t uid, uint64_t version);
  Result<protocol::ShardPageReply> ShardPage(uint32_t shard, std::string_view after,
                                             uint32_t limit);
  // The world's shard count and epoch, once agreed at Open (before any metadata op arrives).
  void SetEpoch(uint32_t shards, uint64_t epoch) {
    shards_.store(shards);
    epoch_.store(epoch);
  }
  static uint64_t VersionFloor(uint64_t epoch) { return epoch << 40; }
  // Shards whose copy here is still catching up in the background (engine/membership.h):
  // lookups of their paths (MetaGet, MetaCheck) are refused with Unavailable, so readers go to
  // a holder; writes are taken. Set at Open, before the world serves; CaughtUp lifts one.
  void SetBehind(const std::vector<uint32_t>& shards) EXCLUDES(behind_mu_);
  void CaughtUp(uint32_t shard) EXCLUDES(behind_mu_);
  // Shards whose copy here is left from an earlier epoch (this member neither owns nor holds
  // them now) and is being dropped in the background: nobody looks them up or writes them, and
  // listings leave out their objects and the directories only they fill. Set at Open, before
  // the world serves; Dropped lifts one.
  void SetRetired(const std::vector<uint32_t>& shards) EXCLUDES(behind_mu_);
  void Dropped(uint32_t shard) EXCLUDES(behind_mu_);
  Result<ListPage> MetaList(std::string_view dir, std::string_view start_after, uint32_t limit)
      EXCLUDES(behind_mu_);

  // ---- leases (Engine::TryLease) ----
  // Takes, renews or (req.release) ends a lease in this member's memory (engine/lease_table.h).
  protocol::LeaseReply Lease(const protocol::LeaseRequest& req);

  // A request from member `sender`, as its bytes: decode, run, encode the reply.
  transport::Reply Handle(uint16_t op, std::span<const std::byte> request);
  // Installs Handle for every member op (protocol::Op) on the transport.
  void Install(transport::Transport& transport);

 private:
  // Whether this member has a local object of `uid` open (being written).
  bool Writing(uint64_t uid) EXCLUDES(mu_);
  // Seals the open local object of `uid` with its origin (epoch, path), `also` in the same
  // transaction; forgets it as open once sealed.
  Status SealWriting(uint64_t uid, std::string_view path, uint64_t epoch,
                     const MetaStore::TxnFn& also) EXCLUDES(mu_);
  uint32_t ShardOfPath(std::string_view path) const;
  // The items of `req` as local objects of their uids (origins of `epoch`), `also` in the same
  // transaction (ObjectStore::PutMany).
  Status PutChunkObjects(const protocol::ChunkPutMany& req, uint64_t epoch,
                         const MetaStore::TxnFn& also);
  // Unavailable when `path`'s shard is still catching up here.
  Status CheckCurrent(std::string_view path) const EXCLUDES(behind_mu_);

  ObjectStore* const store_;
  MetaStore* const shard_;
  LeaseTable leases_;
  metrics::Counter* staged_in_place_ = nullptr;
  metrics::Counter* copied_ = nullptr;
  std::atomic<uint32_t> shards_{kDefaultShards};
  std::atomic<uint64_t> epoch_{0};
  mutable Mutex behind_mu_;
  std::set<uint32_t> behind_ GUARDED_BY(behind_mu_);
  std::atomic<bool> any_behind_{false};
  std::set<uint32_t> retired_ GUARDED_BY(behind_mu_);
  std::atomic<bool> any_retired_{false};
  Mutex mu_;
  // uid -> chunk size of the local objects being written (created by the first ChunkWrite).
  std::map<uint64_t, uint32_t> open_ GUARDED_BY(mu_);
};

}  // namespace shoal::engine
