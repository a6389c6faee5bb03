// MetaStore: this member's metadata shard, one LMDB environment in <store>/meta.
//
// Databases:
//   inodes   PathKey(path)                    -> EncodeInode
//   dirents  PathKey(parent) '\0' name        -> u8 is_dir, u64 size (object bytes or entry count)
//   extents  u32 segment BE, u64 offset BE    -> u32 disk bytes   (every live chunk on disk)
//   meta     "format", "member_id", "next_id"
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
#include <mutex>
#include <string>
#include <string_view>

#include "engine/inode.h"
#include "shoal/engine.h"
#include "shoal/result.h"

namespace shoal::engine {

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
  // file is checked with plain reads (VerifyLmdbFile): a truncated or damaged file is refused
  // with Corruption naming it, never a SIGBUS. Every record read later is bounds-checked against
  // the file's used pages before it is decoded.
  static Result<std::unique_ptr<MetaStore>> Open(const std::string& dir, uint64_t map_size);
  ~MetaStore();

  const std::string& member_id() const { return member_id_; }

  Result<Inode> GetInode(std::string_view path);
  // OK if `path` could be created now; AlreadyExists if it is an object or directory;
  // InvalidArgument if an ancestor is an object.
  Status CheckCreatable(std::string_view path);
  Result<ListPage> List(std::string_view dir, const ListOptions& options);

  // Records a sealed object (assigning inode->id) with the checks of CheckCreatable.
  Status InsertObject(std::string_view path, Inode* inode);
  // Replaces the record of a striped object whose uid is `uid` (a repair adding replicas);
  // NotFound when the path holds no such object any more. Size and entries are unchanged.
  Status ReplaceStriped(std::string_view path, uint64_t uid, const Inode& inode);
  // Deletes a sealed object; returns its inode (whose extents the caller frees).
  Result<Inode> RemoveObject(std::string_view path);

  // Calls fn for every live extent, in (segment, offset) order.
  Status ForEachExtent(const std::function<void(uint32_t segment, uint64_t offset,
                                                uint32_t disk_bytes)>& fn);

 private:
  using TxnFn = std::function<Status(MDB_txn*)>;
  struct Request;
  MetaStore() = default;
  Status Init(const std::string& dir, uint64_t map_size);
  Status RunWrite(TxnFn fn);  // group commit
  Status CheckCreatableTxn(MDB_txn* txn, std::string_view path);

  MDB_env* env_ = nullptr;
  MDB_dbi inodes_ = 0, dirents_ = 0, extents_ = 0, meta_ = 0;
  std::string member_id_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Request*> queue_;
};

}  // namespace shoal::engine
