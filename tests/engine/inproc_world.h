// InProcWorld: N Cluster members in one process over an InProcNetwork, each with its own store
// directory and node name — the harness of the in-process world suite. Joins every member in
// parallel (Join ends with a barrier), and restarts the world on the same stores (a new job,
// possibly with a store wiped: a member whose disk was lost).
#pragma once

#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "engine/cluster.h"
#include "tests/test_util.h"
#include "transport/inproc_transport.h"

namespace shoal::testing {

// The rendezvous of ranks in one process: rank r's AllGather returns every rank's blob once all
// n arrived. Rendezvous(r) may be called from any thread; the gather must outlive them.
class LocalGather {
 public:
  explicit LocalGather(uint32_t n) : state_(std::make_shared<State>(n)) {}
  std::unique_ptr<transport::Rendezvous> Rendezvous(uint32_t r) const {
    auto g = state_;
    return transport::NewCallbackRendezvous(
        [g, r](const transport::Blob& mine) -> Result<std::vector<transport::Blob>> {
          std::unique_lock lk(g->mu);
          g->blobs[r] = mine;
          g->arrived++;
          g->cv.notify_all();
          g->cv.wait(lk, [&] { return g->arrived == g->blobs.size(); });
          return g->blobs;
        },
        static_cast<uint32_t>(g->blobs.size()));
  }

 private:
  struct State {
    explicit State(uint32_t n) : blobs(n) {}
    std::mutex mu;
    std::condition_variable cv;
    std::vector<transport::Blob> blobs;
    uint32_t arrived = 0;
  };
  std::shared_ptr<State> state_;
};

class InProcWorld {
 public:
  InProcWorld(const TempDir& dir, std::vector<std::string> nodes, uint32_t replicas,
              uint64_t seed)
      : dir_(dir), nodes_(std::move(nodes)), replicas_(replicas), seed_(seed) {}
  ~InProcWorld() { Stop(); }

  // Opens every member (store <dir>/m<i>) and joins the world. `deadline`: request timeout.
  Status Start(std::chrono::milliseconds deadline = std::chrono::milliseconds(400)) {
    std::vector<uint32_t> all(nodes_.size());
    for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
    return StartStores(all, {}, deadline);
  }
  // A job of stores.size() ranks: rank r opens store stores[r] (on node nodes[stores[r]]);
  // `lost`: member ids declared lost at this Open.
  // `deadline` 0: the world's default (set_default_deadline).
  Status StartStores(const std::vector<uint32_t>& stores, std::vector<std::string> lost = {},
                     std::chrono::milliseconds deadline = std::chrono::milliseconds(0)) {
    return StartStoresImpl(stores, std::move(lost),
                           deadline.count() != 0 ? deadline : default_deadline_, nullptr);
  }
  // The request timeout of StartStores: short (400 ms) so that tests of lost messages end
  // quickly; suites whose messages are never dropped (members are killed, which ends their
  // calls at once) raise it, so that an fsync slowed by a loaded machine is not a timeout.
  void set_default_deadline(std::chrono::milliseconds d) { default_deadline_ = d; }
  // StartStores with `fault` applied from the first message of the Open on.
  Status StartStoresWithFault(const std::vector<uint32_t>& stores, transport::FaultRule fault) {
    return StartStoresImpl(stores, {}, std::chrono::milliseconds(400), &fault);
  }

 private:
  Status StartStoresImpl(const std::vector<uint32_t>& stores, std::vector<std::string> lost,
                         std::chrono::milliseconds deadline, const transport::FaultRule* fault) {
    Stop();
    const uint32_t n = static_cast<uint32_t>(stores.size());
    stores_ = stores;
    lost_ = std::move(lost);
    starts_++;
    net_ = std::make_unique<transport::InProcNetwork>(n, seed_);
    if (fault != nullptr) net_->AddRule(*fault);
    members_.clear();
    members_.resize(n);
    std::vector<Status> results(n);
    std::vector<std::thread> threads;
    LocalGather gather(n);
    for (uint32_t r = 0; r < n; ++r) {
      threads.emplace_back([&, r] { results[r] = StartOne(r, deadline, gather); });
    }
    for (auto& t : threads) t.join();
    rank_lost_.clear();
    for (const Status& s : results) SHOAL_RETURN_IF_ERROR(s);
    for (uint32_t r = 0; r < n; ++r) ids_[stores_[r]] = members_[r]->store().member_id();
    return Status::OK();
  }

 public:
  // The member id of store `store` (known once a world opened it).
  const std::string& MemberId(uint32_t store) const { return ids_.at(store); }
  void Stop() {
    for (auto& m : members_) m.reset();
    net_.reset();
  }
  // LMDB map size of each member's metadata (benchmarks with many records need more).
  void set_metadata_map_size(uint64_t bytes) { map_size_ = bytes; }
  // Members declared lost by rank `rank` only, at the next Start (a misconfigured job).
  void set_rank_lost(uint32_t rank, std::vector<std::string> lost) { rank_lost_[rank] = std::move(lost); }
  // Whether members catch up with the shards they newly own in the background (at the next
  // Start on): false holds the world in the middle of moving its metadata.
  void set_catch_up(bool on) { catch_up_ = on; }
  // Whether members drop their retired shard copies in the background (ClusterOptions).
  void set_drop_retired(bool on) { drop_retired_ = on; }
  // How long the world's Open waits for a member (each phase).
  void set_join_timeout(std::chrono::milliseconds t) { join_timeout_ = t; }
  void set_repair_parallelism(uint32_t p) { repair_parallelism_ = p; }
  // Stat's lease on other members' answers (ClusterOptions::stat_lease; 0: none).
  void set_stat_lease(std::chrono::milliseconds lease) { stat_lease_ = lease; }
  // Background repair's copy rate, bytes per second (0: none).
  void set_repair_rate(uint64_t bytes_per_s) { repair_rate_ = bytes_per_s; }
  // The directory of store `store`.
  std::string Store(uint32_t store) const { return dir_.Sub("m" + std::to_string(store)); }
  engine::Cluster& at(uint32_t r) { return *members_.at(r); }
  // Create + Write + Seal of a whole object through rank r (Abort when any fails).
  Status Put(uint32_t r, const std::string& path, std::span<const std::byte> data) {
    engine::Cluster& m = at(r);
    SHOAL_RETURN_IF_ERROR(m.Create(path, {}));
    Status s = m.Write(path, 0, data);
    if (s.ok()) s = m.Seal(path);
    if (!s.ok()) (void)m.Abort(path);
    return s;
  }
  transport::InProcNetwork& net() { return *net_; }
  // Ranks of the running world.
  uint32_t size() const { return static_cast<uint32_t>(stores_.size()); }

 private:
  Status StartOne(uint32_t r, std::chrono::milliseconds deadline, const LocalGather& gather) {
    Options o = TestOptions(Store(stores_[r]), IoBackend::kPosix, 4);
    SHOAL_ASSIGN_OR_RETURN(auto store, engine::ObjectStore::Open(o));
    engine::ClusterOptions co;
    co.replicas = replicas_;
    co.chunk_size = kTestChunk;
    co.inline_threshold = 1024;
    co.deadline = deadline;
    co.metadata_map_size = map_size_;
    co.ring_dir = Store(stores_[r]) + "/ring";
    co.declare_lost = rank_lost_.count(r) != 0 ? rank_lost_[r] : lost_;
    co.merge_timeout = join_timeout_;
    co.catch_up = catch_up_;
    co.drop_retired = drop_retired_;
    co.repair_parallelism = repair_parallelism_;
    co.repair_rate = repair_rate_;
    co.stat_lease = stat_lease_;
    co.uid_seed = seed_ * 1000 + r + 1 + 100 * starts_;
    engine::WorldOptions wo;
    wo.rank = r;
    wo.world_size = size();
    wo.node = nodes_[stores_[r]];
    wo.timeout = join_timeout_;
    auto rdzv = gather.Rendezvous(r);
    SHOAL_ASSIGN_OR_RETURN(members_[r],
                           engine::Cluster::Start(co, std::move(store), wo,
                                                  net_->Endpoint(r, 4, deadline), *rdzv));
    return Status::OK();
  }

  const TempDir& dir_;
  std::vector<std::string> nodes_;
  uint32_t replicas_;
  uint64_t seed_;
  std::chrono::milliseconds default_deadline_{400};
  uint64_t starts_ = 0;  // a restarted world draws other uids
  uint64_t map_size_ = 64ull << 20;
  std::chrono::milliseconds join_timeout_{10000};
  uint32_t repair_parallelism_ = engine::ClusterOptions{}.repair_parallelism;
  uint64_t repair_rate_ = engine::ClusterOptions{}.repair_rate;
  std::chrono::milliseconds stat_lease_ = engine::ClusterOptions{}.stat_lease;
  bool catch_up_ = true;
  bool drop_retired_ = true;
  std::vector<uint32_t> stores_;  // rank -> store
  std::vector<std::string> lost_;
  std::map<uint32_t, std::vector<std::string>> rank_lost_;
  std::map<uint32_t, std::string> ids_;
  std::unique_ptr<transport::InProcNetwork> net_;
  std::vector<std::unique_ptr<engine::Cluster>> members_;
};

}  // namespace shoal::testing
