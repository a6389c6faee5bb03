// MetaStore: the chunk holder's objects in the local keyspace (store format 5). Chunk objects
// ("c/<uid>", engine/store_layout.h) have no directory entries and keep their origin in their
// inode: they are listed from their inode keys, and a keyspace of an older format is brought
// to this layout in bounded transactions (engine/meta_store.h).
#include <fmt/format.h>

#include <string>
#include <utility>
#include <vector>

#include "engine/lmdb_txn.h"
#include "engine/meta_store.h"
#include "engine/store_layout.h"

namespace shoal::engine {
using namespace lmdb;  // NOLINT: this file is the MetaStore's LMDB code

namespace {

// Records one FlattenChunkObjects transaction changes at most (a shard of millions does not
// fit one LMDB write transaction).
constexpr uint64_t kBatch = 10000;

}  // namespace

Result<ListPage> MetaStore::ListChunkObjects(std::string_view start_after, uint32_t limit) {
  if (limit == 0 || limit > 1000000) {
    return Status::InvalidArgument(fmt::format("list limit {} not in 1..1000000", limit));
  }
  ReadTxn txn(env_);
  SHOAL_RETURN_IF_ERROR(txn.status());
  // Chunk object names are short (PathKey is the name) and sort by uid.
  return ListPrefix(txn.get(), inodes_, "c/", start_after, limit,
                    [](std::string_view key, std::string_view value, DirEntry* e) -> Result<bool> {
                      if (!IsChunkObjectName(key)) return false;
                      SHOAL_ASSIGN_OR_RETURN(Inode inode, DecodeInode(value, key));
                      e->size = inode.size;
                      return true;
                    });
}

Result<uint64_t> MetaStore::InBatches(const std::function<Status(MDB_txn*, uint64_t*)>& batch) {
  uint64_t total = 0;
  for (uint64_t n = kBatch; n == kBatch;) {
    SHOAL_RETURN_IF_ERROR(RunWrite([&](MDB_txn* txn) {
      n = 0;
      return batch(txn, &n);
    }));
    total += n;
  }
  return total;
}

Result<uint64_t> MetaStore::FlattenChunkObjects() {
  // 1. Origins into their inodes, kBatch at a time (each batch deletes what it moved).
  auto move_origins = [&](MDB_txn* txn, uint64_t* n) -> Status {
    MDB_cursor* cur = nullptr;
    int rc = mdb_cursor_open(txn, origins_, &cur);
    if (rc != 0) return LmdbStatus(rc, "cursor");
    std::vector<std::pair<std::string, std::string>> moved;
    MDB_val k{}, v{};
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && moved.size() < kBatch;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      moved.emplace_back(std::string(View(k)), std::string(View(v)));
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) return LmdbStatus(rc, "origins");
    for (const auto& [key, origin] : moved) {
      std::string_view iv;
      Status g = Get(txn, inodes_, key, &iv);
      if (g.ok()) {
        SHOAL_ASSIGN_OR_RETURN(Inode inode, DecodeInode(iv, key));
        if (!inode.is_striped && !origin.empty()) {
          inode.origin = origin;
          SHOAL_RETURN_IF_ERROR(Put(txn, inodes_, key, EncodeInode(inode)));
        }
      } else if (!g.IsNotFound()) {
        return g;  // an origin whose object is gone is only dropped
      }
      SHOAL_RETURN_IF_ERROR(Del(txn, origins_, key));
    }
    *n = moved.size();
    return Status::OK();
  };
  SHOAL_ASSIGN_OR_RETURN(const uint64_t moved_origins, InBatches(move_origins));
  // 2. The chunk objects' directory entries ("c" '\0' <uid>), then the entry of "c" itself once
  //    nothing else is in it (in the world layout nothing else ever is).
  const std::string prefix = PathKey("c") + '\0';
  auto drop_entries = [&](MDB_txn* txn, uint64_t* n) -> Status {
    MDB_cursor* cur = nullptr;
    int rc = mdb_cursor_open(txn, dirents_, &cur);
    if (rc != 0) return LmdbStatus(rc, "cursor");
    std::vector<std::string> keys;
    MDB_val k = Val(prefix), v{};
    bool others = false;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && keys.size() < kBatch;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      const std::string_view key = View(k);
      if (key.substr(0, prefix.size()) != prefix) break;
      if (IsChunkObjectName("c/" + std::string(key.substr(prefix.size())))) {
        keys.emplace_back(key);
      } else {
        others = true;
      }
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) return LmdbStatus(rc, "dirents");
    for (const std::string& key : keys) SHOAL_RETURN_IF_ERROR(Del(txn, dirents_, key));
    *n = keys.size();
    const std::string dir_key = DirentKey("", "c");
    std::string_view dv;
    Status g = Get(txn, dirents_, dir_key, &dv);
    if (g.IsNotFound()) return Status::OK();
    SHOAL_RETURN_IF_ERROR(g);
    SHOAL_ASSIGN_OR_RETURN(Dirent d, DecodeDirent(dv));
    if (!d.is_dir) return Status::OK();
    d.size = d.size > *n ? d.size - *n : 0;
    if (d.size == 0 && !others) return Del(txn, dirents_, dir_key);
    return Put(txn, dirents_, dir_key, EncodeDirent(d));
  };
  SHOAL_ASSIGN_OR_RETURN(const uint64_t dropped_entries, InBatches(drop_entries));
  return moved_origins + dropped_entries;
}

}  // namespace shoal::engine
