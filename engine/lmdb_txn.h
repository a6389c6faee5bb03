// LMDB helpers shared by the MetaStore's files (meta_store.cc, meta_shards.cc): value views,
// a scoped read transaction, and get/put/delete that bounds-check what they read. Internal to
// engine/.
#pragma once

#include <lmdb.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "engine/meta_store.h"
#include "shoal/result.h"

namespace shoal::engine::lmdb {

// Set while a write transaction's function runs (MetaStore::RunWrite): see CheckValue.
extern thread_local bool in_write_txn;

inline MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
inline std::string_view View(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

inline std::string DirentKey(std::string_view parent, std::string_view name) {
  std::string k = PathKey(parent);
  k.push_back('\0');
  k.append(name);
  return k;
}

inline std::string ExtentKey(uint32_t seg, uint64_t off) {
  std::string k(12, '\0');
  for (int i = 0; i < 4; ++i) k[i] = static_cast<char>(seg >> (24 - 8 * i));
  for (int i = 0; i < 8; ++i) k[4 + i] = static_cast<char>(off >> (56 - 8 * i));
  return k;
}

struct Dirent {
  bool is_dir = false;
  uint64_t size = 0;
};

inline std::string EncodeDirent(const Dirent& d) {
  std::string s(9, '\0');
  s[0] = d.is_dir ? 1 : 0;
  std::memcpy(s.data() + 1, &d.size, 8);
  return s;
}

inline Result<Dirent> DecodeDirent(std::string_view v) {
  if (v.size() != 9 || static_cast<uint8_t>(v[0]) > 1) {
    return Status::Corruption("directory entry record of wrong length or type");
  }
  Dirent d;
  d.is_dir = v[0] == 1;
  std::memcpy(&d.size, v.data() + 1, 8);
  return d;
}

// Read transaction, aborted on scope exit.
class ReadTxn {
 public:
  explicit ReadTxn(MDB_env* env) { rc_ = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn_); }
  ~ReadTxn() {
    if (txn_ != nullptr) mdb_txn_abort(txn_);
  }
  Status status() const { return rc_ == 0 ? Status::OK() : LmdbStatus(rc_, "begin read txn"); }
  MDB_txn* get() const { return txn_; }

 private:
  MDB_txn* txn_ = nullptr;
  int rc_ = 0;
};

// Corruption unless `v` lies within the pages the environment's data file holds. Values of
// clean pages point into LMDB's map of the file; a damaged size would run past the file's end,
// and touching that is SIGBUS, so it is checked before any decoder sees the bytes. Values of
// pages dirtied by a write transaction live in LMDB's heap pages, outside the map — or, once a
// large write transaction spilled them, in the map past the last committed page (the file has
// them; the committed meta does not count them yet). So only reads are checked: a write
// transaction's own pages are this process's, and what it reads of older pages was checked
// when the file was opened (engine/lmdb_check.h).

// The environment's map as CheckValue needs it, kept as the environment's user context
// (MetaStore::Init) so that a read does not ask LMDB for it each time: the map's place and size
// never change after mdb_env_open (the store never resizes it), and the used pages only grow
// while the environment is open (LMDB never shrinks its file), so a value inside the bytes last
// known used lies inside the file; one past them is checked again against LMDB's newest meta
// before it is refused.
struct MapBounds {
  uintptr_t map = 0;
  uint64_t map_size = 0;
  std::atomic<uint64_t> used{0};
};

// Reads the map and the used bytes from LMDB into *b (false when LMDB cannot say).
inline bool LoadBounds(MDB_env* env, MapBounds* b) {
  MDB_envinfo info{};
  MDB_stat st{};
  if (mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &st) != 0) return false;
  b->map = reinterpret_cast<uintptr_t>(info.me_mapaddr);
  b->map_size = info.me_mapsize;
  b->used.store((static_cast<uint64_t>(info.me_last_pgno) + 1) * st.ms_psize,
                std::memory_order_relaxed);
  return true;
}

inline Status CheckValue(MDB_txn* txn, const MDB_val& v) {
  if (in_write_txn) return Status::OK();
  MDB_env* env = mdb_txn_env(txn);
  MapBounds fresh;
  auto* b = static_cast<MapBounds*>(mdb_env_get_userctx(env));
  if (b == nullptr) {  // an environment not opened by MetaStore::Init
    if (!LoadBounds(env, &fresh)) return Status::OK();
    b = &fresh;
  }
  auto at = reinterpret_cast<uintptr_t>(v.mv_data);
  if (at < b->map || at - b->map >= b->map_size) return Status::OK();  // a dirty page
  const uint64_t off = at - b->map;
  auto inside = [&](uint64_t used) { return off <= used && v.mv_size <= used - off; };
  if (inside(b->used.load(std::memory_order_relaxed))) return Status::OK();
  MDB_envinfo info{};
  MDB_stat st{};
  if (mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &st) != 0) return Status::OK();
  const uint64_t used = (static_cast<uint64_t>(info.me_last_pgno) + 1) * st.ms_psize;
  if (inside(used)) {
    b->used.store(used, std::memory_order_relaxed);  // grown since: later reads skip this
    return Status::OK();
  }
  return Status::Corruption(fmt::format(
      "metadata record of {} bytes at {} runs past the {} bytes of used pages", v.mv_size, off,
      used));
}

// Get into *out; NotFound if absent.
inline Status Get(MDB_txn* txn, MDB_dbi dbi, std::string_view key, std::string_view* out) {
  MDB_val k = Val(key), v{};
  int rc = mdb_get(txn, dbi, &k, &v);
  if (rc != 0) return LmdbStatus(rc, "get");
  SHOAL_RETURN_IF_ERROR(CheckValue(txn, v));
  *out = View(v);
  return Status::OK();
}

inline Status Put(MDB_txn* txn, MDB_dbi dbi, std::string_view key, std::string_view value) {
  MDB_val k = Val(key), v = Val(value);
  int rc = mdb_put(txn, dbi, &k, &v, 0);
  return rc == 0 ? Status::OK() : LmdbStatus(rc, "put");
}

inline Status Del(MDB_txn* txn, MDB_dbi dbi, std::string_view key) {
  MDB_val k = Val(key);
  int rc = mdb_del(txn, dbi, &k, nullptr);
  return rc == 0 ? Status::OK() : LmdbStatus(rc, "delete");
}

}  // namespace shoal::engine::lmdb
