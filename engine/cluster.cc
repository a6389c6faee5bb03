#include "engine/cluster.h"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <optional>

#include "base/crc32c.h"
#include "base/log.h"
#include "engine/interval_set.h"
#include "engine/object_rules.h"
#include "engine/path.h"

namespace shoal::engine {
namespace {

// Errors that another replica would answer the same way.
bool Decisive(const Status& s) {
  return s.code() == Code::kNotFound || s.code() == Code::kInvalidArgument ||
         s.code() == Code::kAlreadyExists;
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
  uint32_t replicas = 1;     // copies of each chunk (CreateOptions::replicas, or the world's)
  bool own_replicas = false; // CreateOptions::replicas chose them
  std::unique_ptr<Flight> flight;  // remote piece writes in flight (bounded by the window)

  Mutex mu;
  std::condition_variable cv;
  std::string small GUARDED_BY(mu);          // keep_inline: the object's bytes
  IntervalSet small_written GUARDED_BY(mu);  // keep_inline: overlap checks
  uint64_t end GUARDED_BY(mu) = 0;
  std::vector<uint8_t> written GUARDED_BY(mu);  // bit per chunk with data
  std::set<uint32_t> holders GUARDED_BY(mu);    // ranks holding pieces
  uint32_t writers GUARDED_BY(mu) = 0;
  bool closing GUARDED_BY(mu) = false;
  // A Seal failed after its record may have reached a metadata owner (no reply, or a rollback
  // that could not reach every owner): the object may exist, so Abort leaves its committed chunks
  // in place (space that leaks when it does not) rather than risk a record without its chunks.
  bool outcome_unknown GUARDED_BY(mu) = false;
  Status error GUARDED_BY(mu);

  void Fail(const Status& s) EXCLUDES(mu) {
    MutexLock lk(&mu);
    if (error.ok()) error = s;
  }
};

Result<std::unique_ptr<Cluster>> Cluster::Start(const ClusterOptions& options,
                                                std::unique_ptr<ObjectStore> store,
                                                WorldOptions wo,
                                                std::unique_ptr<transport::Transport> transport,
                                                transport::Rendezvous& rendezvous) {
  std::unique_ptr<Cluster> c(new Cluster());
  c->options_ = options;
  c->stat_cache_ = std::make_unique<StatCache>(options.stat_lease, options.stat_cache_entries);
  {
    MutexLock lk(&c->uid_mu_);
    std::random_device rd;
    c->uid_gen_.seed(options.uid_seed != 0 ? options.uid_seed
                                           : (uint64_t{rd()} << 32) ^ rd() ^
                                                 static_cast<uint64_t>(SealTimeNs()));
  }
  c->store_ = std::move(store);
  // The shard keyspace lives in the store's one metadata environment; a store of format 3 kept
  // it in an environment of its own (options.ring_dir), imported once here.
  SHOAL_ASSIGN_OR_RETURN(c->ring_,
                         MetaStore::OpenKeyspace(&c->store_->meta(), "ring.", options.ring_dir));
  metrics::Registry* reg = options.metrics;
  if (reg == nullptr) {
    c->own_metrics_ = std::make_unique<metrics::Registry>();
    reg = c->own_metrics_.get();
  }
  c->service_ = std::make_unique<MemberService>(c->store_.get(), c->ring_.get(), reg);
  wo.member_id = c->store_->member_id();
  MemberService* service = c->service_.get();
  Cluster* self = c.get();
  wo.install_handlers = [service, self](transport::Transport& t) {
    service->Install(t);
    self->InstallGuestOps(t);
  };
  SHOAL_ASSIGN_OR_RETURN(c->world_, World::Join(wo, std::move(transport), rendezvous));
  c->read_failovers_ = &reg->counter("member.read.failovers");
  c->repair_chunks_copied_ = &reg->counter("member.repair.chunks_copied");
  c->local_chunk_bytes_read_ = &reg->counter("member.local.chunk_bytes_read");
  c->orphans_swept_ = &reg->counter("member.sweep.orphans_dropped");
  c->scrub_bad_ = &reg->counter("member.scrub.damaged_objects");
  c->scrub_repaired_ = &reg->counter("member.scrub.repaired_objects");
  c->scrubbed_bytes_ = &reg->counter("member.scrub.bytes_verified");
  c->client_ = std::make_unique<MemberClient>(&c->world_->transport(), service, options.deadline,
                                              reg);

  std::vector<PlacementMember> members;
  for (uint32_t i = 0; i < c->world_->size(); ++i) {
    const MemberInfo& m = c->world_->members()[i];
    members.push_back({m.member_id, m.node});
    c->rank_of_member_[m.member_id] = i;  // the member's index (not the job rank serving it)
  }
  c->placement_ = std::make_unique<Placement>(std::move(members));
  for (const PlacementMember& m : c->placement_->members()) {
    if (m.member_id == c->store_->member_id()) {
      c->my_index_ = static_cast<int32_t>(c->rank_of_.size());
    }
    c->rank_of_.push_back(c->rank_of_member_.at(m.member_id));
  }
  c->replicas_ = std::clamp<uint32_t>(options.replicas, 1, c->world_->size());
  SHOAL_RETURN_IF_ERROR(c->OpenEpoch(options.declare_lost, wo.timeout));
  c->StartUids();
  Log(LogLevel::kInfo, "cluster: member {} of {} (rank {} of {}), {} replica(s), window {}",
      c->world_->rank(), c->world_->size(), c->world_->job_rank(), c->world_->job_size(),
      c->replicas_, options.window);
  {
    MutexLock lk(&c->guests_mu_);
    c->guests_served_ = true;
  }
  return c;
}

void Cluster::StartUids() {
  MutexLock lk(&uid_mu_);
  uid_next_ = 0;
  uid_prefix_ = 0;
  if (membership_.epoch < (1ull << kUidEpochBits) && my_index_ >= 0 &&
      my_index_ < (1 << kUidIndexBits)) {
    uid_prefix_ = (1ull << 63) | membership_.epoch << (kUidIndexBits + kUidCountBits) |
                  static_cast<uint64_t>(my_index_) << kUidCountBits;
  }
}

uint64_t Cluster::NewUid() {
  MutexLock lk(&uid_mu_);
  if (uid_prefix_ != 0 && uid_next_ + 1 < (1ull << kUidCountBits)) return uid_prefix_ | ++uid_next_;
  uint64_t v = 0;
  while (v == 0) v = uid_gen_() & ~(1ull << 63);
  return v;
}

Cluster::~Cluster() {
  bg_stop_.store(true);  // a guest's scrub pass ends at its next chunk
  StopGuests();
  StopBackgroundRepair();
  world_.reset();  // no handler runs after this
  client_.reset();
  service_.reset();
  ring_.reset();
  store_.reset();
}

Result<std::vector<std::vector<std::byte>>> Cluster::AllGather(std::span<const std::byte> mine) {
  auto all = world_->AllGather(std::vector<std::byte>(mine.begin(), mine.end()),
                               std::chrono::milliseconds(60000), World::Group::kRanks);
  stat_cache_->ForgetAll();  // as Barrier
  return all;
}

std::vector<uint32_t> Cluster::ReachableOf(const std::vector<uint32_t>& ranks) const {
  std::vector<uint32_t> live;
  for (uint32_t r : ranks) {
    if (Reachable(r)) live.push_back(r);
  }
  return live;
}

int64_t Cluster::RankOfMember(const std::string& member_id) const {
  auto it = rank_of_member_.find(member_id);
  // (int64_t on both sides: -1 must not become 2^32 - 1 through the uint32_t of the map.)
  return it == rank_of_member_.end() ? int64_t{-1} : static_cast<int64_t>(it->second);
}

Result<Inode> Cluster::LookupInode(std::string_view path) {
  // The holders first; an owner still catching up answers only once it has (else Unavailable).
  std::vector<uint32_t> owners = Writers(path);
  const uint32_t me = world_->rank();
  std::stable_partition(owners.begin(), owners.end(), [&](uint32_t r) { return r == me; });
  Status last;  // the last failure other than NotFound (its message is made only if needed)
  bool not_found = false;
  for (uint32_t owner : owners) {
    if (!Reachable(owner)) continue;
    auto inode = client_->MetaGet(owner, path);
    if (inode.ok()) return inode;
    const Status& s = inode.status();
    if (s.code() == Code::kNotFound) {
      not_found = true;  // a replica that lost its store says so too: ask the others
    } else if (s.code() == Code::kInvalidArgument) {
      return s;
    } else {
      last = s;
    }
  }
  if (not_found) return Status::NotFound(fmt::format("no object \"{}\"", path));
  if (last.ok()) {
    return Status::Unavailable(fmt::format("no live member holds the metadata of \"{}\"", path));
  }
  return last;
}

Status Cluster::Create(std::string_view path, const CreateOptions& co) {
  return Begin(path, co, true);
}

Status Cluster::CreateWhole(std::string_view path, const CreateOptions& co) {
  const bool inline_until_seal = co.size != kUnknownSize && co.size <= options_.inline_threshold;
  return Begin(path, co, !inline_until_seal);
}

Status Cluster::Begin(std::string_view path, const CreateOptions& co, bool check_name) {
  SHOAL_ASSIGN_OR_RETURN(uint32_t cs, CheckCreate(path, co, options_.chunk_size));
  auto w = std::make_shared<Writing>();
  w->path = std::string(path);
  w->uid = NewUid();
  w->chunk_size = cs;
  w->declared = co.size;
  w->keep_inline = co.size != kUnknownSize && co.size <= options_.inline_threshold;
  w->home = co.local_first ? my_index_ : -1;
  w->own_replicas = co.replicas != 0;
  w->replicas = w->own_replicas
                    ? std::clamp<uint32_t>(co.replicas, 1, static_cast<uint32_t>(rank_of_.size()))
                    : replicas_;
  w->flight = std::make_unique<Flight>(options_.window);
  if (w->keep_inline) {
    MutexLock lk(&w->mu);
    w->small.assign(co.size, '\0');
  }
  {
    MutexLock lk(&open_mu_);
    if (open_.count(path) != 0) {
      return Status::AlreadyExists(fmt::format("object \"{}\" is being written", path));
    }
  }
  // The primary owner (or the first live replica) decides whether the name is free now; a
  // concurrent creator elsewhere is caught again at Seal.
  if (check_name) {
    Status check = Status::Unavailable(fmt::format("no live owner of \"{}\"", path));
    for (uint32_t owner : Writers(path)) {
      if (!Reachable(owner)) continue;
      check = client_->MetaCheck(owner, path);
      if (check.ok() || Decisive(check) || check.code() == Code::kFailedPrecondition) break;
    }
    SHOAL_RETURN_IF_ERROR(check);
  }
  MutexLock lk(&open_mu_);
  if (!open_.emplace(w->path, w).second) {
    return Status::AlreadyExists(fmt::format("object \"{}\" is being written", path));
  }
  return Status::OK();
}

Result<std::shared_ptr<Cluster::Writing>> Cluster::FindWriting(std::string_view path) {
  {
    MutexLock lk(&open_mu_);
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
    MutexLock lk(&w->mu);
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

  // Remote pieces go from the caller's buffer to their holders without a copy (UCX rendezvous
  // into the holder's pool buffer); Write returns once every holder has taken its bytes, while
  // the holders' writes stay in flight (at most `window` per object): their errors surface at a
  // later Write or at Seal. Pieces this member holds go to its store now.
  const uint64_t cs = w->chunk_size;
  const uint32_t me = world_->rank();
  Status first;
  std::set<uint32_t> used;
  std::vector<uint64_t> chunks;
  Flight taken(SIZE_MAX);  // remote pieces whose bytes the transport still reads
  for (uint64_t pos = offset; pos < offset + len && first.ok();) {
    const uint64_t chunk = pos / cs;
    const uint32_t in = static_cast<uint32_t>(pos - chunk * cs);
    const uint64_t take = std::min<uint64_t>(cs - in, offset + len - pos);
    const protocol::ChunkWrite piece{w->uid, static_cast<uint32_t>(cs), chunk, in,
                                     data.subspan(pos - offset, take)};
    chunks.push_back(chunk);
    for (uint32_t idx : placement_->ChunkHolders(w->uid, chunk, w->replicas, w->home)) {
      const uint32_t rank = rank_of_[idx];
      used.insert(rank);
      if (rank == me) {
        first = service_->ChunkWrite(piece);
        if (!first.ok()) break;
        continue;
      }
      w->flight->Acquire();
      taken.Acquire();
      client_->ChunkWriteAsync(
          rank, piece,
          [w, chunk, rank](Status s) {
            if (!s.ok()) {
              w->Fail(s.WithContext(
                  fmt::format("writing chunk {} of \"{}\" to rank {}", chunk, w->path, rank)));
            }
            w->flight->Release();
          },
          [&taken] { taken.Release(); });
    }
    pos += take;
  }
  taken.Wait();

  MutexLock lk(&w->mu);
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
  StatCache::ForgetOnReturn forget(stat_cache_.get(), path);  // whatever the outcome
  SHOAL_ASSIGN_OR_RETURN(auto w, FindWriting(path));
  Inode inode;
  std::vector<uint32_t> holders;
  {
    MutexLock lk(&w->mu);
    if (w->closing) return Status::FailedPrecondition(fmt::format("\"{}\" is being sealed", path));
    w->closing = true;
    Await(w->cv, &w->mu, [&]() REQUIRES(w->mu) { return w->writers == 0; });
  }
  w->flight->Wait();
  auto fail = [&](Status s) {
    MutexLock lk(&w->mu);
    if (w->error.ok()) w->error = s;
    w->closing = false;  // only Abort remains possible
    return s;
  };
  {
    MutexLock lk(&w->mu);
    if (!w->error.ok()) {
      w->closing = false;
      return w->error;
    }
    inode.chunk_size = w->chunk_size;
    inode.size = w->declared != kUnknownSize ? w->declared : w->end;
    if (w->keep_inline || (w->holders.empty() && inode.size <= options_.inline_threshold)) {
      inode.is_inline = true;
      inode.inline_data = w->keep_inline ? w->small : std::string(inode.size, '\0');
      inode.inline_crc = Crc32c(inode.inline_data.data(), inode.size);
    } else {
      inode.is_striped = true;
      inode.uid = w->uid;
      inode.replicas = w->replicas;
      inode.own_replicas = w->own_replicas;
      inode.layout = placement_->members();
      inode.home = w->home;
      inode.written = w->written;
      inode.written.resize((inode.NumChunks() + 7) / 8, 0);
      holders.assign(w->holders.begin(), w->holders.end());
    }
  }
  const uint32_t me = world_->rank();
  if (inode.is_striped && holders.size() == 1 && holders[0] == me) {
    // This member is the object's only holder and its metadata's only writer (a world of one,
    // or a local_first object with one replica): chunks and record in one transaction.
    const std::vector<uint32_t>& writers = Writers(path);
    if (writers.size() == 1 && writers[0] == me && !Owners(path).empty()) {
      inode.seal_time_ns = SealTimeNs();
      auto version = service_->ChunkCommitWithRecord(w->uid, path, inode);
      if (!version.ok()) return fail(version.status().WithContext(fmt::format("sealing \"{}\"", path)));
      MutexLock lk(&open_mu_);
      open_.erase(w->path);
      return Status::OK();
    }
  }
  if (inode.is_striped) {
    for (const Status& s : client_->ChunkCommitAll(holders, w->uid, path)) {
      if (!s.ok()) return fail(s.WithContext(fmt::format("sealing \"{}\"", path)));
    }
  }
  inode.seal_time_ns = SealTimeNs();

  std::vector<uint32_t> owners = Writers(path);
  if (owners.empty() || Owners(path).empty()) {
    return fail(Status::Unavailable(
        fmt::format("sealing \"{}\": no member serving its metadata is up", path)));
  }
  // The primary decides a race between two creators of the path and assigns the record's
  // version; every other up owner gets the same version, and all must have it.
  auto unknown = [&] {
    MutexLock lk(&w->mu);
    w->outcome_unknown = true;
  };
  auto version = client_->MetaInsert(owners[0], path, inode, 0);
  if (!version.ok()) {
    if (!Decisive(version.status()) && version.status().code() != Code::kFailedPrecondition) {
      unknown();
    }
    return fail(version.status().WithContext(fmt::format("sealing \"{}\"", path)));
  }
  std::vector<uint32_t> replicas(owners.begin() + 1, owners.end());
  auto results = client_->MetaInsertAll(replicas, path, inode, *version);
  Status bad;
  std::vector<uint32_t> inserted{owners[0]};
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].ok()) inserted.push_back(replicas[i]);
    else if (bad.ok()) bad = results[i];
  }
  if (!bad.ok()) {
    // Roll back the records inserted (only this object's: a winner's must stay). A tombstone
    // is left, newer than the record, so no copy can bring it back.
    // A replica without a reply may hold the record, which the primary's tombstone outvotes
    // only where both are merged: the outcome is not known.
    (void)client_->MetaRemoveAll(inserted, path, inode.uid, 0);
    unknown();
    return fail(bad.WithContext(fmt::format("sealing \"{}\" (metadata replica)", path)));
  }
  MutexLock lk(&open_mu_);
  open_.erase(w->path);
  return Status::OK();
}

Status Cluster::Abort(std::string_view path) {
  SHOAL_ASSIGN_OR_RETURN(auto w, FindWriting(path));
  std::set<uint32_t> holders;
  {
    MutexLock lk(&w->mu);
    w->closing = true;
    Await(w->cv, &w->mu, [&]() REQUIRES(w->mu) { return w->writers == 0; });
    holders = w->holders;
    if (w->outcome_unknown) holders.clear();
  }
  w->flight->Wait();
  DropEverywhere(w->uid, holders);
  MutexLock lk(&open_mu_);
  open_.erase(w->path);
  return Status::OK();
}

void Cluster::DropEverywhere(uint64_t uid, const std::set<uint32_t>& ranks) {
  Status first;
  for (const Status& s : client_->ChunkDropAll(ReachableOf({ranks.begin(), ranks.end()}), uid)) {
    if (!s.ok() && first.ok()) first = s;
  }
  if (!first.ok()) {
    Log(LogLevel::kWarn, "dropping chunks of object {:016x}: {} (space stays used)", uid,
        first.ToString());
  }
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
  if (options.limit < 1 || options.limit > protocol::kMaxListLimit) {
    return Status::InvalidArgument(
        fmt::format("list limit {} not in 1..{}", options.limit, protocol::kMaxListLimit));
  }
  std::vector<uint32_t> ranks;
  for (uint32_t r = 0; r < world_->size(); ++r) {
    if (Reachable(r)) ranks.push_back(r);
  }
  auto results = client_->MetaListAll(ranks, dir, options.start_after, options.limit);

  std::map<std::string, DirEntry> merged;
  std::optional<std::string> cutoff;  // entries past a truncated shard's last name are unknown
  uint32_t failed = world_->size() - static_cast<uint32_t>(ranks.size());
  Status failure = Status::Unavailable("members are down");
  std::vector<bool> answered(world_->size(), false);
  size_t empty = 0;  // shards without the directory: none of its entries hash onto them
  for (size_t i = 0; i < results.size(); ++i) {
    auto& res = results[i];
    if (res.ok() || res.status().code() == Code::kNotFound) answered[ranks[i]] = true;
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
    for (DirEntry& e : res->entries) {
      auto [it, fresh] = merged.try_emplace(e.name, e);
      if (!fresh) it->second.size = std::max(it->second.size, e.size);
    }
    if (res->truncated && !res->entries.empty()) {
      const std::string& last = res->entries.back().name;
      if (!cutoff || last < *cutoff) cutoff = last;
    }
  }
  // An entry is missing only when every member serving its shard failed to answer.
  for (uint32_t shard = 0; shard < membership_.shards; ++shard) {
    const auto& serving = ShardRanks(shard);
    if (std::none_of(serving.begin(), serving.end(), [&](uint32_t r) { return answered[r]; })) {
      return failure.WithContext(fmt::format(
          "listing \"{}\": {} member(s) unreachable, among them every member serving metadata "
          "shard {}",
          dir, failed, shard));
    }
  }
  ListPage page;
  for (auto& [name, e] : merged) {
    if ((cutoff && name > *cutoff) || page.entries.size() == options.limit) {
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
  StatCache::ForgetOnReturn forget(stat_cache_.get(), path);  // whatever the outcome
  // Durable means on every up owner of the path's shard (engine/membership.h): with one of them
  // unreachable, the remove is refused before anything changes.
  // The serving owners first (they decide whether the object exists), then those catching up.
  const std::vector<uint32_t> owners = Writers(path);
  if (owners.empty() || Owners(path).empty()) {
    return Status::Unavailable(fmt::format("no member serving the metadata of \"{}\" is up", path));
  }
  for (uint32_t owner : owners) {
    if (!Reachable(owner)) {
      return Status::Unavailable(fmt::format(
          "removing \"{}\": rank {}, which serves its metadata, is unreachable; the removal "
          "could not be made durable",
          path, owner));
    }
  }
  // The first owner that has the object removes it and versions the tombstone; every other
  // owner gets that tombstone (also one that had no record).
  std::optional<protocol::RemoveReply> removed;
  uint32_t remover = 0;
  for (uint32_t owner : owners) {
    auto r = client_->MetaRemove(owner, path, 0, 0);
    if (r.ok()) {
      removed = std::move(r).value();
      remover = owner;
      break;
    }
    if (r.status().code() != Code::kNotFound) return r.status();
  }
  if (!removed) return Status::NotFound(fmt::format("no object \"{}\"", path));
  std::vector<uint32_t> rest;
  for (uint32_t owner : owners) {
    if (owner != remover) rest.push_back(owner);
  }
  uint32_t done = 1;
  Status failure;
  for (const Status& s : client_->MetaRemoveAll(rest, path, 0, removed->version)) {
    if (s.ok()) done++;
    else if (failure.ok()) failure = s;
  }
  // Chunks go only when every owner has the tombstone: an owner that missed it keeps a record
  // that an Open without the others would serve, and its chunks must still be there.
  if (failure.ok() && removed->inode && removed->inode->is_striped) {
    const Inode& gone = *removed->inode;
    std::set<uint32_t> holders;
    for (const PlacementMember& m : gone.layout) {
      const int64_t rank = RankOfMember(m.member_id);
      if (rank >= 0) holders.insert(static_cast<uint32_t>(rank));
    }
    DropEverywhere(gone.uid, holders);
    for (const Inode::Copy& c : gone.copies) {
      const int64_t rank = RankOfMember(c.member.member_id);
      if (rank >= 0) DropEverywhere(c.uid, {static_cast<uint32_t>(rank)});
    }
  }
  if (!failure.ok()) {
    return Status::Unavailable(fmt::format(
        "removing \"{}\": recorded on {} of its {} metadata owners ({}); the outcome is not "
        "durable until the world's next Open merges the copies",
        path, done, owners.size(), failure.ToString()));
  }
  return Status::OK();
}

}  // namespace shoal::engine
