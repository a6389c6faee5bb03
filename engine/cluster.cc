#include "engine/cluster.h"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <optional>
#include <random>

#include "base/bytes.h"
#include "base/crc32c.h"
#include "base/log.h"
#include "engine/interval_set.h"
#include "engine/object_rules.h"
#include "engine/path.h"

namespace shoal::engine {
namespace {

using transport::Payload;
using transport::Reply;

constexpr uint32_t kMaxListLimit = 1000000;
constexpr size_t kChunkWriteHeader = 8 + 4 + 8 + 4;
constexpr size_t kChunkReadHeader = 4 + 8;

std::string ChunkObject(uint64_t uid) { return fmt::format("c/{:016x}", uid); }

uint64_t NewUid() {
  thread_local std::mt19937_64 gen{(static_cast<uint64_t>(std::random_device{}()) << 32) ^
                                   std::random_device{}() ^ static_cast<uint64_t>(SealTimeNs())};
  uint64_t v = 0;
  while (v == 0) v = gen();
  return v;
}

// Counts asynchronous calls in flight, at most `window` at a time.
class Flight {
 public:
  explicit Flight(size_t window) : window_(std::max<size_t>(1, window)) {}
  void Acquire() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return n_ < window_; });
    ++n_;
  }
  void Release() {
    std::lock_guard lk(mu_);
    --n_;
    cv_.notify_all();  // under the lock: the waiter may destroy this right after
  }
  void Wait() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return n_ == 0; });
  }

 private:
  const size_t window_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t n_ = 0;
};

bool Decisive(const Status& s) {
  // Errors that another replica would answer the same way.
  return s.code() == Code::kNotFound || s.code() == Code::kInvalidArgument ||
         s.code() == Code::kAlreadyExists;
}

Payload PathRequest(std::string_view path) {
  ByteWriter w;
  w.Prefixed(path);
  return w.Take();
}

// A holder's chunk-read reply into `dst`: CRC32C, count, bytes (fewer than asked: zeros after).
Status TakeChunkReply(const Payload& reply, std::span<std::byte> dst) {
  ByteReader rd(reply);
  uint32_t crc = 0;
  uint64_t n = 0;
  std::span<const std::byte> bytes;
  if (!rd.Get(&crc) || !rd.Get(&n) || n > dst.size() || !rd.Raw(n, &bytes) || !rd.done()) {
    return Status::Corruption("chunk read: malformed reply");
  }
  if (Crc32c(bytes.data(), n) != crc) return Status::Corruption("chunk read: CRC32C mismatch in transit");
  std::memcpy(dst.data(), bytes.data(), n);
  std::memset(dst.data() + n, 0, dst.size() - n);  // never written there: zeros
  return Status::OK();
}

Payload ChunkWriteRequest(uint64_t uid, uint32_t chunk_size, uint64_t chunk, uint32_t in,
                          std::span<const std::byte> data) {
  ByteWriter w;
  w.Put<uint64_t>(uid);
  w.Put<uint32_t>(chunk_size);
  w.Put<uint64_t>(chunk);
  w.Put<uint32_t>(in);
  w.Raw(data);
  return w.Take();
}

// A metadata insert: the path and the encoded inode.
Payload InsertRequest(std::string_view path, const Inode& inode) {
  ByteWriter w;
  w.Prefixed(path);
  w.Raw(EncodeInode(inode));
  return w.Take();
}

Payload ChunkReadRequest(uint64_t uid, uint32_t chunk_size, uint64_t chunk, uint32_t in,
                         uint32_t len) {
  ByteWriter w;
  w.Put<uint64_t>(uid);
  w.Put<uint32_t>(chunk_size);
  w.Put<uint64_t>(chunk);
  w.Put<uint32_t>(in);
  w.Put<uint32_t>(len);
  return w.Take();
}

Payload UidRequest(uint64_t uid) {
  ByteWriter w;
  w.Put<uint64_t>(uid);
  return w.Take();
}

}  // namespace

// An object between Create and Seal/Abort on this rank.
struct Cluster::Writing {
  std::string path;
  uint64_t uid = 0;
  uint32_t chunk_size = 0;
  uint64_t declared = kUnknownSize;
  bool keep_inline = false;  // declared size <= inline threshold: the bytes stay here
  int32_t home = -1;         // local_first: this member's placement index

  std::mutex mu;
  std::condition_variable cv;
  std::string small;          // keep_inline: the object's bytes
  IntervalSet small_written;  // keep_inline: overlap checks
  uint64_t end = 0;
  std::vector<uint8_t> written;  // bit per chunk with data
  std::set<uint32_t> holders;    // ranks holding pieces
  std::unique_ptr<Flight> flight;  // remote piece writes in flight (bounded by the window)
  uint32_t writers = 0;
  bool closing = false;
  Status error;
};

// One chunk range of a read and the replicas it may come from.
struct Cluster::Piece {
  size_t request = 0;
  uint32_t chunk_size = 0;
  uint64_t chunk = 0;
  uint32_t in_chunk = 0;
  uint32_t len = 0;
  std::byte* dst = nullptr;
  std::vector<Replica> candidates;  // nearest first
  size_t next = 0;
  Status status;
};

Result<std::unique_ptr<Cluster>> Cluster::Start(const ClusterOptions& options,
                                                std::unique_ptr<ObjectStore> store,
                                                WorldOptions wo,
                                                transport::Rendezvous& rendezvous) {
  std::unique_ptr<Cluster> c(new Cluster());
  c->options_ = options;
  c->store_ = std::move(store);
  SHOAL_ASSIGN_OR_RETURN(c->ring_, MetaStore::Open(options.ring_dir, options.metadata_map_size));
  wo.member_id = c->store_->member_id();
  wo.handler_threads = std::max<uint32_t>(wo.handler_threads, 4);
  Cluster* self = c.get();
  wo.install_handlers = [self](transport::Messenger& m) {
    for (uint16_t op : {kOpChunkWrite, kOpChunkCommit, kOpChunkDrop, kOpChunkRead, kOpMetaCheck,
                        kOpMetaInsert, kOpMetaGet, kOpMetaList, kOpMetaRemove, kOpMetaReplace}) {
      m.SetHandler(op, [self, op](uint32_t, std::span<const std::byte> p) {
        return self->Serve(op, p);
      });
    }
  };
  SHOAL_ASSIGN_OR_RETURN(c->world_, World::Join(wo, rendezvous));

  std::vector<PlacementMember> members;
  for (const MemberInfo& m : c->world_->members()) {
    members.push_back({m.member_id, m.node});
    c->rank_of_member_[m.member_id] = m.rank;
  }
  c->placement_ = std::make_unique<Placement>(std::move(members));
  for (const PlacementMember& m : c->placement_->members()) {
    if (m.member_id == c->store_->member_id()) {
      c->my_index_ = static_cast<int32_t>(c->rank_of_.size());
    }
    c->rank_of_.push_back(c->rank_of_member_.at(m.member_id));
  }
  c->replicas_ = std::clamp<uint32_t>(options.replicas, 1, c->world_->size());
  Log(LogLevel::kInfo, "cluster: rank {} of {}, {} replica(s), window {}", c->world_->rank(),
      c->world_->size(), c->replicas_, options.window);
  return c;
}

Cluster::~Cluster() {
  world_.reset();  // no handler runs after this
  ring_.reset();
  store_.reset();
}

// ---------------------------------------------------------------------------------------------
// Serving side: holders and owners. Every field of a request is checked before use.

Reply Cluster::Serve(uint16_t op, std::span<const std::byte> request) {
  ByteReader r(request);
  auto bad = [&](std::string_view what) {
    return Reply{Status::InvalidArgument(fmt::format("malformed {} request", what)), {}};
  };
  auto path_of = [&](std::string_view* path) {
    std::span<const std::byte> p;
    if (!r.Prefixed(kMaxPathBytes, &p)) return false;
    *path = AsChars(p);
    return true;
  };
  switch (op) {
    case kOpChunkWrite: {
      uint64_t uid = 0, chunk = 0;
      uint32_t cs = 0, in = 0;
      std::span<const std::byte> data;
      if (!r.Get(&uid) || !r.Get(&cs) || !r.Get(&chunk) || !r.Get(&in) ||
          !r.Raw(r.left(), &data)) {
        return bad("chunk write");
      }
      return {HolderWrite(uid, cs, chunk, in, data), {}};
    }
    case kOpChunkCommit:
    case kOpChunkDrop: {
      uint64_t uid = 0;
      if (!r.Get(&uid) || !r.done()) return bad("chunk commit/drop");
      return {op == kOpChunkCommit ? HolderCommit(uid) : HolderDrop(uid), {}};
    }
    case kOpChunkRead: {
      uint64_t uid = 0, chunk = 0;
      uint32_t cs = 0, in = 0, len = 0;
      if (!r.Get(&uid) || !r.Get(&cs) || !r.Get(&chunk) || !r.Get(&in) || !r.Get(&len) ||
          !r.done()) {
        return bad("chunk read");
      }
      if (!IsValidChunkSize(cs) || len == 0 || in >= cs || len > cs - in ||
          chunk >= kMaxObjectSize / cs) {
        return {Status::InvalidArgument(fmt::format(
                    "chunk read: range [{}, +{}) of chunk {} (size {}) is invalid", in, len,
                    chunk, cs)),
                {}};
      }
      Payload out(kChunkReadHeader + len);
      ReadRequest rq{ChunkObject(uid), chunk * cs + in,
                     std::span<std::byte>(out.data() + kChunkReadHeader, len), {}, 0};
      (void)store_->ReadBatch({&rq, 1});
      if (!rq.status.ok()) return {rq.status, {}};
      uint32_t crc = Crc32c(out.data() + kChunkReadHeader, rq.bytes_read);
      uint64_t n = rq.bytes_read;
      std::memcpy(out.data(), &crc, 4);
      std::memcpy(out.data() + 4, &n, 8);
      out.resize(kChunkReadHeader + n);
      return {Status::OK(), std::move(out)};
    }
    case kOpMetaCheck:
    case kOpMetaGet: {
      std::string_view path;
      if (!path_of(&path) || !r.done()) return bad("metadata");
      Status v = ValidateObjectPath(path);
      if (!v.ok()) return {v, {}};
      if (op == kOpMetaCheck) return {ring_->CheckCreatable(path), {}};
      auto inode = ring_->GetInode(path);
      if (!inode.ok()) return {inode.status(), {}};
      std::string rec = EncodeInode(*inode);
      return {Status::OK(), Payload(AsBytes(rec).begin(), AsBytes(rec).end())};
    }
    case kOpMetaInsert: {
      std::string_view path;
      std::span<const std::byte> rec;
      if (!path_of(&path) || !r.Raw(r.left(), &rec)) return bad("metadata insert");
      Status v = ValidateObjectPath(path);
      if (!v.ok()) return {v, {}};
      auto inode = DecodeInode(AsChars(rec), path);
      if (!inode.ok()) return {Status::InvalidArgument(inode.status().message()), {}};
      if (!inode->is_inline && !inode->is_striped) {
        return {Status::InvalidArgument("metadata insert: inode names local extents"), {}};
      }
      return {ring_->InsertObject(path, &*inode), {}};
    }
    case kOpMetaReplace: {
      std::string_view path;
      uint64_t uid = 0;
      std::span<const std::byte> rec;
      if (!path_of(&path) || !r.Get(&uid) || !r.Raw(r.left(), &rec)) return bad("metadata replace");
      Status v = ValidateObjectPath(path);
      if (!v.ok()) return {v, {}};
      auto inode = DecodeInode(AsChars(rec), path);
      if (!inode.ok()) return {Status::InvalidArgument(inode.status().message()), {}};
      return {ring_->ReplaceStriped(path, uid, *inode), {}};
    }
    case kOpMetaList: {
      std::string_view dir, start;
      uint32_t limit = 0;
      if (!path_of(&dir) || !path_of(&start) || !r.Get(&limit) || !r.done()) return bad("list");
      Status v = ValidateDirPath(dir);
      if (!v.ok()) return {v, {}};
      ListOptions lo{std::string(start), limit};
      auto page = ring_->List(dir, lo);
      if (!page.ok()) return {page.status(), {}};
      ByteWriter w;
      w.Put<uint8_t>(page->truncated ? 1 : 0);
      w.Put<uint32_t>(static_cast<uint32_t>(page->entries.size()));
      for (const DirEntry& e : page->entries) {
        w.Prefixed(e.name);
        w.Put<uint8_t>(e.is_dir ? 1 : 0);
        w.Put<uint64_t>(e.size);
      }
      return {Status::OK(), w.Take()};
    }
    case kOpMetaRemove: {
      std::string_view path;
      uint64_t uid = 0;
      if (!path_of(&path) || !r.Get(&uid) || !r.done()) return bad("metadata remove");
      Status v = ValidateObjectPath(path);
      if (!v.ok()) return {v, {}};
      if (uid != 0) {  // only the record of that object (a rollback must not remove a winner's)
        auto cur = ring_->GetInode(path);
        if (!cur.ok()) return {cur.status(), {}};
        if (cur->uid != uid) {
          return {Status::NotFound(fmt::format("\"{}\" is another object now", path)), {}};
        }
      }
      auto removed = ring_->RemoveObject(path);
      if (!removed.ok()) return {removed.status(), {}};
      std::string rec = EncodeInode(*removed);
      return {Status::OK(), Payload(AsBytes(rec).begin(), AsBytes(rec).end())};
    }
    default:
      return {Status::InvalidArgument(fmt::format("unknown cluster op {}", op)), {}};
  }
}

Status Cluster::HolderWrite(uint64_t uid, uint32_t cs, uint64_t chunk, uint32_t in,
                            std::span<const std::byte> data) {
  if (!IsValidChunkSize(cs) || data.empty() || in >= cs || data.size() > cs - in ||
      chunk >= kMaxObjectSize / cs) {
    return Status::InvalidArgument(fmt::format(
        "chunk write: {} bytes at {} of chunk {} (size {}) is invalid", data.size(), in, chunk,
        cs));
  }
  std::string name = ChunkObject(uid);
  {
    std::lock_guard lk(holder_mu_);
    auto it = holder_open_.find(uid);
    if (it == holder_open_.end()) {
      SHOAL_RETURN_IF_ERROR(store_->Create(name, CreateOptions{kUnknownSize, cs}));
      holder_open_.emplace(uid, cs);
    } else if (it->second != cs) {
      return Status::InvalidArgument(fmt::format("chunk write: object {:016x} has chunk size {}, "
                                                 "not {}", uid, it->second, cs));
    }
  }
  return store_->Write(name, chunk * cs + in, data);
}

Status Cluster::HolderCommit(uint64_t uid) {
  {
    std::lock_guard lk(holder_mu_);
    if (holder_open_.count(uid) == 0) {
      // Sealed by an earlier commit whose reply was lost: committing again is a no-op.
      auto st = store_->Stat(ChunkObject(uid));
      if (st.ok()) return Status::OK();
      return Status::FailedPrecondition(
          fmt::format("commit of object {:016x}: this member holds no chunk of it", uid));
    }
  }
  Status s = store_->Seal(ChunkObject(uid));
  if (s.ok()) {
    std::lock_guard lk(holder_mu_);
    holder_open_.erase(uid);
  }
  return s;
}

Status Cluster::HolderDrop(uint64_t uid) {
  std::string name = ChunkObject(uid);
  bool open = false;
  {
    std::lock_guard lk(holder_mu_);
    open = holder_open_.erase(uid) != 0;
  }
  if (open) return store_->Abort(name);
  Status s = store_->Remove(name);
  return s.code() == Code::kNotFound ? Status::OK() : s;
}

// ---------------------------------------------------------------------------------------------
// Client side.

Result<Payload> Cluster::Ask(uint32_t rank, uint16_t op, std::span<const std::byte> request) {
  if (rank == world_->rank()) {
    Reply r = Serve(op, request);
    if (!r.status.ok()) return r.status;
    return std::move(r.payload);
  }
  return world_->messenger().Call(rank, op, request, options_.deadline);
}

std::vector<Result<Payload>> Cluster::AskAll(const std::vector<uint32_t>& ranks, uint16_t op,
                                             std::span<const std::byte> request) {
  std::vector<Result<Payload>> out(ranks.size(), Status::Unavailable("no reply"));
  Flight flight(ranks.size() + 1);
  bool local = false;
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (ranks[i] == world_->rank()) {
      local = true;
      continue;
    }
    flight.Acquire();
    world_->messenger().CallAsync(ranks[i], op, Payload(request.begin(), request.end()),
                                  options_.deadline, [&out, &flight, i](Result<Payload> r) {
                                    out[i] = std::move(r);
                                    flight.Release();
                                  });
  }
  if (local) {
    for (size_t i = 0; i < ranks.size(); ++i) {
      if (ranks[i] == world_->rank()) out[i] = Ask(ranks[i], op, request);
    }
  }
  flight.Wait();
  return out;
}

std::vector<uint32_t> Cluster::Owners(std::string_view path) const {
  std::vector<uint32_t> ranks;
  for (uint32_t idx : placement_->MetadataOwners(path, replicas_)) ranks.push_back(rank_of_[idx]);
  return ranks;
}

std::vector<Cluster::Replica> Cluster::LiveReplicas(const Inode& inode,
                                                   const Placement& placement,
                                                   uint64_t chunk) const {
  const uint32_t me = world_->rank();
  const std::string& my_node = world_->members()[me].node;
  std::vector<std::pair<int, Replica>> ranked;
  auto add = [&](const std::string& member_id, uint64_t uid) {
    auto it = rank_of_member_.find(member_id);
    if (it == rank_of_member_.end()) return;  // not in this world
    uint32_t rank = it->second;
    if (!Reachable(rank)) return;
    for (auto& [d, r] : ranked) {
      if (r.rank == rank && r.uid == uid) return;
    }
    int distance = rank == me ? 0 : world_->members()[rank].node == my_node ? 1 : 2;
    ranked.push_back({distance, Replica{rank, uid}});
  };
  for (uint32_t idx : placement.ChunkHolders(inode.uid, chunk, inode.replicas, inode.home)) {
    add(placement.members()[idx].member_id, inode.uid);
  }
  for (const Inode::Copy& c : inode.copies) {
    if (c.chunk == chunk) add(c.member.member_id, c.uid);
  }
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Replica> out;
  for (auto& [d, r] : ranked) out.push_back(r);
  return out;
}

const Placement& Cluster::PlacementFor(const Inode& inode,
                                       std::unique_ptr<Placement>* scratch) const {
  if (inode.layout == placement_->members()) return *placement_;
  *scratch = std::make_unique<Placement>(inode.layout);
  return **scratch;
}

Result<Inode> Cluster::LookupInode(std::string_view path) {
  std::vector<uint32_t> owners = Owners(path);
  const uint32_t me = world_->rank();
  std::stable_partition(owners.begin(), owners.end(), [&](uint32_t r) { return r == me; });
  Status last = Status::Unavailable(
      fmt::format("no live member holds the metadata of \"{}\"", path));
  bool not_found = false;
  Payload request = PathRequest(path);
  for (uint32_t owner : owners) {
    if (!Reachable(owner)) continue;
    auto reply = Ask(owner, kOpMetaGet, request);
    if (reply.ok()) {
      auto inode = DecodeInode(AsChars(*reply), path);
      if (inode.ok()) return inode;
      last = inode.status();
      continue;
    }
    if (reply.status().code() == Code::kNotFound) {
      not_found = true;  // a replica that lost its store says so too: ask the others
    } else if (reply.status().code() == Code::kInvalidArgument) {
      return reply.status();
    } else {
      last = reply.status();
    }
  }
  if (not_found) return Status::NotFound(fmt::format("no object \"{}\"", path));
  return last;
}

Status Cluster::Create(std::string_view path, const CreateOptions& co) {
  SHOAL_ASSIGN_OR_RETURN(uint32_t cs, CheckCreate(path, co, options_.chunk_size));
  auto w = std::make_shared<Writing>();
  w->path = std::string(path);
  w->uid = NewUid();
  w->chunk_size = cs;
  w->declared = co.size;
  w->keep_inline = co.size != kUnknownSize && co.size <= options_.inline_threshold;
  w->home = co.local_first ? my_index_ : -1;
  w->flight = std::make_unique<Flight>(options_.window);
  if (w->keep_inline) w->small.assign(co.size, '\0');
  {
    std::lock_guard lk(open_mu_);
    if (open_.count(path) != 0) {
      return Status::AlreadyExists(fmt::format("object \"{}\" is being written", path));
    }
  }
  // The primary owner (or the first live replica) decides whether the name is free now; a
  // concurrent creator elsewhere is caught again at Seal.
  Status check = Status::Unavailable(fmt::format("no live owner of \"{}\"", path));
  Payload request = PathRequest(path);
  for (uint32_t owner : Owners(path)) {
    if (!Reachable(owner)) continue;
    auto reply = Ask(owner, kOpMetaCheck, request);
    check = reply.status();
    if (reply.ok() || Decisive(check) || check.code() == Code::kFailedPrecondition) break;
  }
  SHOAL_RETURN_IF_ERROR(check);
  std::lock_guard lk(open_mu_);
  if (!open_.emplace(w->path, w).second) {
    return Status::AlreadyExists(fmt::format("object \"{}\" is being written", path));
  }
  return Status::OK();
}

Result<std::shared_ptr<Cluster::Writing>> Cluster::FindWriting(std::string_view path) {
  {
    std::lock_guard lk(open_mu_);
    auto it = open_.find(path);
    if (it != open_.end()) return it->second;
  }
  return NotBeingWritten(path);
}

Status Cluster::Write(std::string_view path, uint64_t offset, std::span<const std::byte> data) {
  SHOAL_ASSIGN_OR_RETURN(auto w, FindWriting(path));
  const uint64_t len = data.size();
  SHOAL_RETURN_IF_ERROR(CheckWrite(path, offset, len, w->declared));
  if (len == 0) return Status::OK();
  {
    std::lock_guard lk(w->mu);
    if (!w->error.ok()) return w->error;
    if (w->closing) {
      return Status::FailedPrecondition(fmt::format("\"{}\" is being sealed or aborted", path));
    }
    if (w->keep_inline) {
      if (w->small_written.Overlaps(offset, offset + len)) {
        return Status::InvalidArgument(fmt::format(
            "write [{}, {}) of \"{}\" overlaps an earlier write", offset, offset + len, path));
      }
      w->small_written.Add(offset, offset + len);
      std::memcpy(w->small.data() + offset, data.data(), len);
      w->end = std::max(w->end, offset + len);
      return Status::OK();
    }
    w->writers++;
  }

  // Remote pieces are copied into their requests, so the caller's buffer is free on return and
  // the requests stay in flight (at most `window` per object); their errors surface at a later
  // Write or at Seal. Pieces this member holds go to its store now.
  const uint64_t cs = w->chunk_size;
  const uint32_t me = world_->rank();
  Status first;
  std::set<uint32_t> used;
  std::vector<uint64_t> chunks;
  for (uint64_t pos = offset; pos < offset + len && first.ok();) {
    uint64_t chunk = pos / cs;
    uint32_t in = static_cast<uint32_t>(pos - chunk * cs);
    uint64_t take = std::min<uint64_t>(cs - in, offset + len - pos);
    auto piece = data.subspan(pos - offset, take);
    chunks.push_back(chunk);
    for (uint32_t idx : placement_->ChunkHolders(w->uid, chunk, replicas_, w->home)) {
      uint32_t rank = rank_of_[idx];
      used.insert(rank);
      if (rank == me) {
        first = HolderWrite(w->uid, static_cast<uint32_t>(cs), chunk, in, piece);
        if (!first.ok()) break;
        continue;
      }
      Payload req = ChunkWriteRequest(w->uid, static_cast<uint32_t>(cs), chunk, in, piece);
      w->flight->Acquire();
      world_->messenger().CallAsync(
          rank, kOpChunkWrite, std::move(req), options_.deadline,
          [w, chunk, rank](Result<Payload> r) {
            if (!r.ok()) {
              std::lock_guard lk(w->mu);
              if (w->error.ok()) {
                w->error = r.status().WithContext(
                    fmt::format("writing chunk {} of \"{}\" to rank {}", chunk, w->path, rank));
              }
            }
            w->flight->Release();
          });
    }
    pos += take;
  }

  std::lock_guard lk(w->mu);
  w->writers--;
  w->holders.insert(used.begin(), used.end());
  for (uint64_t c : chunks) {
    if (w->written.size() <= c / 8) w->written.resize(c / 8 + 1, 0);
    w->written[c / 8] |= static_cast<uint8_t>(1u << (c % 8));
  }
  w->end = std::max(w->end, offset + len);
  if (!first.ok() && w->error.ok()) w->error = first.WithContext(fmt::format("writing \"{}\"", path));
  w->cv.notify_all();
  return first.ok() ? w->error : first;
}

Status Cluster::Seal(std::string_view path) {
  SHOAL_ASSIGN_OR_RETURN(auto w, FindWriting(path));
  Inode inode;
  {
    std::unique_lock lk(w->mu);
    if (w->closing) return Status::FailedPrecondition(fmt::format("\"{}\" is being sealed", path));
    w->closing = true;
    w->cv.wait(lk, [&] { return w->writers == 0; });
    lk.unlock();
    w->flight->Wait();
    lk.lock();
    if (!w->error.ok()) {
      w->closing = false;
      return w->error;
    }
    inode.chunk_size = w->chunk_size;
    inode.size = w->declared != kUnknownSize ? w->declared : w->end;
  }
  auto fail = [&](Status s) {
    std::lock_guard lk(w->mu);
    if (w->error.ok()) w->error = s;
    w->closing = false;  // only Abort remains possible
    return s;
  };

  if (w->keep_inline || (w->holders.empty() && inode.size <= options_.inline_threshold)) {
    inode.is_inline = true;
    inode.inline_data = w->keep_inline ? w->small : std::string(inode.size, '\0');
    inode.inline_crc = Crc32c(inode.inline_data.data(), inode.size);
  } else {
    inode.is_striped = true;
    inode.uid = w->uid;
    inode.replicas = replicas_;
    inode.layout = placement_->members();
    inode.home = w->home;
    inode.written = w->written;
    inode.written.resize((inode.NumChunks() + 7) / 8, 0);
    std::vector<uint32_t> holders(w->holders.begin(), w->holders.end());
    for (auto& r : AskAll(holders, kOpChunkCommit, UidRequest(w->uid))) {
      if (!r.ok()) return fail(r.status().WithContext(fmt::format("sealing \"{}\"", path)));
    }
  }
  inode.seal_time_ns = SealTimeNs();

  Payload request = InsertRequest(path, inode);
  std::vector<uint32_t> owners = Owners(path);
  // The primary decides a race between two creators of the path; then its replicas.
  auto primary = Ask(owners[0], kOpMetaInsert, request);
  if (!primary.ok()) return fail(primary.status().WithContext(fmt::format("sealing \"{}\"", path)));
  std::vector<uint32_t> replicas(owners.begin() + 1, owners.end());
  auto results = AskAll(replicas, kOpMetaInsert, request);
  Status bad;
  std::vector<uint32_t> inserted{owners[0]};
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].ok()) inserted.push_back(replicas[i]);
    else if (bad.ok()) bad = results[i].status();
  }
  if (!bad.ok()) {
    ByteWriter rm;
    rm.Prefixed(path);
    rm.Put<uint64_t>(inode.uid);
    (void)AskAll(inserted, kOpMetaRemove, rm.Take());
    return fail(bad.WithContext(fmt::format("sealing \"{}\" (metadata replica)", path)));
  }
  std::lock_guard lk(open_mu_);
  open_.erase(w->path);
  return Status::OK();
}

Status Cluster::Abort(std::string_view path) {
  SHOAL_ASSIGN_OR_RETURN(auto w, FindWriting(path));
  std::set<uint32_t> holders;
  {
    std::unique_lock lk(w->mu);
    w->closing = true;
    w->cv.wait(lk, [&] { return w->writers == 0; });
    holders = w->holders;
  }
  w->flight->Wait();
  DropEverywhere(w->uid, holders);
  std::lock_guard lk(open_mu_);
  open_.erase(w->path);
  return Status::OK();
}

bool Cluster::Reachable(uint32_t rank) const {
  return rank == world_->rank() || world_->messenger().peer_up(rank);
}

void Cluster::DropEverywhere(uint64_t uid, const std::set<uint32_t>& ranks) {
  std::vector<uint32_t> live;
  for (uint32_t r : ranks) {
    if (Reachable(r)) live.push_back(r);
  }
  Status first;
  for (auto& r : AskAll(live, kOpChunkDrop, UidRequest(uid))) {
    if (!r.ok() && first.ok()) first = r.status();
  }
  if (!first.ok()) {
    Log(LogLevel::kWarn, "dropping chunks of object {:016x}: {} (space stays used)", uid,
        first.ToString());
  }
}

Status Cluster::ReadBatch(std::span<ReadRequest> requests) {
  std::vector<Piece> pieces;
  std::unique_ptr<Placement> scratch;
  // One metadata lookup per object, however many ranges of it the batch reads.
  std::map<std::string_view, Result<Inode>> inodes;
  for (size_t q = 0; q < requests.size(); ++q) {
    ReadRequest& req = requests[q];
    req.bytes_read = 0;
    req.status = ValidateObjectPath(req.path);
    if (!req.status.ok()) continue;
    auto found = inodes.find(req.path);
    if (found == inodes.end()) found = inodes.emplace(req.path, LookupInode(req.path)).first;
    const Result<Inode>& inode = found->second;
    const std::optional<uint64_t> len = StartRead(req, inode);
    if (!len) continue;
    const uint64_t n = *len;
    if (!inode->is_striped) {
      req.status = Status::Corruption(fmt::format("\"{}\": metadata names no chunks", req.path));
      continue;
    }
    const Placement& placement = PlacementFor(*inode, &scratch);
    const uint64_t cs = inode->chunk_size;
    for (uint64_t pos = req.offset; pos < req.offset + n;) {
      uint64_t chunk = pos / cs;
      uint32_t in = static_cast<uint32_t>(pos - chunk * cs);
      uint32_t take = static_cast<uint32_t>(std::min<uint64_t>(cs - in, req.offset + n - pos));
      std::byte* dst = req.dst.data() + (pos - req.offset);
      if (!inode->ChunkWritten(chunk)) {
        std::memset(dst, 0, take);
      } else {
        Piece p;
        p.request = q;
        p.chunk_size = static_cast<uint32_t>(cs);
        p.chunk = chunk;
        p.in_chunk = in;
        p.len = take;
        p.dst = dst;
        p.candidates = LiveReplicas(*inode, placement, chunk);
        pieces.push_back(std::move(p));
      }
      pos += take;
    }
  }

  // Rounds: every piece asks its current candidate; failed pieces move to the next replica.
  std::vector<size_t> todo(pieces.size());
  for (size_t i = 0; i < todo.size(); ++i) todo[i] = i;
  const uint32_t me = world_->rank();
  while (!todo.empty()) {
    std::vector<size_t> local, remote;
    for (size_t i : todo) {
      Piece& p = pieces[i];
      if (p.next >= p.candidates.size()) {
        ReadRequest& req = requests[p.request];
        if (req.status.ok()) {
          req.status = p.status.ok()
                           ? Status::Unavailable(fmt::format(
                                 "chunk {} of \"{}\": no live member holds a replica", p.chunk,
                                 req.path))
                           : p.status.WithContext(fmt::format(
                                 "chunk {} of \"{}\", every replica failed", p.chunk, req.path));
        }
        continue;
      }
      (p.candidates[p.next].rank == me ? local : remote).push_back(i);
    }
    Flight flight(options_.window);
    for (size_t i : remote) {
      Piece* p = &pieces[i];
      const Replica& from = p->candidates[p->next];
      flight.Acquire();
      world_->messenger().CallAsync(
          from.rank, kOpChunkRead,
          ChunkReadRequest(from.uid, p->chunk_size, p->chunk, p->in_chunk, p->len),
          options_.deadline, [p, &flight](Result<Payload> r) {
            p->status = r.ok() ? TakeChunkReply(*r, {p->dst, p->len}) : r.status();
            flight.Release();
          });
    }
    if (!local.empty()) {
      std::vector<ReadRequest> lr;
      for (size_t i : local) {
        Piece& p = pieces[i];
        lr.push_back({ChunkObject(p.candidates[p.next].uid), p.chunk * p.chunk_size + p.in_chunk,
                      std::span<std::byte>(p.dst, p.len), {}, 0});
      }
      (void)store_->ReadBatch(lr);
      for (size_t k = 0; k < local.size(); ++k) {
        Piece& p = pieces[local[k]];
        p.status = lr[k].status;
        if (p.status.ok()) std::memset(p.dst + lr[k].bytes_read, 0, p.len - lr[k].bytes_read);
      }
    }
    flight.Wait();
    std::vector<size_t> again;
    for (size_t i : local) again.push_back(i);
    for (size_t i : remote) again.push_back(i);
    todo.clear();
    for (size_t i : again) {
      Piece& p = pieces[i];
      if (p.status.ok()) continue;
      Log(LogLevel::kWarn, "chunk {} of \"{}\" from rank {}: {}; trying the next replica", p.chunk,
          requests[p.request].path, p.candidates[p.next].rank, p.status.ToString());
      p.next++;
      todo.push_back(i);
    }
  }
  for (ReadRequest& req : requests) {
    if (!req.status.ok()) req.bytes_read = 0;
  }
  return Status::OK();
}

Result<ObjectInfo> Cluster::Stat(std::string_view path) {
  SHOAL_RETURN_IF_ERROR(ValidateObjectPath(path));
  SHOAL_ASSIGN_OR_RETURN(Inode inode, LookupInode(path));
  return InfoOf(path, inode);
}

Result<std::vector<std::vector<uint32_t>>> Cluster::Locate(std::string_view path) {
  SHOAL_RETURN_IF_ERROR(ValidateObjectPath(path));
  SHOAL_ASSIGN_OR_RETURN(Inode inode, LookupInode(path));
  std::vector<std::vector<uint32_t>> out(inode.NumChunks());
  if (inode.is_striped) {
    std::unique_ptr<Placement> scratch;
    const Placement& placement = PlacementFor(inode, &scratch);
    for (uint64_t i = 0; i < out.size(); ++i) {
      if (!inode.ChunkWritten(i)) continue;
      for (const Replica& r : LiveReplicas(inode, placement, i)) {
        if (std::find(out[i].begin(), out[i].end(), r.rank) == out[i].end()) {
          out[i].push_back(r.rank);
        }
      }
    }
  }
  return out;
}

Result<ListPage> Cluster::List(std::string_view dir, const ListOptions& options) {
  SHOAL_RETURN_IF_ERROR(ValidateDirPath(dir));
  if (options.limit < 1 || options.limit > kMaxListLimit) {
    return Status::InvalidArgument(
        fmt::format("list limit {} not in 1..{}", options.limit, kMaxListLimit));
  }
  std::vector<uint32_t> ranks;
  for (uint32_t r = 0; r < world_->size(); ++r) {
    if (Reachable(r)) ranks.push_back(r);
  }
  ByteWriter w;
  w.Prefixed(dir);
  w.Prefixed(options.start_after);
  w.Put<uint32_t>(options.limit);
  auto results = AskAll(ranks, kOpMetaList, w.Take());

  std::map<std::string, DirEntry> merged;
  std::optional<std::string> cutoff;  // entries past a truncated shard's last name are unknown
  uint32_t failed = world_->size() - static_cast<uint32_t>(ranks.size());
  Status failure = Status::Unavailable("members are down");
  size_t empty = 0;  // shards without the directory: none of its entries hash onto them
  for (auto& res : results) {
    if (!res.ok() && res.status().code() == Code::kNotFound) {
      if (++empty == results.size()) return res.status();
      continue;
    }
    if (!res.ok()) {
      if (Decisive(res.status())) return res.status();
      failure = res.status();
      failed++;
      continue;
    }
    ByteReader r(*res);
    uint8_t truncated = 0;
    uint32_t count = 0;
    if (!r.Get(&truncated) || !r.Get(&count) || count > kMaxListLimit) {
      return Status::Corruption("list: malformed reply");
    }
    std::string last;
    for (uint32_t i = 0; i < count; ++i) {
      std::span<const std::byte> name;
      uint8_t is_dir = 0;
      uint64_t size = 0;
      if (!r.Prefixed(kMaxPathBytes, &name) || !r.Get(&is_dir) || !r.Get(&size)) {
        return Status::Corruption("list: malformed reply entry");
      }
      last = std::string(AsChars(name));
      auto [it, fresh] = merged.try_emplace(last, DirEntry{last, is_dir != 0, size});
      if (!fresh) it->second.size = std::max(it->second.size, size);
    }
    if (truncated != 0 && (!cutoff || last < *cutoff)) cutoff = last;
  }
  // An entry is lost only when all its owners are down; with r replicas, r - 1 members may be.
  if (failed >= replicas_) {
    return failure.WithContext(fmt::format("listing \"{}\": {} member(s) unreachable", dir, failed));
  }
  ListPage page;
  for (auto& [name, e] : merged) {
    if (cutoff && name > *cutoff) {
      page.truncated = true;
      break;
    }
    if (page.entries.size() == options.limit) {
      page.truncated = true;
      break;
    }
    page.entries.push_back(std::move(e));
  }
  if (cutoff && !page.truncated) page.truncated = true;
  if (page.truncated && !page.entries.empty()) page.next_start_after = page.entries.back().name;
  return page;
}

Status Cluster::Remove(std::string_view path) {
  SHOAL_RETURN_IF_ERROR(ValidateObjectPath(path));
  ByteWriter w;
  w.Prefixed(path);
  w.Put<uint64_t>(0);
  Payload request = w.Take();
  std::vector<uint32_t> owners = Owners(path);
  Status s = Status::Unavailable(fmt::format("no live owner of \"{}\"", path));
  std::optional<Inode> removed;
  std::vector<uint32_t> rest;
  bool not_found = false;
  for (uint32_t owner : owners) {
    if (removed) {
      rest.push_back(owner);
      continue;
    }
    if (!Reachable(owner)) continue;
    auto reply = Ask(owner, kOpMetaRemove, request);
    if (reply.ok()) {
      auto inode = DecodeInode(AsChars(*reply), path);
      if (!inode.ok()) return inode.status();
      removed = std::move(inode).value();
    } else if (reply.status().code() == Code::kNotFound) {
      not_found = true;  // an owner that joined after a member was lost: ask the others
    } else {
      s = reply.status();
      if (Decisive(s)) return s;
    }
  }
  if (!removed) return not_found ? Status::NotFound(fmt::format("no object \"{}\"", path)) : s;
  std::vector<uint32_t> live;
  for (uint32_t r : rest) {
    if (Reachable(r)) live.push_back(r);
  }
  (void)AskAll(live, kOpMetaRemove, request);
  if (removed->is_striped) {
    std::set<uint32_t> holders;
    for (const PlacementMember& m : removed->layout) {
      auto it = rank_of_member_.find(m.member_id);
      if (it != rank_of_member_.end()) holders.insert(it->second);
    }
    DropEverywhere(removed->uid, holders);
    for (const Inode::Copy& c : removed->copies) {
      auto it = rank_of_member_.find(c.member.member_id);
      if (it != rank_of_member_.end()) DropEverywhere(c.uid, {it->second});
    }
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------------------------
// Repair.

Status Cluster::ReadPiece(const Replica& from, uint32_t chunk_size, uint64_t chunk,
                          uint32_t in_chunk, std::span<std::byte> dst) {
  auto reply = Ask(from.rank, kOpChunkRead,
                   ChunkReadRequest(from.uid, chunk_size, chunk, in_chunk,
                                    static_cast<uint32_t>(dst.size())));
  if (!reply.ok()) return reply.status();
  return TakeChunkReply(*reply, dst);
}

Result<RepairReport> Cluster::Repair(std::string_view dir) {
  SHOAL_RETURN_IF_ERROR(ValidateDirPath(dir));
  RepairReport report;
  // Depth-first over the namespace below `dir`, one listing page at a time.
  std::vector<std::string> dirs{std::string(dir)};
  while (!dirs.empty()) {
    std::string d = std::move(dirs.back());
    dirs.pop_back();
    ListOptions lo;
    for (;;) {
      auto page = List(d, lo);
      if (!page.ok()) {
        if (page.status().code() == Code::kNotFound) break;  // removed meanwhile
        return page.status().WithContext(fmt::format("repair: listing \"{}\"", d));
      }
      for (const DirEntry& e : page->entries) {
        std::string child = d.empty() ? e.name : d + "/" + e.name;
        if (e.is_dir) {
          dirs.push_back(std::move(child));
        } else {
          SHOAL_RETURN_IF_ERROR(RepairObject(child, &report));
        }
      }
      if (!page->truncated) break;
      lo.start_after = page->next_start_after;
    }
  }
  return report;
}

Result<bool> Cluster::RepairChunks(const std::string& path, Inode* inode,
                                   RepairReport* report) {
  // Chunks: every written chunk with fewer live replicas than the object was written with gets
  // copies on other live members (nodes without a replica first), in one new local object per
  // target member.
  std::unique_ptr<Placement> scratch;
  const Placement& placement = PlacementFor(*inode, &scratch);
  std::map<uint32_t, uint64_t> target_uid;  // rank -> uid of its new local object
  std::vector<Inode::Copy> added;
  // Copies on members that left this world can never be read again: drop them.
  const size_t before = inode->copies.size();
  std::erase_if(inode->copies, [&](const Inode::Copy& c) {
    return rank_of_member_.count(c.member.member_id) == 0;
  });
  bool changed = inode->copies.size() != before;
  bool lost = false;
  uint64_t copied_bytes = 0;
  std::vector<std::byte> buf;
  for (uint64_t chunk = 0; chunk < inode->NumChunks(); ++chunk) {
    if (!inode->ChunkWritten(chunk)) continue;
    std::vector<Replica> live = LiveReplicas(*inode, placement, chunk);
    if (live.empty()) {
      lost = true;
      continue;
    }
    if (live.size() >= inode->replicas) continue;
    // Placement indices of the members holding it now and of those that cannot take it.
    std::vector<uint32_t> holding, unusable;
    for (uint32_t idx = 0; idx < rank_of_.size(); ++idx) {
      const uint32_t rank = rank_of_[idx];
      bool holds = std::any_of(live.begin(), live.end(),
                               [&](const Replica& r) { return r.rank == rank; });
      if (holds) holding.push_back(idx);
      else if (!Reachable(rank)) unusable.push_back(idx);
    }
    std::vector<uint32_t> targets;
    for (uint32_t idx : placement_->MoreHolders(
             inode->uid, chunk, holding, unusable,
             inode->replicas - static_cast<uint32_t>(live.size()))) {
      targets.push_back(rank_of_[idx]);
    }
    if (targets.empty()) continue;  // no member left to hold another copy
    buf.resize(inode->ChunkLength(chunk));
    Status read = Status::Unavailable("no replica");
    for (const Replica& from : live) {
      read = ReadPiece(from, inode->chunk_size, chunk, 0, buf);
      if (read.ok()) break;
    }
    if (!read.ok()) {
      Log(LogLevel::kWarn, "repair: chunk {} of \"{}\" unreadable: {}", chunk, path,
          read.ToString());
      lost = true;
      continue;
    }
    for (uint32_t rank : targets) {
      auto [it, fresh] = target_uid.try_emplace(rank, 0);
      if (fresh) it->second = NewUid();
      auto wrote =
          Ask(rank, kOpChunkWrite, ChunkWriteRequest(it->second, inode->chunk_size, chunk, 0, buf));
      if (!wrote.ok()) {
        return wrote.status().WithContext(
            fmt::format("repair: copying chunk {} of \"{}\" to rank {}", chunk, path, rank));
      }
      const MemberInfo& m = world_->members()[rank];
      added.push_back({chunk, PlacementMember{m.member_id, m.node}, it->second});
      copied_bytes += buf.size();
    }
  }
  if (lost) report->lost.push_back(path);
  for (auto& [rank, uid] : target_uid) {
    auto committed = Ask(rank, kOpChunkCommit, UidRequest(uid));
    if (!committed.ok()) return committed.status().WithContext(fmt::format("repair of \"{}\"", path));
  }
  if (!added.empty() || changed) {
    inode->copies.insert(inode->copies.end(), added.begin(), added.end());
    ByteWriter req;
    req.Prefixed(path);
    req.Put<uint64_t>(inode->uid);
    req.Raw(EncodeInode(*inode));
    Payload request = req.Take();
    std::vector<uint32_t> live_owners;
    for (uint32_t owner : Owners(path)) {
      if (Reachable(owner)) live_owners.push_back(owner);
    }
    bool any = false;
    for (auto& r : AskAll(live_owners, kOpMetaReplace, request)) any = any || r.ok();
    if (!any) {
      // The object was removed or replaced meanwhile: the new copies belong to nobody.
      for (auto& [rank, uid] : target_uid) DropEverywhere(uid, {rank});
      return false;
    }
    report->chunks_copied += added.size();
    report->bytes_copied += copied_bytes;
  }
  return true;
}

Status Cluster::RepairObject(const std::string& path, RepairReport* report) {
  auto found = LookupInode(path);
  if (!found.ok()) {
    if (found.status().code() == Code::kNotFound) return Status::OK();  // removed meanwhile
    return found.status().WithContext("repair");
  }
  Inode inode = std::move(found).value();
  report->objects++;

  if (inode.is_striped) {
    SHOAL_ASSIGN_OR_RETURN(bool still_there, RepairChunks(path, &inode, report));
    if (!still_there) return Status::OK();
  }

  // Metadata: every current owner holds the record (owners that joined after a loss lack it).
  Payload get = PathRequest(path);
  Payload insert = InsertRequest(path, inode);
  for (uint32_t owner : Owners(path)) {
    if (!Reachable(owner)) continue;
    auto have = Ask(owner, kOpMetaGet, get);
    if (have.ok() || have.status().code() != Code::kNotFound) continue;
    auto put = Ask(owner, kOpMetaInsert, insert);
    if (put.ok()) {
      report->metadata_copied++;
    } else {
      Log(LogLevel::kWarn, "repair: metadata of \"{}\" on rank {}: {}", path, owner,
          put.status().ToString());
    }
  }
  return Status::OK();
}

}  // namespace shoal::engine
