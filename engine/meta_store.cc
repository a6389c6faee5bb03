#include "engine/meta_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "base/errno_status.h"
#include "base/log.h"
#include "engine/block_sums.h"
#include "engine/lmdb_check.h"
#include "engine/lmdb_txn.h"
#include "engine/path.h"
#include "engine/store_layout.h"

namespace shoal::engine {
namespace {

constexpr size_t kShortPathKey = 200;
constexpr size_t kHashedPrefix = 184;
constexpr std::string_view kFormat = "shoal-meta-1";
// The keys of the meta database marking a detached record (MetaStore::InsertDetachedTxn):
// this prefix and the record's PathKey.
constexpr std::string_view kDetachedPrefix = "detached/";

}  // namespace

thread_local bool lmdb::in_write_txn = false;
namespace {
// Inode ids (InsertTxn): bit 63, the transaction id, the serial in the transaction.
constexpr uint64_t kSerialIdBit = uint64_t{1} << 63;
constexpr int kSerialBits = 24;
constexpr uint64_t kSerialsPerTxn = uint64_t{1} << kSerialBits;
thread_local uint64_t write_serial = 0;  // inserts so far in this thread's write transaction
}  // namespace
using namespace lmdb;  // NOLINT: this file is the MetaStore's LMDB code

Status LmdbStatus(int rc, std::string_view context) {
  if (rc == 0) return Status::OK();
  // The common miss of a lookup (CheckCreatable and the index meet it several times in every
  // insert): a message short enough to need no allocation; callers that report a miss name
  // what was missing themselves.
  if (rc == MDB_NOTFOUND) return Status::NotFound("no such key");
  std::string msg = fmt::format("metadata {}: {}", context, mdb_strerror(rc));
  switch (rc) {
    case MDB_MAP_FULL: return Status::NoSpace(msg + " (raise Options::metadata_map_size)");
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH: return Status::Corruption(msg);
    case MDB_READERS_FULL:
    case MDB_TXN_FULL: return Status::Unavailable(msg);
    case MDB_BAD_VALSIZE: return Status::InvalidArgument(msg);
    default:
      if (rc > 0) return ErrnoStatus(rc, fmt::format("metadata {}", context));
      return Status::IOError(msg);
  }
}

std::string PathKey(std::string_view path) {
  if (path.size() <= kShortPathKey) return std::string(path);
  XXH128_hash_t h = XXH3_128bits(path.data(), path.size());
  std::string k(path.substr(0, kHashedPrefix));
  k.push_back('\x01');
  k.append(reinterpret_cast<const char*>(&h.high64), 8);
  k.append(reinterpret_cast<const char*>(&h.low64), 8);
  return k;
}

struct MetaStore::Request {
  TxnFn fn;
  Status status;
  bool done = false;
};

Result<std::unique_ptr<MetaStore>> MetaStore::Open(const std::string& dir, uint64_t map_size) {
  std::unique_ptr<MetaStore> m(new MetaStore());
  m->flat_chunk_objects_ = true;  // the local keyspace (OpenKeyspace's are not)
  SHOAL_RETURN_IF_ERROR(m->Init(dir, map_size));
  return m;
}

namespace {

// The walk of VerifyLmdbFile reads every page: its cost grows with the metadata. A clean close
// leaves "<dir>/data.verified" with the file's txnid, size and mtime; an Open that finds the
// file exactly so (nothing wrote it since, no crash in between: a crash leaves no stamp for the
// txnid it reached) checks only the meta pages, so the Open of an unchanged store costs O(1)
// here. Any write, truncation or damage through the file system changes the mtime or size and
// brings the full walk back. (Media damage that keeps both is not caught before LMDB maps it.)
std::string VerifiedStampPath(const std::string& dir) { return dir + "/data.verified"; }

std::string StampOf(const std::string& file, const LmdbMeta& meta) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return {};
  return fmt::format("{} {} {}.{:09d}\n", meta.txnid, static_cast<uint64_t>(st.st_size),
                     static_cast<int64_t>(st.st_mtim.tv_sec), st.st_mtim.tv_nsec);
}

bool StampMatches(const std::string& dir) {
  const std::string file = dir + "/data.mdb";
  auto meta = ReadLmdbMeta(file);
  if (!meta.ok()) return false;
  std::ifstream in(VerifiedStampPath(dir));
  std::string line;
  if (!std::getline(in, line)) return false;
  return line + "\n" == StampOf(file, *meta);
}

void WriteStamp(const std::string& dir) {
  const std::string file = dir + "/data.mdb";
  auto meta = ReadLmdbMeta(file);
  if (!meta.ok()) return;
  const std::string stamp = StampOf(file, *meta);
  const std::string tmp = VerifiedStampPath(dir) + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << stamp;
    if (!out) return;
  }
  (void)std::rename(tmp.c_str(), VerifiedStampPath(dir).c_str());
}

}  // namespace

MetaStore::~MetaStore() {
  if (env_ != nullptr && owner_ == this) {
    mdb_env_close(env_);
    if (!dir_.empty()) WriteStamp(dir_);
  }
}

Status MetaStore::Init(const std::string& dir, uint64_t map_size) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoStatus(errno, "mkdir " + dir);
  // LMDB maps data.mdb and has no checksums: a truncated file or a damaged page pointer would be
  // SIGBUS at the first read. Check the file with plain reads before LMDB maps it.
  if (!StampMatches(dir)) {
    (void)std::remove(VerifiedStampPath(dir).c_str());  // stale from here on, whatever happens
    auto checked = VerifyLmdbFile(dir + "/data.mdb");
    if (!checked.ok() && !checked.status().IsNotFound()) return checked.status();
  }
  (void)std::remove(VerifiedStampPath(dir).c_str());  // written again at a clean close
  dir_ = dir;
  int rc = mdb_env_create(&env_);
  if (rc != 0) return LmdbStatus(rc, "create env");
  mdb_env_set_maxdbs(env_, 16);  // two keyspaces of 7 databases
  mdb_env_set_maxreaders(env_, 4096);
  mdb_env_set_mapsize(env_, map_size);
  // MDB_NOTLS: read transactions are not tied to threads (callers come from thread pools).
  rc = mdb_env_open(env_, dir.c_str(), MDB_NOTLS | MDB_NORDAHEAD, 0600);
  if (rc != 0) return LmdbStatus(rc, "open " + dir);
  int dead = 0;
  mdb_reader_check(env_, &dead);  // readers left by a crashed process
  bounds_ = std::make_unique<lmdb::MapBounds>();
  if (lmdb::LoadBounds(env_, bounds_.get())) mdb_env_set_userctx(env_, bounds_.get());

  return OpenDatabases("", dir);
}

Status MetaStore::OpenDatabases(std::string_view prefix, std::string_view where) {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) return LmdbStatus(rc, "begin");
  auto open_db = [&](const char* name, MDB_dbi* dbi) {
    return mdb_dbi_open(txn, fmt::format("{}{}", prefix, name).c_str(), MDB_CREATE, dbi);
  };
  if ((rc = open_db("inodes", &inodes_)) != 0 || (rc = open_db("dirents", &dirents_)) != 0 ||
      (rc = open_db("extents", &extents_)) != 0 || (rc = open_db("meta", &meta_)) != 0 ||
      (rc = open_db("shardidx", &shardidx_)) != 0 || (rc = open_db("shardsum", &shardsum_)) != 0 ||
      (rc = open_db("origins", &origins_)) != 0) {
    mdb_txn_abort(txn);
    return LmdbStatus(rc, "open databases");
  }
  std::string_view v;
  Status s = Get(txn, meta_, "format", &v);
  if (s.IsNotFound()) {
    // A new keyspace has no records at all; one with records but no format record is damaged
    // (a fresh member id would make it pass for another member).
    for (MDB_dbi dbi : {meta_, inodes_, dirents_, extents_, shardidx_}) {
      MDB_stat st{};
      if (mdb_stat(txn, dbi, &st) != 0 || st.ms_entries != 0) {
        s = Status::Corruption("the format record is missing from metadata that holds records");
        break;
      }
    }
  }
  if (s.IsNotFound()) {
    std::random_device rd;
    member_id_ = fmt::format("{:08x}{:08x}{:08x}{:08x}", rd(), rd(), rd(), rd());
    s = Put(txn, meta_, "format", kFormat);
    if (s.ok()) s = Put(txn, meta_, "member_id", member_id_);
  } else if (s.ok()) {
    if (v != kFormat) s = Status::Corruption(fmt::format("metadata format \"{}\" unknown", v));
    if (s.ok()) s = Get(txn, meta_, "member_id", &v);
    // A member id is 32 hex digits (created above): anything else is a damaged record (LMDB
    // has no checksums), which must not pass for another member's id.
    if (s.ok() && (v.size() != 32 || v.find_first_not_of("0123456789abcdef") != v.npos)) {
      s = Status::Corruption(
          fmt::format("member id record of {} bytes is not 32 hex digits", v.size()));
    }
    if (s.ok()) member_id_ = std::string(v);
  }
  if (!s.ok()) {
    mdb_txn_abort(txn);
    return s.WithContext(where);
  }
  rc = mdb_txn_commit(txn);
  return rc == 0 ? Status::OK() : LmdbStatus(rc, "commit");
}

Result<std::unique_ptr<MetaStore>> MetaStore::OpenKeyspace(MetaStore* base,
                                                           std::string_view prefix,
                                                           const std::string& import_dir) {
  std::unique_ptr<MetaStore> m(new MetaStore());
  m->env_ = base->env_;
  m->owner_ = base->owner_;
  SHOAL_RETURN_IF_ERROR(
      m->OpenDatabases(prefix, fmt::format("{} (keyspace {})", base->dir_, prefix)));
  if (!import_dir.empty()) SHOAL_RETURN_IF_ERROR(m->Import(import_dir));
  return m;
}

namespace {

// The databases of a keyspace, in the order OpenDatabases opens them.
constexpr const char* kDatabases[] = {"inodes", "dirents",  "extents", "meta",
                                      "shardidx", "shardsum", "origins"};

// Removes `dir` and everything in it (an LMDB environment: files only).
Status RemoveTree(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) return ErrnoStatus(ec.value(), "removing " + dir);
  return Status::OK();
}

}  // namespace

Status MetaStore::Import(const std::string& dir) {
  // A rename that a crash cut short left the renamed copy: everything was imported before it.
  const std::string done = dir + ".imported";
  if (::access(done.c_str(), F_OK) == 0) SHOAL_RETURN_IF_ERROR(RemoveTree(done));
  if (::access((dir + "/data.mdb").c_str(), F_OK) != 0) {
    // No environment (never created, or imported already): nothing to copy.
    return ::access(dir.c_str(), F_OK) == 0 ? RemoveTree(dir) : Status::OK();
  }
  MDB_envinfo info{};
  mdb_env_info(env_, &info);
  SHOAL_ASSIGN_OR_RETURN(auto old, MetaStore::Open(dir, info.me_mapsize));
  const MDB_dbi from[] = {old->inodes_, old->dirents_, old->extents_, old->meta_,
                          old->shardidx_, old->shardsum_, old->origins_};
  const MDB_dbi to[] = {inodes_, dirents_, extents_, meta_, shardidx_, shardsum_, origins_};
  uint64_t copied = 0;
  // Empty the keyspace, then copy in transactions of bounded size (a large shard does not fit
  // one LMDB write transaction). Until the rename below, a crash makes the next Open start over.
  for (size_t d = 0; d < std::size(kDatabases); ++d) {
    std::string after;
    bool first = true, more = true;
    while (more) {
      SHOAL_RETURN_IF_ERROR(RunWrite([&](MDB_txn* txn) -> Status {
        if (first) {
          int rc = mdb_drop(txn, to[d], 0);
          if (rc != 0) return LmdbStatus(rc, "emptying a keyspace to import into");
        }
        // What is read comes from the other environment's map: bounds-checked (CheckValue).
        in_write_txn = false;
        struct Restore {
          ~Restore() { in_write_txn = true; }
        } restore;
        ReadTxn src(old->env_);
        SHOAL_RETURN_IF_ERROR(src.status());
        MDB_cursor* cur = nullptr;
        int rc = mdb_cursor_open(src.get(), from[d], &cur);
        if (rc != 0) return LmdbStatus(rc, "cursor");
        MDB_val k = Val(after), v{};
        rc = first ? mdb_cursor_get(cur, &k, &v, MDB_FIRST)
                   : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && !first && View(k) == after) rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        Status s;
        uint32_t n = 0;
        for (; rc == 0 && n < 10000; ++n, rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
          s = CheckValue(src.get(), k);
          if (s.ok()) s = CheckValue(src.get(), v);
          if (s.ok()) s = Put(txn, to[d], View(k), View(v));
          if (!s.ok()) break;
          after = std::string(View(k));
        }
        mdb_cursor_close(cur);
        if (!s.ok()) return s;
        if (rc != 0 && rc != MDB_NOTFOUND) return LmdbStatus(rc, "reading the keyspace to import");
        more = rc == 0;
        copied += n;
        return Status::OK();
      }));
      first = false;
    }
  }
  old.reset();
  if (::rename(dir.c_str(), done.c_str()) != 0) return ErrnoStatus(errno, "rename " + dir);
  const std::string parent = std::filesystem::path(dir).parent_path().string();
  if (int dfd = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      dfd >= 0) {
    (void)::fsync(dfd);  // the rename is durable before the copy goes
    ::close(dfd);
  }
  SHOAL_RETURN_IF_ERROR(RemoveTree(done));
  Log(LogLevel::kInfo, "metadata: imported {} records of {} into {} (one environment per store)",
      copied, dir, owner_->dir_);
  return Status::OK();
}

Status MetaStore::RunWrite(TxnFn fn) {
  if (owner_ != this) return owner_->RunWrite(std::move(fn));
  Request me{std::move(fn), Status::OK(), false};
  std::unique_lock lk(mu_);
  queue_.push_back(&me);
  cv_.wait(lk, [&] { return me.done || queue_.front() == &me; });
  if (me.done) return me.status;
  // Leader: commit everything queued so far in one transaction.
  std::vector<Request*> batch(queue_.begin(), queue_.end());
  lk.unlock();

  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  write_serial = 0;
  if (rc != 0) {
    for (Request* r : batch) r->status = LmdbStatus(rc, "begin write txn");
  } else {
    for (Request* r : batch) {
      MDB_txn* child = nullptr;
      rc = mdb_txn_begin(env_, txn, 0, &child);
      if (rc != 0) {
        r->status = LmdbStatus(rc, "begin nested txn");
        continue;
      }
      in_write_txn = true;
      r->status = r->fn(child);
      in_write_txn = false;
      if (r->status.ok()) {
        rc = mdb_txn_commit(child);
        if (rc != 0) r->status = LmdbStatus(rc, "commit nested txn");
      } else {
        mdb_txn_abort(child);
      }
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
      for (Request* r : batch) {
        if (r->status.ok()) r->status = LmdbStatus(rc, "commit");
      }
    }
  }

  lk.lock();
  for (Request* r : batch) {
    queue_.pop_front();
    r->done = true;
  }
  cv_.notify_all();
  return me.status;
}

Status MetaStore::InodeRecordTxn(MDB_txn* txn, std::string_view path, std::string_view* v) {
  Status s = Get(txn, inodes_, PathKey(path), v);
  if (s.IsNotFound()) return Status::NotFound(fmt::format("no object \"{}\"", path));
  return s;
}

Result<Inode> MetaStore::GetInode(std::string_view path) {
  ReadTxn txn(env_);
  SHOAL_RETURN_IF_ERROR(txn.status());
  std::string_view v;
  SHOAL_RETURN_IF_ERROR(InodeRecordTxn(txn.get(), path, &v));
  return DecodeInode(v, path);
}

std::vector<Result<Inode>> MetaStore::GetInodes(std::span<const std::string_view> paths) {
  std::vector<Result<Inode>> out;
  out.reserve(paths.size());
  ReadTxn txn(env_);
  for (std::string_view path : paths) {
    if (!txn.status().ok()) {
      out.emplace_back(txn.status());
      continue;
    }
    std::string_view v;
    Status s = InodeRecordTxn(txn.get(), path, &v);
    if (s.ok()) {
      out.emplace_back(DecodeInode(v, path));
    } else {
      out.emplace_back(std::move(s));
    }
  }
  return out;
}

std::vector<std::vector<uint32_t>> MetaStore::GetBlockSums(
    std::span<const std::pair<uint32_t, uint64_t>> extents) {
  std::vector<std::vector<uint32_t>> out(extents.size());
  ReadTxn txn(env_);
  if (!txn.status().ok()) return out;
  for (size_t i = 0; i < extents.size(); ++i) {
    std::string_view v;
    if (!Get(txn.get(), extents_, ExtentKey(extents[i].first, extents[i].second), &v).ok()) {
      continue;
    }
    if (v.size() <= 4 || (v.size() - 4) % 4 != 0) continue;  // none (ForEachExtent checks sizes)
    out[i].resize((v.size() - 4) / 4);
    std::memcpy(out[i].data(), v.data() + 4, v.size() - 4);
  }
  return out;
}

Result<std::string> MetaStore::GetInodeBytes(std::string_view path) {
  ReadTxn txn(env_);
  SHOAL_RETURN_IF_ERROR(txn.status());
  std::string_view v;
  SHOAL_RETURN_IF_ERROR(InodeRecordTxn(txn.get(), path, &v));
  return std::string(v);
}

bool MetaStore::Flat(std::string_view path) const {
  return flat_chunk_objects_ && IsChunkObjectName(path);
}

Status MetaStore::CheckCreatableTxn(MDB_txn* txn, std::string_view path) {
  std::string_view v;
  Status s = Get(txn, inodes_, PathKey(path), &v);
  if (s.ok()) return Status::AlreadyExists(fmt::format("object \"{}\" exists", path));
  if (!s.IsNotFound()) return s;
  if (Flat(path)) return Status::OK();  // no directory entries, so none in the way
  auto [parent, name] = SplitParent(path);
  s = Get(txn, dirents_, DirentKey(parent, name), &v);
  if (s.ok()) return Status::AlreadyExists(fmt::format("\"{}\" is a directory", path));
  if (!s.IsNotFound()) return s;
  // Ancestors must not be objects ("a" an object makes "a/b" impossible). A parent that is a
  // directory already says so of every ancestor (a directory exists only below directories):
  // one lookup instead of one per ancestor, in the common case of a name beside others.
  if (!parent.empty()) {
    auto [gp, pname] = SplitParent(parent);
    s = Get(txn, dirents_, DirentKey(gp, pname), &v);
    if (s.ok()) {
      SHOAL_ASSIGN_OR_RETURN(Dirent d, DecodeDirent(v));
      if (d.is_dir) return Status::OK();
    } else if (!s.IsNotFound()) {
      return s;
    }
  }
  for (size_t slash = path.find('/'); slash != std::string_view::npos;
       slash = path.find('/', slash + 1)) {
    std::string_view anc = path.substr(0, slash);
    s = Get(txn, inodes_, PathKey(anc), &v);
    if (s.ok()) {
      return Status::InvalidArgument(
          fmt::format("cannot create \"{}\": \"{}\" is an object, not a directory", path, anc));
    }
    if (!s.IsNotFound()) return s;
  }
  return Status::OK();
}

Status MetaStore::CheckCreatable(std::string_view path) {
  ReadTxn txn(env_);
  SHOAL_RETURN_IF_ERROR(txn.status());
  return CheckCreatableTxn(txn.get(), path);
}

namespace {
std::string DetachedKey(std::string_view path) { return std::string(kDetachedPrefix) + PathKey(path); }
}  // namespace

Status MetaStore::InsertTxn(MDB_txn* txn, std::string_view path, Inode* inode,
                            std::string_view origin) {
  SHOAL_RETURN_IF_ERROR(CheckCreatableTxn(txn, path));
  if (!origin.empty()) {
    if (inode->is_striped) {
      return Status::InvalidArgument(fmt::format("an origin for \"{}\", not a local object", path));
    }
    inode->origin = std::string(origin);
  }
  SHOAL_RETURN_IF_ERROR(PutRecordTxn(txn, path, inode));
  if (Flat(path)) return Status::OK();
  // The entry in its parent, then one more entry in each directory created on the way up.
  std::string_view v;
  Status s;
  auto [parent, name] = SplitParent(path);
  SHOAL_RETURN_IF_ERROR(Put(txn, dirents_, DirentKey(parent, name),
                            EncodeDirent({false, inode->size})));
  std::string_view child = parent;
  while (!child.empty()) {
    auto [gp, cname] = SplitParent(child);
    std::string key = DirentKey(gp, cname);
    Dirent d{true, 0};
    s = Get(txn, dirents_, key, &v);
    bool existed = s.ok();
    if (existed) {
      SHOAL_ASSIGN_OR_RETURN(d, DecodeDirent(v));
    } else if (!s.IsNotFound()) {
      return s;
    }
    d.size += 1;
    SHOAL_RETURN_IF_ERROR(Put(txn, dirents_, key, EncodeDirent(d)));
    if (existed) break;  // its parent already counts it
    child = gp;
  }
  return Status::OK();
}

Status MetaStore::InsertDetachedTxn(MDB_txn* txn, std::string_view path, Inode* inode) {
  std::string_view v;
  Status s = Get(txn, inodes_, PathKey(path), &v);
  if (s.ok()) return Status::AlreadyExists(fmt::format("object \"{}\" exists", path));
  if (!s.IsNotFound()) return s;
  SHOAL_RETURN_IF_ERROR(PutRecordTxn(txn, path, inode));
  return Put(txn, meta_, DetachedKey(path), "");
}

Status MetaStore::PutRecordTxn(MDB_txn* txn, std::string_view path, Inode* inode) {
  // The id: the committing transaction's LMDB id and the insert's place in it, above every id
  // of the counter record ("next_id") that format-3 stores kept, whose update put one more
  // page in every commit. Unique in the environment and increasing across reopens.
  if (write_serial >= kSerialsPerTxn) {
    return Status::Unavailable("more inserts in one metadata transaction than ids for them");
  }
  inode->id = kSerialIdBit | (static_cast<uint64_t>(mdb_txn_id(txn)) << kSerialBits) |
              write_serial++;
  SHOAL_RETURN_IF_ERROR(Put(txn, inodes_, PathKey(path), EncodeInode(*inode)));
  std::string value;
  for (size_t i = 0; i < inode->chunks.size(); ++i) {
    const Extent& e = inode->chunks[i];
    if (e.is_hole()) continue;
    uint32_t disk = static_cast<uint32_t>((e.length + 4095) / 4096 * 4096);
    value.assign(reinterpret_cast<const char*>(&disk), 4);
    if (i < inode->block_sums.size() && inode->block_sums[i].size() == SumBlocks(e.length)) {
      value.append(reinterpret_cast<const char*>(inode->block_sums[i].data()),
                   inode->block_sums[i].size() * 4);
    }
    SHOAL_RETURN_IF_ERROR(Put(txn, extents_, ExtentKey(e.segment, e.offset), value));
  }
  return Status::OK();
}

Status MetaStore::InsertObject(std::string_view path, Inode* inode, std::string_view origin,
                               const TxnFn& also) {
  return RunWrite([&](MDB_txn* txn) {
    Status s = InsertTxn(txn, path, inode, origin);
    return s.ok() && also ? also(txn) : s;
  });
}

Status MetaStore::InsertObjects(std::span<const NewObject> objects, const TxnFn& also) {
  return RunWrite([&](MDB_txn* txn) {
    for (const NewObject& o : objects) SHOAL_RETURN_IF_ERROR(InsertTxn(txn, o.path, o.inode, o.origin));
    return also ? also(txn) : Status::OK();
  });
}

Result<std::string> MetaStore::GetOrigin(std::string_view path) {
  SHOAL_ASSIGN_OR_RETURN(Inode inode, GetInode(path));
  if (inode.origin.empty()) return Status::NotFound(fmt::format("no origin of \"{}\"", path));
  return std::move(inode.origin);
}

Status MetaStore::RemoveTxn(MDB_txn* txn, std::string_view path, Inode* removed) {
  std::string_view v;
  Status s = Get(txn, inodes_, PathKey(path), &v);
  if (s.IsNotFound()) return Status::NotFound(fmt::format("no object \"{}\"", path));
  SHOAL_RETURN_IF_ERROR(s);
  SHOAL_ASSIGN_OR_RETURN(*removed, DecodeInode(v, path));
  SHOAL_RETURN_IF_ERROR(Del(txn, inodes_, PathKey(path)));
  for (const Extent& e : removed->chunks) {
    if (!e.is_hole()) SHOAL_RETURN_IF_ERROR(Del(txn, extents_, ExtentKey(e.segment, e.offset)));
  }
  if (Flat(path)) return Status::OK();
  const std::string detached = DetachedKey(path);
  s = Get(txn, meta_, detached, &v);
  if (s.ok()) return Del(txn, meta_, detached);  // it has no directory entries
  if (!s.IsNotFound()) return s;
  auto [parent, name] = SplitParent(path);
  SHOAL_RETURN_IF_ERROR(Del(txn, dirents_, DirentKey(parent, name)));
  std::string_view child = parent;
  while (!child.empty()) {
    auto [gp, cname] = SplitParent(child);
    std::string key = DirentKey(gp, cname);
    SHOAL_RETURN_IF_ERROR(Get(txn, dirents_, key, &v));
    SHOAL_ASSIGN_OR_RETURN(Dirent d, DecodeDirent(v));
    if (d.size > 1) {
      d.size -= 1;
      return Put(txn, dirents_, key, EncodeDirent(d));
    }
    SHOAL_RETURN_IF_ERROR(Del(txn, dirents_, key));  // last entry: the directory goes too
    child = gp;
  }
  return Status::OK();
}

Result<Inode> MetaStore::RemoveObject(std::string_view path) {
  Inode removed;
  Status st = RunWrite([&](MDB_txn* txn) { return RemoveTxn(txn, path, &removed); });
  if (!st.ok()) return st;
  return removed;
}

Status MetaStore::ForEachExtent(
    const std::function<void(uint32_t, uint64_t, uint32_t)>& fn) {
  ReadTxn txn(env_);
  SHOAL_RETURN_IF_ERROR(txn.status());
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn.get(), extents_, &cur);
  if (rc != 0) return LmdbStatus(rc, "cursor");
  MDB_val k{}, v{};
  Status s;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (k.mv_size != 12 || v.mv_size < 4) {
      s = Status::Corruption("extent record of wrong length");
      break;
    }
    if (s = CheckValue(txn.get(), v); !s.ok()) break;
    auto* b = static_cast<const uint8_t*>(k.mv_data);
    uint32_t seg = 0;
    uint64_t off = 0;
    for (int i = 0; i < 4; ++i) seg = (seg << 8) | b[i];
    for (int i = 4; i < 12; ++i) off = (off << 8) | b[i];
    uint32_t disk = 0;
    std::memcpy(&disk, v.mv_data, 4);
    if (disk == 0 || disk % 4096 != 0 || disk > kMaxChunkSize ||
        (v.mv_size != 4 && v.mv_size != 4 + 4 * uint64_t{disk / kSumBlock})) {
      s = Status::Corruption(
          fmt::format("extent {}:{} of {} disk bytes ({}-byte record)", seg, off, disk, v.mv_size));
      break;
    }
    fn(seg, off, disk);
  }
  mdb_cursor_close(cur);
  SHOAL_RETURN_IF_ERROR(s);
  if (rc != MDB_NOTFOUND) return LmdbStatus(rc, "scan extents");
  return Status::OK();
}

}  // namespace shoal::engine
