// MetaStore: listing. A directory's entries are the keys "<dir>\0<name>" of the dirents
// database, in name order, a page at a time; a listing with a filter (a member dropping retired
// shard copies: MemberService::SetRetired) leaves out refused objects and the directories
// holding none it keeps (engine/meta_store.h).
#include <fmt/format.h>

#include <string>

#include "engine/lmdb_txn.h"
#include "engine/meta_store.h"
#include "engine/path.h"

namespace shoal::engine {
using namespace lmdb;  // NOLINT: this file is the MetaStore's LMDB code

Result<ListPage> MetaStore::List(std::string_view dir, const ListOptions& options,
                                 const PathFilter& keep) {
  if (options.limit == 0 || options.limit > 1000000) {
    return Status::InvalidArgument(fmt::format("list limit {} not in 1..1000000", options.limit));
  }
  ReadTxn txn(env_);
  SHOAL_RETURN_IF_ERROR(txn.status());
  if (!dir.empty()) {
    auto [parent, name] = SplitParent(dir);
    std::string_view v;
    Status s = Get(txn.get(), dirents_, DirentKey(parent, name), &v);
    if (s.IsNotFound()) return Status::NotFound(fmt::format("no directory \"{}\"", dir));
    SHOAL_RETURN_IF_ERROR(s);
    SHOAL_ASSIGN_OR_RETURN(Dirent d, DecodeDirent(v));
    if (!d.is_dir) return Status::NotFound(fmt::format("\"{}\" is an object, not a directory", dir));
    if (keep) {
      SHOAL_ASSIGN_OR_RETURN(bool kept, HoldsKept(txn.get(), std::string(dir), keep));
      if (!kept) return Status::NotFound(fmt::format("no directory \"{}\"", dir));
    }
  }
  std::string prefix = PathKey(dir);
  prefix.push_back('\0');
  return ListPrefix(txn.get(), dirents_, prefix, options.start_after, options.limit,
                    [&](std::string_view, std::string_view value, DirEntry* e) -> Result<bool> {
                      SHOAL_ASSIGN_OR_RETURN(Dirent d, DecodeDirent(value));
                      e->is_dir = d.is_dir;
                      e->size = d.size;
                      if (!keep) return true;
                      std::string path = dir.empty() ? e->name : fmt::format("{}/{}", dir, e->name);
                      if (!d.is_dir) return keep(path);
                      return HoldsKept(txn.get(), path, keep);
                    });
}

Result<bool> MetaStore::HoldsKept(MDB_txn* txn, const std::string& dir, const PathFilter& keep) {
  std::string prefix = PathKey(dir);
  prefix.push_back('\0');
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn, dirents_, &cur);
  if (rc != 0) return LmdbStatus(rc, "cursor");
  MDB_val k = Val(prefix), v{};
  Result<bool> found = false;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && found.ok() && !*found;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (Status c = CheckValue(txn, k); !c.ok() || !(c = CheckValue(txn, v)).ok()) {
      found = c;
      break;
    }
    const std::string_view key = View(k);
    if (key.substr(0, prefix.size()) != prefix) break;
    auto d = DecodeDirent(View(v));
    if (!d.ok()) {
      found = d.status();
      break;
    }
    const std::string path = fmt::format("{}/{}", dir, key.substr(prefix.size()));
    found = d->is_dir ? HoldsKept(txn, path, keep) : Result<bool>(keep(path));
  }
  mdb_cursor_close(cur);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbStatus(rc, "list");
  return found;
}

Result<ListPage> MetaStore::ListPrefix(MDB_txn* txn, MDB_dbi dbi, std::string_view prefix,
                                       std::string_view start_after, uint32_t limit,
                                       const EntryFn& entry) {
  const std::string start = std::string(prefix) + std::string(start_after);
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn, dbi, &cur);
  if (rc != 0) return LmdbStatus(rc, "cursor");
  ListPage page;
  MDB_val k = Val(start), v{};
  rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  Status s;
  for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (Status c = CheckValue(txn, k); !c.ok() || !(c = CheckValue(txn, v)).ok()) {
      s = c;
      break;
    }
    const std::string_view key = View(k);
    if (key.substr(0, prefix.size()) != prefix) break;
    const std::string_view name = key.substr(prefix.size());
    if (!start_after.empty() && name == start_after) continue;
    DirEntry e{std::string(name), false, 0};
    auto keep = entry(key, View(v), &e);
    if (!keep.ok()) {
      s = keep.status();
      break;
    }
    if (!*keep) continue;
    if (page.entries.size() == limit) {
      page.truncated = true;
      page.next_start_after = page.entries.back().name;
      break;
    }
    page.entries.push_back(std::move(e));
  }
  mdb_cursor_close(cur);
  SHOAL_RETURN_IF_ERROR(s);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbStatus(rc, "list");
  return page;
}

}  // namespace shoal::engine
