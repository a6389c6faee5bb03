// Cluster: the object API (engine/object_api.h) over a world — every rank runs one, a one-rank
// job included (a world of one); together they are one storage system with no server process.
//
// A member plays three roles, in their own files:
//   member service (engine/member_service.h)  what it does for others: chunk holder, metadata
//                                              owner; independent of the rest.
//   client paths   (cluster.cc)               the calls of its own rank: Create, Write, Seal,
//                                              Abort, Stat, List, Remove, Locate.
//   read planning  (cluster_read.cc)          which replica serves each chunk, and failover.
//   repair         (cluster_repair.cc)        replicas and metadata records rebuilt.
// All of them reach members (itself included) through MemberClient: typed calls, encoded by
// engine/protocol.h only when they cross the transport.
//
// Write: each Write is split into chunk pieces and sent to every replica holder of the piece
// (Placement::ChunkHolders), at most `window` requests in flight per object; pieces held by this
// member go straight to its store. Objects with a declared size <= inline_threshold are staged
// here and stored inside the inode. Seal commits the object on every holder (durable: fdatasync
// + LMDB), then inserts the inode on the primary metadata owner (which decides a race between
// two creators of one path) and on its replicas; it returns only when all succeeded, and rolls
// the inserted records back when a replica failed. The inode records the layout (member ids and
// nodes) and which chunks hold data, so a later world with other rank numbers, or with members
// missing, still finds every chunk.
//
// Read: the inode comes from the nearest live owner (self when it is one); chunk pieces from
// the nearest live holder (self, same node, others). Holders verify CRC32C on disk and send a
// CRC32C of the bytes they return, which the reader checks; any error or mismatch moves the
// piece to the next replica, and only when all replicas failed does the read fail.
//
// List: every member's shard holds the entries of the paths it owns, so a listing asks every
// live member for one page in parallel (one round trip per member and page, never per entry)
// and merges. docs/architecture.md says why entries are not kept in the parent's shard.
//
// Thread-safety: all methods are thread-safe. An object is written through the rank that
// created it (Create/Write/Seal/Abort on one Cluster; Writes may come from many threads).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/metrics.h"
#include "base/thread_annotations.h"
#include "engine/member_client.h"
#include "engine/member_service.h"
#include "engine/membership.h"
#include "engine/meta_store.h"
#include "engine/object_api.h"
#include "engine/object_store.h"
#include "engine/observer_protocol.h"
#include "engine/placement.h"
#include "engine/stat_cache.h"
#include "engine/world.h"

namespace shoal::engine {

struct ClusterOptions {
  uint32_t replicas = 2;  // copies of every chunk and inode (capped at the world size)
  uint32_t window = 16;   // remote chunk requests in flight per call
  std::chrono::milliseconds deadline{30000};
  uint32_t inline_threshold = 2048;
  uint32_t chunk_size = 4u << 20;
  uint64_t metadata_map_size = 64ull << 30;
  std::string ring_dir;  // the metadata shard's LMDB directory (<store>/ring)
  // The generator of the random uids a member falls back to (StartUids): random (0), or
  // this seed, so that a test replays exactly.
  uint64_t uid_seed = 0;
  // Members of the world's last epoch that the user declares lost at this Open (their store
  // ids): their shards and replicas are rebuilt elsewhere, and their stores are refused for
  // ever after (engine/membership.h).
  std::vector<std::string> declare_lost;
  // How long the members of an Open wait for each other to finish merging metadata (a join to
  // a world with many records merges for a while); the other phases wait the join timeout.
  std::chrono::milliseconds merge_timeout{std::chrono::minutes(30)};
  // Background repair after an Open whose membership changed (cluster_background.cc): bytes of
  // chunk copies per second, at most; 0: none (Repair only when called).
  uint64_t repair_rate = 256ull << 20;
  // Objects the background repair works on at once (each a few round trips: a lookup, a
  // probe per holder, copies, a record update); 1: one after the other.
  uint32_t repair_parallelism = 8;
  // Bytes of local chunks re-read and verified per second by the background scrub; 0: none.
  uint64_t scrub_rate = 16ull << 20;
  // Whether a member catches up in the background with the metadata shards it owns without a
  // current copy (engine/membership.h). Always, except in tests that hold a world in the middle
  // of moving (the holders serve meanwhile; the next Open tries again).
  bool catch_up = true;
  // Whether a member drops in the background the shard copies it neither owns nor holds any
  // more (retired at Open). Always, except in tests that look at a world before the drop (the
  // next Open retires them again).
  bool drop_retired = true;
  // Stat's lease on sealed objects' metadata looked up at other members (Options::stat_lease_ms;
  // 0: none) and the most entries kept (engine/stat_cache.h).
  std::chrono::milliseconds stat_lease{1000};
  size_t stat_cache_entries = 1u << 18;
  // Where the member's counters and histograms go (owned by the caller, outliving the
  // Cluster); null: a registry of its own.
  metrics::Registry* metrics = nullptr;
};

class Cluster final : public ObjectApi {
 public:
  // Opens the metadata shard, joins the world through `rendezvous` over `transport` (installing
  // the member service's handlers first) and returns when every member is reachable.
  static Result<std::unique_ptr<Cluster>> Start(const ClusterOptions& options,
                                                std::unique_ptr<ObjectStore> store,
                                                WorldOptions world_options,
                                                std::unique_ptr<transport::Transport> transport,
                                                transport::Rendezvous& rendezvous);
  ~Cluster() override;

  Status Create(std::string_view path, const CreateOptions& options) override;
  // An object kept inline until Seal (declared size up to the inline threshold) is not checked
  // with its owners first: Seal's metadata insert at the primary decides, as it does for every
  // object (a concurrent creator elsewhere is caught there anyway).
  Status CreateWhole(std::string_view path, const CreateOptions& options) override;
  Status Write(std::string_view path, uint64_t offset, std::span<const std::byte> data) override;
  // The objects whose chunks this member's store holds, from their origins (cluster_background.cc).
  Result<std::vector<LocalObject>> LocalObjects(std::string_view dir) override;
  Result<LocalSpace> GetLocalSpace() override { return store_->GetLocalSpace(); }
  // At the first reachable owner of the name's metadata, primary first (cluster_lease.cc).
  Result<Lease> TryLease(std::string_view name, uint64_t holder,
                         std::chrono::milliseconds ttl) override;
  Status ReleaseLease(std::string_view name, uint64_t holder) override;
  // engine/cluster_put_batch.cc.
  Status PutBatch(std::span<PutRequest> requests, const CreateOptions& options) override;
  Status Seal(std::string_view path) override;
  Status Abort(std::string_view path) override;
  Status ReadBatch(std::span<ReadRequest> requests) override;
  // Stat and StatBatch: cluster_stat.cc (the lease: engine/stat_cache.h).
  Result<ObjectInfo> Stat(std::string_view path) override;
  Status StatBatch(std::span<StatRequest> requests) override;
  Result<ListPage> List(std::string_view dir, const ListOptions& options) override;
  Status Remove(std::string_view path) override;
  Result<std::vector<std::vector<uint32_t>>> Locate(std::string_view path) override;
  Result<RepairReport> Repair(std::string_view dir) override;
  Result<RepairReport> WaitForRepair(std::chrono::milliseconds timeout) override
      EXCLUDES(bg_mu_);
  // The job's rank and size (a rank may serve several stores: world().size() counts those).
  uint32_t rank() const override { return world_->job_rank(); }
  uint32_t world_size() const override { return world_->job_size(); }
  // The collectives end Stat's lease (engine/stat_cache.h): what any rank did before it
  // entered one is seen by every rank's Stat after it.
  Status Barrier() override {
    Status s = world_->Barrier(std::chrono::milliseconds(60000), World::Group::kRanks);
    stat_cache_->ForgetAll();
    return s;
  }
  Result<std::vector<std::vector<std::byte>>> AllGather(std::span<const std::byte> mine) override;
  std::string_view io_backend() const override { return store_->io_backend(); }

  World& world() { return *world_; }
  ObjectStore& store() { return *store_; }
  // Ranks serving reads of `path`'s metadata in this epoch, the one deciding its writes first:
  // its shard's up holders (engine/membership.h), owners first, primary first.
  const std::vector<uint32_t>& MetadataOwners(std::string_view path) const;
  // Ranks that get every write of `path`'s metadata: MetadataOwners, then the shard's up owners
  // still catching up in the background. A write is acknowledged only once all have it.
  const std::vector<uint32_t>& MetadataWriters(std::string_view path) const;
  // This epoch's membership record (engine/membership.h).
  const Membership& membership() const { return membership_; }
  // What this member's Open of the epoch did.
  struct OpenReport {
    uint64_t owner_moves = 0;      // shard ownerships that changed hands (the world's)
    uint64_t shards_merged = 0;    // shards this member merged from other copies
    uint64_t records_pulled = 0;   // records (and tombstones) it fetched at Open (a new owner's
                                   // catch-up: RepairReport::metadata_copied)
    // Copies it neither owns nor holds any more: retired at Open (left out of its listings)
    // and dropped by its background thread once the world serves.
    uint64_t shards_dropped = 0;
    uint64_t records_held = 0;     // records and tombstones in the shard copies it keeps
    uint64_t shards_behind = 0;    // shards it owns and catches up with in the background
    double ms = 0;
  };
  const OpenReport& open_report() const { return open_report_; }
  // ---- the observer service (cluster_guest.cc, engine/observer_protocol.h) ----
  // What this member says of itself to an observer or the offline CLI.
  observer::MemberReport Report() EXCLUDES(bg_mu_);
  // A pass over this member's chunks now, unpaced (the background scrub runs at scrub_rate):
  // each local chunk object read back and its CRC32C checked; a damaged copy is dropped and
  // its object repaired from the replicas (kept when it is the only live copy). Runs on the
  // caller's thread; ends early (what it did so far) when the cluster closes.
  observer::ScrubReport ScrubNow();
  // The member's counters and histograms (docs/metrics.md).
  metrics::Registry& metrics() { return options_.metrics != nullptr ? *options_.metrics : *own_metrics_; }

 private:
  struct Writing;
  struct Piece;
  // A live copy of a chunk: the rank holding it and the uid of the local object it is in.
  struct Replica {
    uint32_t rank = 0;
    uint64_t uid = 0;
  };
  Cluster() = default;

  // ---- client paths (cluster.cc) ----
  Result<std::shared_ptr<Writing>> FindWriting(std::string_view path) EXCLUDES(open_mu_);
  const std::vector<uint32_t>& Owners(std::string_view path) const { return MetadataOwners(path); }
  const std::vector<uint32_t>& Writers(std::string_view path) const {
    return MetadataWriters(path);
  }
  Result<Inode> LookupInode(std::string_view path);
  // LookupInode of many paths, grouped by the member each asks (cluster_stat.cc); out[i] is
  // paths[i]'s.
  std::vector<Result<Inode>> LookupInodes(std::span<const std::string_view> paths);
  // Drops object `uid`'s chunks on the reachable ranks among `ranks`. A failure only leaks
  // space (logged): the object is gone from the metadata already.
  void DropEverywhere(uint64_t uid, const std::set<uint32_t>& ranks);
  bool Reachable(uint32_t rank) const { return client_->Reachable(rank); }
  std::vector<uint32_t> ReachableOf(const std::vector<uint32_t>& ranks) const;
  // The rank of a member of this world; -1 for a member not in it.
  int64_t RankOfMember(const std::string& member_id) const;

  // A fresh non-zero id for a world object or a repair's copy (64 random bits: collisions are
  // not a practical concern at any store size).
  uint64_t NewUid() EXCLUDES(uid_mu_);
  // Create and CreateWhole: `check_name` asks the path's owners whether the name is free now.
  Status Begin(std::string_view path, const CreateOptions& options, bool check_name);

  // ---- the Open of an epoch (cluster_open.cc) ----
  Status OpenEpoch(const std::vector<std::string>& declare_lost,
                   std::chrono::milliseconds join_timeout);
  // Every rank's `mine` gathered: OK when all are, else an error naming the first failed rank.
  Status AgreeAll(Status mine, std::string_view phase, std::chrono::milliseconds deadline);
  // Merges the copies of `shard` on ranks `from` into this member's; *pulled counts the
  // records fetched.
  Status MergeShard(uint32_t shard, const std::vector<uint32_t>& from, uint64_t* pulled);
  // Who serves each shard, fixed for the epoch (membership_ and up_rank_ change only at Open):
  // computed once by RouteShards.
  const std::vector<uint32_t>& ShardRanks(uint32_t shard) const {  // reads: the up holders
    return shard < shard_ranks_.size() ? shard_ranks_[shard] : kNoRanks;
  }
  const std::vector<uint32_t>& ShardWriteRanks(uint32_t shard) const {  // + owners behind
    return shard < shard_write_ranks_.size() ? shard_write_ranks_[shard] : kNoRanks;
  }
  static inline const std::vector<uint32_t> kNoRanks;  // before the Open routed the shards
  void RouteShards();
  std::vector<uint32_t> ComputeShardRanks(uint32_t shard) const;
  std::vector<uint32_t> ComputeShardWriteRanks(uint32_t shard) const;

  // ---- background repair (cluster_background.cc) ----
  // Starts the walk of the shards this member is the primary of; each object is repaired by
  // exactly one member.
  void StartBackground(bool repair) EXCLUDES(bg_mu_);
  // Repairs the objects of the shards this member is primary for; findings go to *report.
  Status BackgroundRepair(RepairReport* report) EXCLUDES(bg_mu_);
  void StopBackgroundRepair() EXCLUDES(bg_mu_);
  // Sleeps `d` (a rate limiter), or less when the member is closing.
  void PauseBackground(std::chrono::duration<double> d) EXCLUDES(bg_mu_);
  // fn(uid, size) for every chunk object this member holds, a page of 1,000 at a time.
  void ForEachLocalChunkObject(const std::function<void(uint64_t uid, uint64_t size)>& fn);
  void SweepOrphans();
  void Scrub();
  // One scrub pass at `rate` bytes per second (0: unpaced), adding to `report`.
  void ScrubPass(uint64_t rate, observer::ScrubReport* report);
  // The observer service's handlers (cluster_guest.cc), installed with the member service's;
  // they answer Unavailable until the cluster serves and once it closes (guests_served_), and
  // the destructor waits for those running (they use world_) before it takes the world down.
  void InstallGuestOps(transport::Transport& t);
  void StopGuests() EXCLUDES(guests_mu_);
  Mutex guests_mu_;
  std::condition_variable guests_cv_;
  bool guests_served_ GUARDED_BY(guests_mu_) = false;
  uint32_t guests_running_ GUARDED_BY(guests_mu_) = 0;
  // One scrub's repair of a damaged chunk object at a time (the background scrub and a guest's
  // may meet the same one): the second finds it gone and counts it repaired.
  Mutex scrub_fix_mu_;
  // Merges every shard of catch_up_ from its holders, recording each one caught up; the
  // records merged go to *report (metadata_copied). Stops at close.
  Status CatchUp(RepairReport* report);
  // Drops the shard copies of retired_ (MemberService::SetRetired). Stops at close.
  void DropRetired();

  // ---- read planning (cluster_read.cc) ----
  // The live replicas of chunk `chunk` of a striped object (its placement holders and the
  // copies a repair made), nearest first: this rank, this node, others.
  std::vector<Replica> LiveReplicas(const Inode& inode, const Placement& placement,
                                    uint64_t chunk) const;
  const Placement& PlacementFor(const Inode& inode, std::unique_ptr<Placement>* scratch) const;

  // ---- repair (cluster_repair.cc) ----
  Status RepairObject(const std::string& path, RepairReport* report);
  // The chunk part of RepairObject for a striped object; records the new copies in *inode and
  // on its owners. False when the object was removed or replaced meanwhile.
  Result<bool> RepairChunks(const std::string& path, Inode* inode, RepairReport* report);

  ClusterOptions options_;
  std::unique_ptr<metrics::Registry> own_metrics_;  // when options_.metrics is null
  metrics::Counter* read_failovers_ = nullptr;
  metrics::Counter* repair_chunks_copied_ = nullptr;
  metrics::Counter* local_chunk_bytes_read_ = nullptr;
  metrics::Counter* orphans_swept_ = nullptr;
  metrics::Counter* scrub_bad_ = nullptr;
  metrics::Counter* scrub_repaired_ = nullptr;
  metrics::Counter* scrubbed_bytes_ = nullptr;
  std::unique_ptr<ObjectStore> store_;
  std::unique_ptr<MetaStore> ring_;
  std::unique_ptr<MemberService> service_;
  std::unique_ptr<World> world_;
  std::unique_ptr<MemberClient> client_;
  std::unique_ptr<Placement> placement_;            // of the current world
  std::unique_ptr<StatCache> stat_cache_;
  std::vector<uint32_t> rank_of_;                   // placement index -> world rank
  int32_t my_index_ = -1;                           // this member's placement index
  std::unordered_map<std::string, uint32_t> rank_of_member_;
  Membership membership_;         // this epoch's
  OpenReport open_report_;
  // Shards this member owns without a current copy, and the ranks to merge them from (set by
  // the Open, read by the background thread it starts).
  std::vector<std::pair<uint32_t, std::vector<uint32_t>>> catch_up_;
  std::vector<uint32_t> retired_;  // copies to drop (set by the Open, read by the background)
  std::vector<int64_t> up_rank_;  // membership_ member index -> rank; -1 when down
  std::vector<std::vector<uint32_t>> shard_ranks_, shard_write_ranks_;  // RouteShards
  uint32_t replicas_ = 1;

  // Object uids are unique across every epoch without coordination: a world serves in each
  // epoch once (engine/membership.h), and in it each member has its own placement index, so
  // (1 << 63) | epoch << 39 | index << 27 | n is nobody else's. A member's consecutive uids are
  // consecutive keys of its chunk objects ("c/<uid>"), so a group commit of many seals dirties
  // a few LMDB pages, not one per seal; placement hashes the uid, so the sequence does not skew
  // where chunks go. Past 2^24 epochs, 4096 members or 2^27 objects of one member in an epoch:
  // random uids with bit 63 clear (uids before structured ones were random over 64 bits: one
  // of those equals a given structured uid with probability 2^-64).
  static constexpr int kUidEpochBits = 24, kUidIndexBits = 12, kUidCountBits = 27;
  void StartUids() EXCLUDES(uid_mu_);  // once the epoch is known (Start)
  Mutex uid_mu_;
  std::mt19937_64 uid_gen_ GUARDED_BY(uid_mu_);
  uint64_t uid_prefix_ GUARDED_BY(uid_mu_) = 0;  // 0: random uids
  uint64_t uid_next_ GUARDED_BY(uid_mu_) = 0;

  Mutex bg_mu_;
  std::condition_variable bg_cv_;
  std::thread bg_thread_;
  std::atomic<bool> bg_stop_{false};
  bool bg_running_ GUARDED_BY(bg_mu_) = false;
  Status bg_status_ GUARDED_BY(bg_mu_);
  RepairReport bg_report_ GUARDED_BY(bg_mu_);

  Mutex open_mu_;
  std::map<std::string, std::shared_ptr<Writing>, std::less<>> open_ GUARDED_BY(open_mu_);
};

}  // namespace shoal::engine
