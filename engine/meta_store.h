// MetaStore: a keyspace of metadata in one LMDB environment, <store>/meta. A member has two
// keyspaces in its one environment: its local objects (the chunk holder's, databases named as
// below) and its copies of the world's metadata shards (OpenKeyspace, the same databases named
// "ring.<name>"). One environment means one group commit and one fsync for both, and a write
// of both roles in one transaction (InsertObject's `also`: a seal whose chunk holder and
// metadata owner are this member commits once).
//
// Databases:
//   inodes   PathKey(path)                    -> EncodeInode
//   dirents  PathKey(parent) '\0' name        -> u8 is_dir, u64 size (object bytes or entry count)
//   extents  u32 segment BE, u64 offset BE    -> u32 disk bytes   (every live chunk on disk),
//            then, for chunks sealed by format 6, u32 CRC32C of each 4 KiB block (block sums,
//            engine/block_sums.h: a small read reads and checks only the blocks it needs)
//   meta     "format", "member_id", "membership" (engine/membership.h), "caught-up",
//            "repair-pending" (shard keyspace); format-3 stores also
//            have "next_id" (no longer read: inode ids come from the transaction, InsertTxn)
//   origins  stores before format 5 only: a local chunk object's origin, now in its inode
//            (Inode::origin), moved there by FlattenChunkObjects
// In the local keyspace, chunk objects ("c/<uid>", engine/store_layout.h) have no directory
// entries: a seal touches only their inode and extents, and ListChunkObjects pages through their
// inodes. Every other name, and every name of a shard keyspace, has the directory entries below.
// The world's shard keyspace versions its records (engine/meta_shards.cc):
//   shardidx u16 shard BE, PathKey(path)      -> u64 version, u8 tombstone, path
//   shardsum u16 shard BE                     -> u64 count, u64 hash, u64 tombstones
// A record's version orders every write of its path across epochs (epoch << 40 | sequence);
// a remove leaves a tombstone with its version, so an older copy merged later cannot bring the
// object back. shardsum keeps each shard's ShardSummary up to date in the same transaction, so
// comparing two copies of a shard costs nothing.
// A directory's entries with their sizes sit under one key prefix, so a listing page is one
// cursor scan. Directories exist while they have entries: inserting "a/b/c" creates "a" and
// "a/b" as needed, removing the last entry removes them.
//
// Writes are group-committed: concurrent callers queue; one of them runs every queued update in
// one LMDB write transaction (each in a nested transaction, so one failing update does not undo
// the others) and one fsync. LMDB's copy-on-write B+tree makes every commit atomic and
// crash-safe: after a crash the store holds exactly the committed transactions.
//
// Thread-safety: all methods are thread-safe.
#pragma once

#include <lmdb.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "engine/inode.h"
#include "engine/membership.h"
#include "shoal/engine.h"
#include "shoal/result.h"

namespace shoal::engine {
namespace lmdb {
struct MapBounds;
}

// LMDB return code -> Status (MDB_NOTFOUND -> NotFound, MDB_MAP_FULL -> NoSpace, page and
// format errors -> Corruption, errno values via ErrnoStatus).
Status LmdbStatus(int rc, std::string_view context);

// The key of a path: the path itself when short; a prefix plus a 128-bit hash when it would not
// fit LMDB's 511-byte keys together with a component name (never equal to a real path's key:
// real paths hold no control characters).
std::string PathKey(std::string_view path);

class MetaStore {
 public:
  // Opens (creating when absent) the environment in `dir`. Before LMDB maps <dir>/data.mdb, the
  // file is checked with plain reads (VerifyLmdbFile; only its meta pages when the last clean
  // close stamped it and nothing changed it since): a truncated or damaged file is refused
  // with Corruption naming it, never a SIGBUS. Every record read later is bounds-checked against
  // the file's used pages before it is decoded.
  static Result<std::unique_ptr<MetaStore>> Open(const std::string& dir, uint64_t map_size);
  // Opens the keyspace whose databases are named `prefix` + name in `base`'s environment (the
  // databases are created when absent). Its writes join `base`'s group commit; `base` must
  // outlive it. When `import_dir` holds an LMDB environment of the format before (a separate
  // <store>/ring), its records are copied into the keyspace (replacing what the keyspace
  // held: an import cut short by a crash starts over) and the directory is removed, renamed
  // first so that a crash never leaves a half-removed copy to import from.
  static Result<std::unique_ptr<MetaStore>> OpenKeyspace(MetaStore* base, std::string_view prefix,
                                                         const std::string& import_dir = {});
  ~MetaStore();

  // True when both keyspaces are in one environment (a transaction can span them).
  bool SharesEnvironment(const MetaStore& other) const { return env_ == other.env_; }

  const std::string& member_id() const { return member_id_; }

  Result<Inode> GetInode(std::string_view path);
  // GetInode of every path in one read transaction (a read batch's lookups: a transaction's
  // begin takes a reader slot under LMDB's lock). out[i] is paths[i]'s.
  std::vector<Result<Inode>> GetInodes(std::span<const std::string_view> paths);
  // The record of `path` as stored (EncodeInode), not decoded: for an owner that only passes it
  // on (the reader decodes, and so checks, it).
  Result<std::string> GetInodeBytes(std::string_view path);
  // OK if `path` could be created now; AlreadyExists if it is an object or directory;
  // InvalidArgument if an ancestor is an object.
  Status CheckCreatable(std::string_view path);
  // `keep`, when set, leaves out the objects whose path it refuses and the directories under
  // which it keeps no object (their subtree is walked until a kept object is found; meant for
  // the short time a member holds copies it is dropping: MemberService::SetRetired).
  using PathFilter = std::function<bool(std::string_view path)>;
  Result<ListPage> List(std::string_view dir, const ListOptions& options,
                        const PathFilter& keep = {});

  // Records a sealed object (assigning inode->id) with the checks of CheckCreatable; `origin`,
  // when not empty, is recorded with it (GetOrigin): a chunk holder's local object names the
  // world object it holds chunks of, so an orphan can be recognized later.
  // `also`, when set, runs in the same transaction after the insert (a write to another keyspace
  // of this environment: SharesEnvironment); its failure undoes the insert.
  using TxnFn = std::function<Status(MDB_txn*)>;
  Status InsertObject(std::string_view path, Inode* inode, std::string_view origin = {},
                      const TxnFn& also = {});
  // InsertObject of many objects in one transaction (one fsync): all of them or none; the first
  // refusal undoes the others and is returned, naming its path. `also` as InsertObject's.
  struct NewObject {
    std::string_view path;
    Inode* inode = nullptr;
    std::string_view origin;
  };
  Status InsertObjects(std::span<const NewObject> objects, const TxnFn& also = {});
  // The origin recorded with `path`; NotFound when none.
  Result<std::string> GetOrigin(std::string_view path);
  // Up to `limit` chunk objects ("c/<uid>") of the local keyspace after `start_after` (a name
  // below "c", as List gives them), in name order, with their sizes.
  Result<ListPage> ListChunkObjects(std::string_view start_after, uint32_t limit);
  // The local keyspace of a store before format 5 into this format: origins into their
  // inodes, chunk objects' directory entries removed. In transactions of bounded size, each
  // complete on its own: a crash in the middle leaves a keyspace this call finishes later.
  // Returns how many records it changed.
  Result<uint64_t> FlattenChunkObjects();
  // Deletes a sealed object; returns its inode (whose extents the caller frees).
  Result<Inode> RemoveObject(std::string_view path);

  // ---- versioned records of a world's metadata shard (engine/meta_shards.cc) ----
  // Versions: 0 asks the store to assign one, greater than every version the path had here and
  // at least `floor` (the epoch's first version); a given version is applied as it is.
  struct Versioned {
    std::string path;
    uint64_t version = 0;
    bool tombstone = false;
    std::string inode;  // EncodeInode, when not a tombstone
  };
  // Records a sealed object (CheckCreatable's rules); returns its version. FailedPrecondition
  // when a given version is not newer than the path's record or tombstone here, except that
  // the path's record at exactly that version is taken as this record (OK, nothing changes: a
  // catch-up or a retry brought it first).
  Result<uint64_t> InsertVersioned(uint32_t shard, std::string_view path, Inode* inode,
                                   uint64_t version, uint64_t floor);
  // InsertVersioned of many records in one transaction (one fsync): a record refused (its name
  // taken, a newer version here) leaves the others.
  // out[i] is records[i]'s version or why not; an error of the transaction itself is every
  // record's.
  struct VersionedInsert {
    uint32_t shard = 0;
    std::string_view path;
    Inode* inode = nullptr;
    uint64_t version = 0;
  };
  std::vector<Result<uint64_t>> InsertVersionedMany(std::span<const VersionedInsert> records,
                                                    uint64_t floor);
  // InsertVersioned inside a write transaction of this environment (another keyspace's
  // InsertObject `also`); the version assigned goes to *assigned. Its refusals (AlreadyExists,
  // FailedPrecondition, InvalidArgument) come before it writes anything, except when a given
  // version replaces a live older object here (removed first): InsertVersionedMany relies on it.
  Status InsertVersionedTxn(MDB_txn* txn, uint32_t shard, std::string_view path, Inode* inode,
                            uint64_t version, uint64_t floor, uint64_t* assigned);
  // Removes the path's object (only if its uid is `uid`, when uid != 0) and leaves a tombstone;
  // with a given version, also where this copy has no record (it missed the insert). Returns
  // the removed inode (nullopt when there was none here) and the tombstone's version.
  // NotFound (version 0 only): no object at the path.
  Result<std::pair<std::optional<Inode>, uint64_t>> RemoveVersioned(uint32_t shard,
                                                                    std::string_view path,
                                                                    uint64_t uid,
                                                                    uint64_t version,
                                                                    uint64_t floor);
  // Replaces the record of a striped object whose uid is `uid` (a repair adding replicas) and
  // returns its new version: one above the record's (version 0: the primary) or the given one
  // (a replica: NotFound unless it is newer than this copy's). NotFound when the path holds no
  // such object any more; size and entries are unchanged.
  Result<uint64_t> ReplaceVersioned(uint32_t shard, std::string_view path, uint64_t uid,
                                    const Inode& inode, uint64_t version = 0);
  // Merges one record of another copy: applied when newer than this copy's, else ignored.
  // FailedPrecondition when it cannot be applied (a directory or object in the way).
  Status Apply(uint32_t shard, const Versioned& record);
  // Apply of every record in one transaction (one commit); records that cannot be applied are
  // skipped and their FailedPrecondition appended to *conflicts.
  Status ApplyAll(uint32_t shard, const std::vector<Versioned>& records,
                  std::vector<Status>* conflicts);
  // Up to `limit` records of `shard` after index key `after` ("" = from the start), in key
  // order; *next is the key to continue after ("" = done).
  Result<std::vector<Versioned>> ShardPage(uint32_t shard, std::string_view after, uint32_t limit,
                                           std::string* next);
  // Deletes every record and tombstone of `shard`.
  Status DropShard(uint32_t shard);
  Result<std::vector<ShardSummary>> Summaries(uint32_t shards);
  // Drops the tombstones of shards [0, shards) with versions below `below`; returns how many.
  Result<uint64_t> CollectTombstones(uint32_t shards, uint64_t below);
  // Gives every record without a version (written before versioned membership) version 1 in
  // its shard. Returns how many; *skipped counts records whose path cannot be recovered from
  // their key (paths longer than 200 bytes).
  Result<uint64_t> IndexUnversioned(uint32_t shards, uint64_t* skipped);
  // The newest membership record (epoch 0 when none).
  Result<Membership> LoadMembership();
  Status SaveMembership(const Membership& m);
  // The shards this member caught up with during `epoch` (membership.h, MemberState): Add
  // records one more (a record of another epoch is replaced), Load returns the epoch and the
  // sorted shards (0 and none when nothing is recorded).
  Status AddCaughtUp(uint64_t epoch, uint32_t shard);
  Result<std::pair<uint64_t, std::vector<uint32_t>>> LoadCaughtUp();
  // Whether this member's background repair was begun and has not finished a whole pass since
  // (an engine closed, or a crash, in the middle): the next Open repairs again even when the
  // membership did not change.
  Status SetRepairPending(bool pending);
  Result<bool> RepairPending();

  // The block sums of each extent (segment, offset), all in one read transaction; an empty
  // vector for an extent without them (sealed before format 6, or no such extent).
  std::vector<std::vector<uint32_t>> GetBlockSums(
      std::span<const std::pair<uint32_t, uint64_t>> extents);

  // Calls fn for every live extent, in (segment, offset) order.
  Status ForEachExtent(const std::function<void(uint32_t segment, uint64_t offset,
                                                uint32_t disk_bytes)>& fn);

 private:
  struct Request;
  MetaStore() = default;
  Status Init(const std::string& dir, uint64_t map_size);
  // Opens (creating) the keyspace's databases, `prefix` + name, and reads or writes its format
  // and member id records.
  Status OpenDatabases(std::string_view prefix, std::string_view where);
  // OpenKeyspace's import of a separate environment in `dir` (see there).
  Status Import(const std::string& dir);
  Status RunWrite(TxnFn fn);  // group commit (the environment owner's)
  Status CheckCreatableTxn(MDB_txn* txn, std::string_view path);
  // The stored record of `path` (valid while `txn` is); NotFound naming the path.
  Status InodeRecordTxn(MDB_txn* txn, std::string_view path, std::string_view* v);
  // A chunk object of the local keyspace: kept out of the directory tables.
  bool Flat(std::string_view path) const;
  // Runs `batch` in write transactions (each one whole on its own) until one reports in *n
  // fewer records than a full batch; returns the sum (meta_chunk_objects.cc).
  Result<uint64_t> InBatches(const std::function<Status(MDB_txn*, uint64_t*)>& batch);
  // One page of the keys of `dbi` below `prefix` after prefix + `start_after`: `entry` fills
  // the entry of a key (name already set) from its value, or returns false to skip the key.
  // Whether directory `dir` holds, at any depth, an object `keep` accepts.
  Result<bool> HoldsKept(MDB_txn* txn, const std::string& dir, const PathFilter& keep);
  using EntryFn =
      std::function<Result<bool>(std::string_view key, std::string_view value, DirEntry* e)>;
  Result<ListPage> ListPrefix(MDB_txn* txn, MDB_dbi dbi, std::string_view prefix,
                              std::string_view start_after, uint32_t limit, const EntryFn& entry);
  // The bodies of InsertObject / RemoveObject inside a write transaction.
  Status InsertTxn(MDB_txn* txn, std::string_view path, Inode* inode,
                   std::string_view origin = {});
  Status RemoveTxn(MDB_txn* txn, std::string_view path, Inode* removed);
  // A merged record whose name another shard's record held here makes an object's and a
  // directory's at once ("a/b" an object, "a/b/c" one too: each acknowledged by owners that
  // held only one of the two shards, now both on this member). It is kept, readable by path,
  // with no directory entries (so it is not listed from this copy) and a mark in the meta
  // database that RemoveTxn follows; dropping it would lose an acknowledged record when this
  // copy is the last. AlreadyExists when the path has a record.
  Status InsertDetachedTxn(MDB_txn* txn, std::string_view path, Inode* inode);
  // The record itself: its id, inode and extents (InsertTxn without checks or directories).
  Status PutRecordTxn(MDB_txn* txn, std::string_view path, Inode* inode);
  Status ApplyTxn(MDB_txn* txn, uint32_t shard, const Versioned& record);
  // The shard index (meta_shards.cc).
  // The index entry of a path as its transaction found it (IndexGet), for IndexPut.
  struct IndexState {
    bool has = false;
    uint64_t version = 0;
    bool tombstone = false;
  };
  // Writes the path's entry and its shard summary; `before` is the entry the caller's
  // transaction found (so the entry is not looked up twice).
  Status IndexPut(MDB_txn* txn, uint32_t shard, std::string_view path, const IndexState& before,
                  uint64_t version, bool tombstone);
  Status IndexGet(MDB_txn* txn, uint32_t shard, std::string_view path, uint64_t* version,
                  bool* tombstone);

  std::unique_ptr<lmdb::MapBounds> bounds_;  // env_'s user context (engine/lmdb_txn.h)
  std::string dir_;  // set once opened: a clean close stamps the file as verified
  MDB_env* env_ = nullptr;
  MetaStore* owner_ = this;  // the keyspace owning env_ and its group commit
  bool flat_chunk_objects_ = false;  // the local keyspace (Open), not a shard's (OpenKeyspace)
  MDB_dbi inodes_ = 0, dirents_ = 0, extents_ = 0, meta_ = 0, shardidx_ = 0, shardsum_ = 0,
          origins_ = 0;
  std::string member_id_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Request*> queue_;
};

}  // namespace shoal::engine
