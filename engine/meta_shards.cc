// MetaStore, the versioned records of a world's metadata shard (meta_store.h): the shard index,
// tombstones, shard summaries, merging copies, and the membership record.
#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>

#include "base/bytes.h"
#include "base/log.h"
#include "engine/lmdb_txn.h"
#include "engine/meta_store.h"

namespace shoal::engine {
using namespace lmdb;  // NOLINT: this file is the MetaStore's LMDB code

namespace {

constexpr std::string_view kMembershipKey = "membership";
constexpr std::string_view kCaughtUpKey = "caught-up";  // u64 epoch, then u32 shards, sorted
constexpr std::string_view kRepairPendingKey = "repair-pending";  // present: pending ("1")

std::string ShardPrefix(uint32_t shard) {
  return std::string{static_cast<char>(shard >> 8), static_cast<char>(shard & 0xff)};
}
std::string IndexKey(uint32_t shard, std::string_view path) {
  return ShardPrefix(shard) + PathKey(path);
}

struct IndexEntry {
  uint64_t version = 0;
  bool tombstone = false;
  std::string_view path;
};

std::string EncodeIndex(uint64_t version, bool tombstone, std::string_view path) {
  ByteWriter w;
  w.Put<uint64_t>(version);
  w.Put<uint8_t>(tombstone ? 1 : 0);
  w.Raw(path);
  return w.TakeString();
}

Result<IndexEntry> DecodeIndex(std::string_view v) {
  ByteReader r(v);
  IndexEntry e;
  uint8_t tomb = 0;
  if (!r.Get(&e.version) || !r.Get(&tomb) || tomb > 1 || r.done() || e.version == 0) {
    return Status::Corruption("shard index record of wrong length or type");
  }
  e.tombstone = tomb == 1;
  e.path = v.substr(9);
  return e;
}

struct Sum {
  uint64_t count = 0, hash = 0, tombstones = 0;
};

// A record's contribution to its shard's summary: path, version and kind (a tombstone and a
// record of the same version must not look alike).
uint64_t RecordHash(std::string_view path, uint64_t version, bool tombstone) {
  return XXH3_64bits_withSeed(path.data(), path.size(),
                              version ^ (tombstone ? 0x9E3779B97F4A7C15ull : 0));
}

}  // namespace

Status MetaStore::IndexGet(MDB_txn* txn, uint32_t shard, std::string_view path,
                           uint64_t* version, bool* tombstone) {
  std::string_view v;
  SHOAL_RETURN_IF_ERROR(Get(txn, shardidx_, IndexKey(shard, path), &v));
  SHOAL_ASSIGN_OR_RETURN(IndexEntry e, DecodeIndex(v));
  *version = e.version;
  *tombstone = e.tombstone;
  return Status::OK();
}

namespace {

Result<Sum> GetSum(MDB_txn* txn, MDB_dbi dbi, uint32_t shard) {
  std::string_view v;
  Sum sum;
  Status s = Get(txn, dbi, ShardPrefix(shard), &v);
  if (s.IsNotFound()) return sum;
  SHOAL_RETURN_IF_ERROR(s);
  if (v.size() != sizeof(Sum)) return Status::Corruption("shard summary record of wrong length");
  std::memcpy(&sum, v.data(), sizeof(Sum));
  return sum;
}

Status PutSum(MDB_txn* txn, MDB_dbi dbi, uint32_t shard, const Sum& sum) {
  if (sum.count == 0) {
    Status s = Del(txn, dbi, ShardPrefix(shard));
    return s.IsNotFound() ? Status::OK() : s;
  }
  return Put(txn, dbi, ShardPrefix(shard),
             std::string_view(reinterpret_cast<const char*>(&sum), sizeof(Sum)));
}

}  // namespace

Status MetaStore::IndexPut(MDB_txn* txn, uint32_t shard, std::string_view path,
                           const IndexState& before, uint64_t version, bool tombstone) {
  SHOAL_ASSIGN_OR_RETURN(Sum sum, GetSum(txn, shardsum_, shard));
  if (before.has) {
    sum.hash ^= RecordHash(path, before.version, before.tombstone);
    sum.tombstones -= before.tombstone ? 1 : 0;
  } else {
    sum.count++;
  }
  sum.hash ^= RecordHash(path, version, tombstone);
  sum.tombstones += tombstone ? 1 : 0;
  SHOAL_RETURN_IF_ERROR(Put(txn, shardidx_, IndexKey(shard, path), EncodeIndex(version, tombstone, path)));
  return PutSum(txn, shardsum_, shard, sum);
}

Status MetaStore::InsertVersionedTxn(MDB_txn* txn, uint32_t shard, std::string_view path,
                                     Inode* inode, uint64_t version, uint64_t floor,
                                     uint64_t* assigned) {
  uint64_t cur = 0;
  bool tomb = false;
  Status s = IndexGet(txn, shard, path, &cur, &tomb);
  const bool has = s.ok();
  if (!has && !s.IsNotFound()) return s;
  if (version == 0) {
    *assigned = std::max(has ? cur + 1 : 0, floor);
  } else {
    if (has && cur == version && !tomb) {
      // This very record is here already (versions are unique in a shard): a background
      // catch-up pulled it from the primary before the seal's own insert arrived, or the
      // insert is a retry. Done, not a conflict.
      *assigned = version;
      return Status::OK();
    }
    if (has && cur >= version) {
      return Status::FailedPrecondition(fmt::format(
          "\"{}\" has a newer record here (version {:x} >= {:x})", path, cur, version));
    }
    *assigned = version;
    if (has && !tomb) {  // an older object this copy still has (it missed a remove)
      Inode old;
      SHOAL_RETURN_IF_ERROR(RemoveTxn(txn, path, &old));
    }
  }
  SHOAL_RETURN_IF_ERROR(InsertTxn(txn, path, inode));
  return IndexPut(txn, shard, path, {has, cur, tomb}, *assigned, false);
}

Result<uint64_t> MetaStore::InsertVersioned(uint32_t shard, std::string_view path, Inode* inode,
                                            uint64_t version, uint64_t floor) {
  uint64_t assigned = 0;
  Status st = RunWrite([&](MDB_txn* txn) {
    return InsertVersionedTxn(txn, shard, path, inode, version, floor, &assigned);
  });
  if (!st.ok()) return st;
  return assigned;
}

std::vector<Result<uint64_t>> MetaStore::InsertVersionedMany(
    std::span<const VersionedInsert> records, uint64_t floor) {
  std::vector<Result<uint64_t>> out(records.size(), Status::Internal("not inserted"));
  // No nested transaction per record (each costs LMDB a dirty-page list): InsertVersionedTxn
  // refuses before it writes anything, except where it removes an older object first; a
  // refusal there fails the transaction.
  Status st = RunWrite([&](MDB_txn* txn) -> Status {
    for (size_t i = 0; i < records.size(); ++i) {
      const VersionedInsert& rec = records[i];
      bool removes_first = false;
      if (rec.version != 0) {
        uint64_t cur = 0;
        bool tomb = false;
        Status s = IndexGet(txn, rec.shard, rec.path, &cur, &tomb);
        if (!s.ok() && !s.IsNotFound()) return s;
        removes_first = s.ok() && !tomb && cur < rec.version;
      }
      uint64_t assigned = 0;
      Status s = InsertVersionedTxn(txn, rec.shard, rec.path, rec.inode, rec.version, floor, &assigned);
      if (s.ok()) {
        out[i] = assigned;
        continue;
      }
      const Code c = s.code();
      if (removes_first || (c != Code::kAlreadyExists && c != Code::kFailedPrecondition &&
                            c != Code::kInvalidArgument)) {
        return s;  // something may be written: the transaction fails
      }
      out[i] = std::move(s);
    }
    return Status::OK();
  });
  if (!st.ok()) std::fill(out.begin(), out.end(), Result<uint64_t>(st));
  return out;
}

Result<std::pair<std::optional<Inode>, uint64_t>> MetaStore::RemoveVersioned(
    uint32_t shard, std::string_view path, uint64_t uid, uint64_t version, uint64_t floor) {
  std::optional<Inode> removed;
  uint64_t assigned = 0;
  Status st = RunWrite([&](MDB_txn* txn) -> Status {
    removed.reset();
    uint64_t cur = 0;
    bool tomb = false;
    Status s = IndexGet(txn, shard, path, &cur, &tomb);
    const bool has = s.ok();
    if (!has && !s.IsNotFound()) return s;
    std::string_view v;
    s = Get(txn, inodes_, PathKey(path), &v);
    const bool live = s.ok();
    if (!live && !s.IsNotFound()) return s;
    if (version == 0) {
      if (!live) return Status::NotFound(fmt::format("no object \"{}\"", path));
      if (uid != 0) {
        SHOAL_ASSIGN_OR_RETURN(Inode cur_inode, DecodeInode(v, path));
        if (cur_inode.uid != uid) {
          return Status::NotFound(fmt::format("\"{}\" is another object now", path));
        }
      }
      assigned = std::max(has ? cur + 1 : 0, floor);
    } else {
      // This copy has something newer already, or this very tombstone. (At an equal version a
      // tombstone beats a record: it is the later of the two.)
      if (has && (cur > version || (cur == version && tomb))) {
        assigned = cur;
        return Status::OK();
      }
      assigned = version;
    }
    if (live) {
      Inode old;
      SHOAL_RETURN_IF_ERROR(RemoveTxn(txn, path, &old));
      removed = std::move(old);
    }
    return IndexPut(txn, shard, path, {has, cur, tomb}, assigned, true);
  });
  if (!st.ok()) return st;
  return std::make_pair(std::move(removed), assigned);
}

Result<uint64_t> MetaStore::ReplaceVersioned(uint32_t shard, std::string_view path, uint64_t uid,
                                             const Inode& inode, uint64_t version) {
  if (!inode.is_striped || inode.uid != uid) {
    return Status::InvalidArgument(fmt::format("replacing \"{}\": not the same striped object", path));
  }
  uint64_t assigned = 0;
  Status st = RunWrite([&](MDB_txn* txn) -> Status {
    std::string_view v;
    Status s = Get(txn, inodes_, PathKey(path), &v);
    if (s.IsNotFound()) return Status::NotFound(fmt::format("no object \"{}\"", path));
    SHOAL_RETURN_IF_ERROR(s);
    SHOAL_ASSIGN_OR_RETURN(Inode cur, DecodeInode(v, path));
    if (!cur.is_striped || cur.uid != uid || cur.size != inode.size) {
      return Status::NotFound(fmt::format("\"{}\" is another object now", path));
    }
    uint64_t have = 0;
    bool tomb = false;
    s = IndexGet(txn, shard, path, &have, &tomb);
    if (!s.ok() && !s.IsNotFound()) return s;
    if (version == 0) {
      assigned = have + 1;
    } else if (version <= have) {
      return Status::NotFound(fmt::format("\"{}\" has a newer record here", path));
    } else {
      assigned = version;
    }
    Inode next = inode;
    next.id = cur.id;
    SHOAL_RETURN_IF_ERROR(Put(txn, inodes_, PathKey(path), EncodeInode(next)));
    return IndexPut(txn, shard, path, {s.ok(), have, tomb}, assigned, false);
  });
  if (!st.ok()) return st;
  return assigned;
}

Status MetaStore::ApplyTxn(MDB_txn* txn, uint32_t shard, const Versioned& rec) {
  if (rec.version == 0) return Status::InvalidArgument("a merged record without a version");
  uint64_t cur = 0;
  bool tomb = false;
  Status s = IndexGet(txn, shard, rec.path, &cur, &tomb);
  const bool has = s.ok();
  if (!has && !s.IsNotFound()) return s;
  // This copy is newer, or as new (at an equal version a tombstone beats a record).
  if (has && (cur > rec.version || (cur == rec.version && (tomb || !rec.tombstone)))) {
    return Status::OK();
  }
  Inode inode;
  if (!rec.tombstone) {
    SHOAL_ASSIGN_OR_RETURN(inode, DecodeInode(rec.inode, rec.path));
  }
  std::string_view v;
  s = Get(txn, inodes_, PathKey(rec.path), &v);
  if (s.ok()) {
    Inode old;
    SHOAL_RETURN_IF_ERROR(RemoveTxn(txn, rec.path, &old));
  } else if (!s.IsNotFound()) {
    return s;
  }
  if (!rec.tombstone) {
    Status ins = InsertTxn(txn, rec.path, &inode);
    if (ins.code() == Code::kAlreadyExists || ins.code() == Code::kInvalidArgument) {
      // A name conflict with another shard's record held here: kept detached, not dropped
      // (it was acknowledged; this copy may become its last).
      Log(LogLevel::kWarn, "merging \"{}\" into metadata shard {}: {}; kept, unlisted here",
          rec.path, shard, ins.message());
      ins = InsertDetachedTxn(txn, rec.path, &inode);
    }
    if (!ins.ok()) {
      return Status::FailedPrecondition(fmt::format("merging \"{}\": {}", rec.path, ins.message()));
    }
  }
  return IndexPut(txn, shard, rec.path, {has, cur, tomb}, rec.version, rec.tombstone);
}

Status MetaStore::Apply(uint32_t shard, const Versioned& rec) {
  return RunWrite([&](MDB_txn* txn) { return ApplyTxn(txn, shard, rec); });
}

Status MetaStore::ApplyAll(uint32_t shard, const std::vector<Versioned>& records,
                           std::vector<Status>* conflicts) {
  return RunWrite([&](MDB_txn* txn) -> Status {
    for (const Versioned& rec : records) {
      MDB_txn* child = nullptr;
      int rc = mdb_txn_begin(env_, txn, 0, &child);
      if (rc != 0) return LmdbStatus(rc, "begin nested txn");
      Status s = ApplyTxn(child, shard, rec);
      if (s.ok()) {
        rc = mdb_txn_commit(child);
        if (rc != 0) return LmdbStatus(rc, "commit nested txn");
        continue;
      }
      mdb_txn_abort(child);
      if (s.code() != Code::kFailedPrecondition) return s;
      conflicts->push_back(std::move(s));
    }
    return Status::OK();
  });
}

Result<std::vector<MetaStore::Versioned>> MetaStore::ShardPage(uint32_t shard,
                                                               std::string_view after,
                                                               uint32_t limit,
                                                               std::string* next) {
  next->clear();
  ReadTxn txn(env_);
  SHOAL_RETURN_IF_ERROR(txn.status());
  const std::string prefix = ShardPrefix(shard);
  const std::string start = prefix + std::string(after);
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn.get(), shardidx_, &cur);
  if (rc != 0) return LmdbStatus(rc, "cursor");
  std::vector<Versioned> out;
  MDB_val k = Val(start), v{};
  Status s;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (s = CheckValue(txn.get(), k); !s.ok()) break;
    if (s = CheckValue(txn.get(), v); !s.ok()) break;
    std::string_view key = View(k);
    if (key.substr(0, 2) != prefix) break;
    if (!after.empty() && key.substr(2) == after) continue;
    if (out.size() == limit) {
      *next = std::string(out.empty() ? "" : PathKey(out.back().path));
      break;
    }
    auto e = DecodeIndex(View(v));
    if (!e.ok()) {
      s = e.status();
      break;
    }
    Versioned rec{std::string(e->path), e->version, e->tombstone, {}};
    if (!rec.tombstone) {
      std::string_view iv;
      s = Get(txn.get(), inodes_, PathKey(rec.path), &iv);
      if (!s.ok()) {
        s = Status::Corruption(fmt::format("shard {} indexes \"{}\" without its record: {}",
                                           shard, rec.path, s.message()));
        break;
      }
      rec.inode = std::string(iv);
    }
    out.push_back(std::move(rec));
  }
  mdb_cursor_close(cur);
  SHOAL_RETURN_IF_ERROR(s);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbStatus(rc, "shard page");
  return out;
}

Status MetaStore::DropShard(uint32_t shard) {
  std::string after;
  for (;;) {
    std::string next;
    SHOAL_ASSIGN_OR_RETURN(auto page, ShardPage(shard, after, 4096, &next));
    if (page.empty()) break;
    SHOAL_RETURN_IF_ERROR(RunWrite([&](MDB_txn* txn) -> Status {
      SHOAL_ASSIGN_OR_RETURN(Sum sum, GetSum(txn, shardsum_, shard));
      for (const Versioned& rec : page) {
        if (!rec.tombstone) {
          Inode old;
          SHOAL_RETURN_IF_ERROR(RemoveTxn(txn, rec.path, &old));
        }
        SHOAL_RETURN_IF_ERROR(Del(txn, shardidx_, IndexKey(shard, rec.path)));
        sum.count--;
        sum.hash ^= RecordHash(rec.path, rec.version, rec.tombstone);
        sum.tombstones -= rec.tombstone ? 1 : 0;
      }
      return PutSum(txn, shardsum_, shard, sum);
    }));
    if (next.empty()) break;
    // The page's records are gone: the next page starts at the beginning again.
  }
  return Status::OK();
}

Result<std::vector<ShardSummary>> MetaStore::Summaries(uint32_t shards) {
  ReadTxn txn(env_);
  SHOAL_RETURN_IF_ERROR(txn.status());
  std::vector<ShardSummary> out(shards);
  for (uint32_t s = 0; s < shards; ++s) {
    SHOAL_ASSIGN_OR_RETURN(Sum sum, GetSum(txn.get(), shardsum_, s));
    out[s] = {sum.count, sum.hash};
  }
  return out;
}

Result<uint64_t> MetaStore::CollectTombstones(uint32_t shards, uint64_t below) {
  uint64_t dropped = 0;
  for (uint32_t shard = 0; shard < shards; ++shard) {
    {
      ReadTxn txn(env_);
      SHOAL_RETURN_IF_ERROR(txn.status());
      SHOAL_ASSIGN_OR_RETURN(Sum sum, GetSum(txn.get(), shardsum_, shard));
      if (sum.tombstones == 0) continue;
    }
    std::string after;
    for (;;) {
      std::string next;
      SHOAL_ASSIGN_OR_RETURN(auto page, ShardPage(shard, after, 4096, &next));
      SHOAL_RETURN_IF_ERROR(RunWrite([&](MDB_txn* txn) -> Status {
        SHOAL_ASSIGN_OR_RETURN(Sum sum, GetSum(txn, shardsum_, shard));
        for (const Versioned& rec : page) {
          // The world serves meanwhile: the path may have a newer record now. Only what is
          // still an old tombstone inside this transaction goes.
          uint64_t version = 0;
          bool tomb = false;
          Status s = IndexGet(txn, shard, rec.path, &version, &tomb);
          if (s.IsNotFound()) continue;
          SHOAL_RETURN_IF_ERROR(s);
          if (!tomb || version >= below) continue;
          SHOAL_RETURN_IF_ERROR(Del(txn, shardidx_, IndexKey(shard, rec.path)));
          sum.count--;
          sum.hash ^= RecordHash(rec.path, version, true);
          sum.tombstones--;
          dropped++;
        }
        return PutSum(txn, shardsum_, shard, sum);
      }));
      if (next.empty()) break;
      after = next;
    }
  }
  return dropped;
}

Result<uint64_t> MetaStore::IndexUnversioned(uint32_t shards, uint64_t* skipped) {
  std::vector<std::string> paths;
  {
    ReadTxn txn(env_);
    SHOAL_RETURN_IF_ERROR(txn.status());
    MDB_cursor* cur = nullptr;
    int rc = mdb_cursor_open(txn.get(), inodes_, &cur);
    if (rc != 0) return LmdbStatus(rc, "cursor");
    MDB_val k{}, v{};
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      std::string_view key = View(k);
      if (key.find('\x01') != std::string_view::npos) {
        ++*skipped;  // a long path's key holds a hash: the path itself is not recoverable
        continue;
      }
      paths.emplace_back(key);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) return LmdbStatus(rc, "scan inodes");
  }
  uint64_t indexed = 0;
  for (size_t at = 0; at < paths.size(); at += 4096) {
    SHOAL_RETURN_IF_ERROR(RunWrite([&](MDB_txn* txn) -> Status {
      for (size_t i = at; i < std::min(paths.size(), at + 4096); ++i) {
        const uint32_t shard = ShardOf(paths[i], shards);
        uint64_t version = 0;
        bool tomb = false;
        Status s = IndexGet(txn, shard, paths[i], &version, &tomb);
        if (s.ok()) continue;
        if (!s.IsNotFound()) return s;
        SHOAL_RETURN_IF_ERROR(IndexPut(txn, shard, paths[i], {}, 1, false));
        indexed++;
      }
      return Status::OK();
    }));
  }
  return indexed;
}

Result<Membership> MetaStore::LoadMembership() {
  ReadTxn txn(env_);
  SHOAL_RETURN_IF_ERROR(txn.status());
  std::string_view v;
  Status s = Get(txn.get(), meta_, kMembershipKey, &v);
  if (s.IsNotFound()) return Membership{};
  SHOAL_RETURN_IF_ERROR(s);
  return DecodeMembership(v);
}

Status MetaStore::SaveMembership(const Membership& m) {
  const std::string bytes = EncodeMembership(m);
  return RunWrite([&](MDB_txn* txn) { return Put(txn, meta_, kMembershipKey, bytes); });
}

namespace {

Result<std::pair<uint64_t, std::vector<uint32_t>>> DecodeCaughtUp(std::string_view v) {
  ByteReader r(AsBytes(v));
  std::pair<uint64_t, std::vector<uint32_t>> out;
  if (!r.Get(&out.first) || r.left() % 4 != 0 || r.left() / 4 > kMaxShards) {
    return Status::Corruption("caught-up record: malformed");
  }
  while (r.left() != 0) {
    uint32_t s = 0;
    r.Get(&s);
    out.second.push_back(s);
  }
  if (!std::is_sorted(out.second.begin(), out.second.end())) {
    return Status::Corruption("caught-up record: shards out of order");
  }
  return out;
}

}  // namespace

Result<std::pair<uint64_t, std::vector<uint32_t>>> MetaStore::LoadCaughtUp() {
  ReadTxn txn(env_);
  SHOAL_RETURN_IF_ERROR(txn.status());
  std::string_view v;
  Status s = Get(txn.get(), meta_, kCaughtUpKey, &v);
  if (s.IsNotFound()) return std::pair<uint64_t, std::vector<uint32_t>>{};
  SHOAL_RETURN_IF_ERROR(s);
  return DecodeCaughtUp(v);
}

Status MetaStore::AddCaughtUp(uint64_t epoch, uint32_t shard) {
  return RunWrite([&](MDB_txn* txn) {
    std::pair<uint64_t, std::vector<uint32_t>> cur;
    std::string_view v;
    Status s = Get(txn, meta_, kCaughtUpKey, &v);
    if (s.ok()) {
      SHOAL_ASSIGN_OR_RETURN(cur, DecodeCaughtUp(v));
    } else if (!s.IsNotFound()) {
      return s;
    }
    if (cur.first != epoch) cur = {epoch, {}};
    auto at = std::lower_bound(cur.second.begin(), cur.second.end(), shard);
    if (at != cur.second.end() && *at == shard) return Status::OK();
    cur.second.insert(at, shard);
    ByteWriter w;
    w.Put<uint64_t>(cur.first);
    for (uint32_t x : cur.second) w.Put<uint32_t>(x);
    const std::vector<std::byte> bytes = w.Take();
    return Put(txn, meta_, kCaughtUpKey, AsChars(bytes));
  });
}

Status MetaStore::SetRepairPending(bool pending) {
  return RunWrite([&](MDB_txn* txn) {
    if (pending) return Put(txn, meta_, kRepairPendingKey, "1");
    Status s = Del(txn, meta_, kRepairPendingKey);
    return s.IsNotFound() ? Status::OK() : s;
  });
}

Result<bool> MetaStore::RepairPending() {
  ReadTxn txn(env_);
  SHOAL_RETURN_IF_ERROR(txn.status());
  std::string_view v;
  Status s = Get(txn.get(), meta_, kRepairPendingKey, &v);
  if (s.IsNotFound()) return false;
  SHOAL_RETURN_IF_ERROR(s);
  if (v != "1") return Status::Corruption("repair-pending record: malformed");
  return true;
}

}  // namespace shoal::engine
