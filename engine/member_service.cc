#include "engine/member_service.h"

#include <charconv>

#include <fmt/format.h>

#include <cstring>

#include "base/crc32c.h"
#include "engine/path.h"
#include "engine/store_layout.h"

namespace shoal::engine {

using protocol::Op;
using transport::Payload;
using transport::Reply;

MemberService::MemberService(ObjectStore* store, MetaStore* shard, metrics::Registry* metrics)
    : store_(store), shard_(shard) {
  if (metrics != nullptr) {
    staged_in_place_ = &metrics->counter("member.remote.chunk_bytes_staged_in_place");
    copied_ = &metrics->counter("member.remote.chunk_bytes_copied");
  }
}

Status MemberService::ChunkWrite(const protocol::ChunkWrite& req, IoBuffer* adopt) {
  const std::string name = ChunkObjectName(req.uid);
  {
    MutexLock lk(&mu_);
    auto it = open_.find(req.uid);
    if (it == open_.end()) {
      SHOAL_RETURN_IF_ERROR(store_->Create(name, CreateOptions{kUnknownSize, req.chunk_size}));
      open_.emplace(req.uid, req.chunk_size);
    } else if (it->second != req.chunk_size) {
      return Status::InvalidArgument(fmt::format(
          "chunk write: object {:016x} has chunk size {}, not {}", req.uid, it->second,
          req.chunk_size));
    }
  }
  return store_->Write(name, req.chunk * req.chunk_size + req.in_chunk, req.data, adopt);
}

transport::Body MemberService::WriteBody(size_t length) {
  std::shared_ptr<IoBuffer> buf = store_->LendWriteBuffer(length);
  if (buf == nullptr) return {};
  return transport::Body{{buf->data, buf->size}, buf};
}

Reply MemberService::ServeChunkWrite(std::span<const std::byte> head, transport::Body body) {
  protocol::ChunkWrite req;
  Status s = protocol::DecodeHead(head, body.bytes, &req);
  if (!s.ok()) return Reply{std::move(s), {}};
  // The body is in a lent pool buffer unless the transport had to allocate it itself.
  IoBuffer* adopt = nullptr;
  if (std::get_deleter<ObjectStore::ReturnToPool>(body.keep) != nullptr) {
    adopt = static_cast<IoBuffer*>(body.keep.get());
  }
  s = ChunkWrite(req, adopt);
  if (s.ok()) {
    const bool in_place = adopt != nullptr && adopt->empty();
    metrics::Counter* c = in_place ? staged_in_place_ : copied_;
    if (c != nullptr) c->Add(req.data.size());
  }
  return Reply{std::move(s), {}};
}

bool MemberService::Writing(uint64_t uid) {
  MutexLock lk(&mu_);
  return open_.count(uid) != 0;
}

Status MemberService::SealWriting(uint64_t uid, std::string_view path, uint64_t epoch,
                                  const MetaStore::TxnFn& also) {
  Status s = store_->SealWithOrigin(ChunkObjectName(uid), EncodeOrigin(epoch, path), also);
  if (s.ok()) {
    MutexLock lk(&mu_);
    open_.erase(uid);
  }
  return s;
}

Status MemberService::ChunkCommit(uint64_t uid, std::string_view path) {
  if (!Writing(uid)) {
    if (store_->Stat(ChunkObjectName(uid)).ok()) return Status::OK();
    return Status::FailedPrecondition(
        fmt::format("commit of object {:016x}: this member holds no chunk of it", uid));
  }
  return SealWriting(uid, path, epoch_.load(), {});
}

Result<uint64_t> MemberService::ChunkCommitWithRecord(uint64_t uid, std::string_view path,
                                                      Inode inode) {
  if (!Writing(uid)) {
    return Status::FailedPrecondition(
        fmt::format("commit of object {:016x}: this member is not writing it", uid));
  }
  // Cheap, and what makes one transaction of the two keyspaces sound.
  if (!shard_->SharesEnvironment(store_->meta())) {
    return Status::FailedPrecondition("the shard is not in the store's metadata environment");
  }
  const uint64_t epoch = epoch_.load();
  uint64_t version = 0;
  SHOAL_RETURN_IF_ERROR(SealWriting(uid, path, epoch, [&](MDB_txn* txn) {
    return shard_->InsertVersionedTxn(txn, ShardOfPath(path), path, &inode, 0, VersionFloor(epoch),
                                      &version);
  }));
  return version;
}

Status MemberService::ChunkPutMany(const protocol::ChunkPutMany& req) {
  return PutChunkObjects(req, epoch_.load(), {});
}

Result<std::vector<uint64_t>> MemberService::ChunkPutManyWithRecords(
    const protocol::ChunkPutMany& chunks, std::span<protocol::MetaInsert> records) {
  if (!shard_->SharesEnvironment(store_->meta())) {
    return Status::FailedPrecondition("the shard is not in the store's metadata environment");
  }
  const uint64_t epoch = epoch_.load();
  std::vector<uint64_t> versions(records.size());
  SHOAL_RETURN_IF_ERROR(PutChunkObjects(chunks, epoch, [&](MDB_txn* txn) {
    for (size_t i = 0; i < records.size(); ++i) {
      protocol::MetaInsert& r = records[i];
      SHOAL_RETURN_IF_ERROR(shard_->InsertVersionedTxn(txn, ShardOfPath(r.path), r.path, &r.inode,
                                                       0, VersionFloor(epoch), &versions[i]));
    }
    return Status::OK();
  }));
  return versions;
}

Status MemberService::PutChunkObjects(const protocol::ChunkPutMany& req, uint64_t epoch,
                                      const MetaStore::TxnFn& also) {
  std::vector<std::string> names, origins;
  names.reserve(req.items.size());
  origins.reserve(req.items.size());
  std::vector<ObjectStore::WholeObject> objects;
  objects.reserve(req.items.size());
  for (const protocol::ChunkPutItem& i : req.items) {
    names.push_back(ChunkObjectName(i.uid));
    origins.push_back(EncodeOrigin(epoch, i.path));
    objects.push_back({names.back(), origins.back(), i.data});
  }
  return store_->PutMany(objects, req.chunk_size, also);
}

protocol::LeaseReply MemberService::Lease(const protocol::LeaseRequest& req) {
  if (req.release) {
    leases_.Release(req.path, req.holder);
    return protocol::LeaseReply{false, 0, 0};
  }
  const LeaseTable::Outcome o =
      leases_.Try(req.path, req.holder, std::chrono::milliseconds(req.ttl_ms));
  return protocol::LeaseReply{o.granted, o.holder, o.age_ms};
}

Status MemberService::ChunkDrop(uint64_t uid) {
  bool open = false;
  {
    MutexLock lk(&mu_);
    open = open_.erase(uid) != 0;
  }
  if (open) return store_->Abort(ChunkObjectName(uid));
  Status s = store_->Remove(ChunkObjectName(uid));
  return s.code() == Code::kNotFound ? Status::OK() : s;
}

Status MemberService::ChunkRead(const protocol::ChunkRead& req, std::span<std::byte> dst,
                                uint64_t* n) {
  ReadRequest rq{ChunkObjectName(req.uid), req.chunk * req.chunk_size + req.in_chunk, dst, {}, 0};
  (void)store_->ReadBatch({&rq, 1});
  *n = rq.bytes_read;
  return rq.status;
}

void MemberService::SetBehind(const std::vector<uint32_t>& shards) {
  MutexLock lk(&behind_mu_);
  behind_ = std::set<uint32_t>(shards.begin(), shards.end());
  any_behind_.store(!behind_.empty());
}

void MemberService::CaughtUp(uint32_t shard) {
  MutexLock lk(&behind_mu_);
  behind_.erase(shard);
  any_behind_.store(!behind_.empty());
}

void MemberService::SetRetired(const std::vector<uint32_t>& shards) {
  MutexLock lk(&behind_mu_);
  retired_ = std::set<uint32_t>(shards.begin(), shards.end());
  any_retired_.store(!retired_.empty());
}

void MemberService::Dropped(uint32_t shard) {
  MutexLock lk(&behind_mu_);
  retired_.erase(shard);
  any_retired_.store(!retired_.empty());
}

Status MemberService::CheckCurrent(std::string_view path) const {
  if (!any_behind_.load()) return Status::OK();
  const uint32_t shard = ShardOfPath(path);
  MutexLock lk(&behind_mu_);
  if (behind_.count(shard) == 0) return Status::OK();
  return Status::Unavailable(fmt::format(
      "metadata shard {} is still catching up on this member: ask a holder", shard));
}

Status MemberService::MetaCheck(std::string_view path) {
  SHOAL_RETURN_IF_ERROR(CheckCurrent(path));
  return shard_->CheckCreatable(path);
}

Result<Inode> MemberService::MetaGet(std::string_view path) {
  SHOAL_RETURN_IF_ERROR(CheckCurrent(path));
  return shard_->GetInode(path);
}

std::vector<Result<Inode>> MemberService::MetaGetMany(std::span<const std::string_view> paths) {
  std::vector<Status> current;
  std::vector<std::string_view> ask;
  current.reserve(paths.size());
  for (std::string_view path : paths) {
    current.push_back(CheckCurrent(path));
    if (current.back().ok()) ask.push_back(path);
  }
  std::vector<Result<Inode>> found = shard_->GetInodes(ask);
  std::vector<Result<Inode>> out;
  out.reserve(paths.size());
  size_t next = 0;
  for (Status& s : current) {
    if (s.ok()) {
      out.push_back(std::move(found[next++]));
    } else {
      out.emplace_back(std::move(s));
    }
  }
  return out;
}

Result<std::string> MemberService::MetaGetEncoded(std::string_view path) {
  SHOAL_RETURN_IF_ERROR(CheckCurrent(path));
  return shard_->GetInodeBytes(path);
}

std::string EncodeOrigin(uint64_t epoch, std::string_view path) {
  return fmt::format("{:016x} {}", epoch, path);
}

bool DecodeOrigin(std::string_view origin, uint64_t* epoch, std::string* path) {
  if (origin.size() < 18 || origin[16] != ' ') return false;
  auto [end, ec] = std::from_chars(origin.data(), origin.data() + 16, *epoch, 16);
  if (ec != std::errc() || end != origin.data() + 16) return false;
  *path = std::string(origin.substr(17));
  return true;
}

Result<std::vector<LocalObject>> LocalObjectsOf(ObjectStore& store, std::string_view dir) {
  if (!dir.empty()) SHOAL_RETURN_IF_ERROR(ValidateDirPath(dir));
  std::vector<LocalObject> out;
  std::string after;
  for (;;) {
    SHOAL_ASSIGN_OR_RETURN(ListPage page, store.ListChunkObjects(after, 10000));
    for (const DirEntry& e : page.entries) {
      auto origin = store.OriginOf(ChunkObjectName(std::strtoull(e.name.c_str(), nullptr, 16)));
      if (!origin.ok()) continue;  // removed since the page was read, or older than origins
      uint64_t epoch = 0;
      std::string path;
      if (!DecodeOrigin(*origin, &epoch, &path)) continue;
      if (!dir.empty() && (path.size() <= dir.size() || path.compare(0, dir.size(), dir) != 0 ||
                           path[dir.size()] != '/')) {
        continue;
      }
      out.push_back(LocalObject{std::move(path), e.size});
    }
    if (!page.truncated) return out;
    after = page.next_start_after;
  }
}

uint32_t MemberService::ShardOfPath(std::string_view path) const {
  return ShardOf(path, shards_.load());
}

Result<uint64_t> MemberService::MetaInsert(std::string_view path, Inode inode, uint64_t version) {
  return shard_->InsertVersioned(ShardOfPath(path), path, &inode, version,
                                 VersionFloor(epoch_.load()));
}

std::vector<Result<uint64_t>> MemberService::MetaInsertMany(
    std::span<protocol::MetaInsert> records) {
  std::vector<MetaStore::VersionedInsert> batch;
  batch.reserve(records.size());
  for (protocol::MetaInsert& r : records) {
    batch.push_back({ShardOfPath(r.path), r.path, &r.inode, r.version});
  }
  return shard_->InsertVersionedMany(batch, VersionFloor(epoch_.load()));
}

Result<uint64_t> MemberService::MetaReplace(std::string_view path, uint64_t uid,
                                            const Inode& inode, uint64_t version) {
  return shard_->ReplaceVersioned(ShardOfPath(path), path, uid, inode, version);
}

Result<protocol::RemoveReply> MemberService::MetaRemove(std::string_view path, uint64_t uid,
                                                        uint64_t version) {
  SHOAL_ASSIGN_OR_RETURN(auto removed,
                         shard_->RemoveVersioned(ShardOfPath(path), path, uid, version,
                                                 VersionFloor(epoch_.load())));
  return protocol::RemoveReply{removed.second, std::move(removed.first)};
}

Result<protocol::ShardPageReply> MemberService::ShardPage(uint32_t shard, std::string_view after,
                                                          uint32_t limit) {
  protocol::ShardPageReply reply;
  SHOAL_ASSIGN_OR_RETURN(auto page, shard_->ShardPage(shard, after, limit, &reply.next));
  reply.records.reserve(page.size());
  for (auto& rec : page) {
    reply.records.push_back({std::move(rec.path), rec.version, rec.tombstone, std::move(rec.inode)});
  }
  return reply;
}

Result<ListPage> MemberService::MetaList(std::string_view dir, std::string_view start_after,
                                         uint32_t limit) {
  const ListOptions options{std::string(start_after), limit};
  if (!any_retired_.load()) return shard_->List(dir, options);
  std::set<uint32_t> retired;
  {
    MutexLock lk(&behind_mu_);
    retired = retired_;
  }
  return shard_->List(dir, options, [&](std::string_view path) {
    return retired.count(ShardOfPath(path)) == 0;
  });
}

// ---- the request table ----

namespace {

Reply Fail(Status s) { return Reply{std::move(s), {}}; }
Reply Done(Status s) { return Reply{std::move(s), {}}; }

// Decodes a request of type Req, or answers the decoder's error.
template <typename Req, typename Fn>
Reply With(std::span<const std::byte> bytes, Fn&& fn) {
  Req req;
  Status s = protocol::Decode(bytes, &req);
  if (!s.ok()) return Fail(std::move(s));
  return fn(req);
}

}  // namespace

Reply MemberService::Handle(uint16_t op, std::span<const std::byte> request) {
  using namespace protocol;
  switch (static_cast<Op>(op)) {
    case Op::kChunkWrite:
      return With<protocol::ChunkWrite>(request, [&](auto& r) { return Done(ChunkWrite(r)); });
    case Op::kChunkCommit:
      return With<protocol::ChunkCommit>(request,
                                         [&](auto& r) { return Done(ChunkCommit(r.uid, r.path)); });
    case Op::kChunkDrop:
      return With<UidRequest>(request, [&](auto& r) { return Done(ChunkDrop(r.uid)); });
    case Op::kChunkRead:
      return With<protocol::ChunkRead>(request, [&](auto& r) {
        // The bytes go out of the pool buffer they were read into (the reply lends it) as the
        // reply's body, its head apart (the transport sends it in the message header, so the
        // reader takes the body contiguously into its destination); the whole chunk's CRC32C
        // is the stored one, checked by that read.
        if (auto lent = store_->LendChunkRange(ChunkObjectName(r.uid),
                                               r.chunk * r.chunk_size + r.in_chunk, r.len)) {
          const uint32_t crc = lent->crc ? *lent->crc : Crc32c(lent->data.data(), lent->data.size());
          Payload head(kChunkReadReplyHead);
          EncodeChunkReadHead(crc, lent->data.size(), head.data());
          return Reply{Status::OK(), std::move(head), lent->data, std::move(lent->keep)};
        }
        // Otherwise the reply is built in place: head, then the bytes read straight into it.
        Payload out(kChunkReadReplyHead + r.len);
        uint64_t n = 0;
        Status s = ChunkRead(r, {out.data() + kChunkReadReplyHead, r.len}, &n);
        if (!s.ok()) return Fail(std::move(s));
        EncodeChunkReadHead(Crc32c(out.data() + kChunkReadReplyHead, n), n, out.data());
        out.resize(kChunkReadReplyHead + n);
        return Reply{Status::OK(), std::move(out)};
      });
    case Op::kChunkPutMany:
      return With<protocol::ChunkPutMany>(request, [&](auto& r) { return Done(ChunkPutMany(r)); });
    case Op::kMetaInsertMany:
      return With<protocol::MetaInsertMany>(request, [&](auto& r) {
        return Reply{Status::OK(), Encode(VersionsReply{MetaInsertMany(r.records)})};
      });
    case Op::kLease:
      return With<LeaseRequest>(request, [&](auto& r) {
        return Reply{Status::OK(), Encode(Lease(r))};
      });
    case Op::kMetaCheck:
      return With<PathRequest>(request, [&](auto& r) { return Done(MetaCheck(r.path)); });
    case Op::kMetaGet:
      return With<PathRequest>(request, [&](auto& r) {
        // InodeReply's encoding is the stored record: sent as it is, checked by the reader.
        auto bytes = MetaGetEncoded(r.path);
        if (!bytes.ok()) return Fail(bytes.status());
        const auto* p = reinterpret_cast<const std::byte*>(bytes->data());
        return Reply{Status::OK(), Payload(p, p + bytes->size())};
      });
    case Op::kMetaGetMany:
      return With<PathsRequest>(request, [&](auto& r) {
        return Reply{Status::OK(), Encode(InodesReply{MetaGetMany(r.paths)})};
      });
    case Op::kMetaInsert:
      return With<protocol::MetaInsert>(request, [&](auto& r) {
        auto v = MetaInsert(r.path, std::move(r.inode), r.version);
        if (!v.ok()) return Fail(v.status());
        return Reply{Status::OK(), Encode(VersionReply{*v})};
      });
    case Op::kMetaReplace:
      return With<protocol::MetaReplace>(request, [&](auto& r) {
        auto v = MetaReplace(r.path, r.uid, r.inode, r.version);
        if (!v.ok()) return Fail(v.status());
        return Reply{Status::OK(), Encode(VersionReply{*v})};
      });
    case Op::kMetaRemove:
      return With<protocol::MetaRemove>(request, [&](auto& r) {
        auto removed = MetaRemove(r.path, r.uid, r.version);
        if (!removed.ok()) return Fail(removed.status());
        return Reply{Status::OK(), Encode(*removed)};
      });
    case Op::kShardPage:
      return With<protocol::ShardPage>(request, [&](auto& r) {
        auto page = ShardPage(r.shard, r.after, r.limit);
        if (!page.ok()) return Fail(page.status());
        return Reply{Status::OK(), Encode(*page)};
      });
    case Op::kMetaList:
      return With<protocol::MetaList>(request, [&](auto& r) {
        auto page = MetaList(r.dir, r.start_after, r.limit);
        if (!page.ok()) return Fail(page.status());
        return Reply{Status::OK(), Encode(MetaListReply{page->truncated, page->entries})};
      });
    case Op::kCollectiveContribute:
    case Op::kCollectiveResult:
      break;  // the world's (engine/world.h)
  }
  return Fail(Status::InvalidArgument(fmt::format("unknown member op {}", op)));
}

void MemberService::Install(transport::Transport& transport) {
  transport.SetBodyHandler(
      protocol::Wire(Op::kChunkWrite), protocol::kChunkWriteHead,
      [this](size_t length) { return WriteBody(length); },
      [this](uint32_t, std::span<const std::byte> head, transport::Body body) {
        return ServeChunkWrite(head, std::move(body));
      });
  for (Op op : protocol::kAllOps) {
    if (op == Op::kCollectiveContribute || op == Op::kCollectiveResult) continue;
    if (op == Op::kChunkWrite) continue;
    transport.SetHandler(protocol::Wire(op), [this, op](uint32_t, std::span<const std::byte> p) {
      return Handle(protocol::Wire(op), p);
    });
  }
}

}  // namespace shoal::engine
