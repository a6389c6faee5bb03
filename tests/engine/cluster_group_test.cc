// Ranks serving several stores (engine/cluster_group.h), in one process over an InProcNetwork:
// a store is a member of the world, not a rank. Jobs of 5, 2 and 3 ranks over the same 5
// stores are the same world — no epoch sees a member down, nothing moves — and every object
// stays readable; the job's collectives count ranks, the Open's count stores.
#include "engine/cluster_group.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <thread>

#include "tests/engine/inproc_world.h"
#include "tests/test_util.h"
#include "transport/inproc_transport.h"

namespace shoal::engine {
namespace {

using shoal::testing::kTestChunk;
using shoal::testing::LocalGather;
using shoal::testing::Pattern;
using shoal::testing::TempDir;

// A job: rank r serves stores[r] (its first one is its own). Stores 0, 2, 4 are on node a, 1 and
// 3 on node b: a rank serves stores of its own node only.
class GroupJob {
 public:
  GroupJob(const TempDir& dir, std::vector<std::vector<uint32_t>> stores, uint64_t seed)
      : dir_(dir), stores_(std::move(stores)) {
    for (auto& s : stores_) {
      for (uint32_t id : s) lost_[id] = {};
    }
    uint32_t members = 0;
    for (auto& s : stores_) members += static_cast<uint32_t>(s.size());
    net_ = std::make_unique<transport::InProcNetwork>(members, seed);
  }

  Status Start() {
    const auto ranks = static_cast<uint32_t>(stores_.size());
    groups_.resize(ranks);
    std::vector<Status> results(ranks);
    std::vector<std::thread> threads;
    LocalGather gather(ranks);
    for (uint32_t r = 0; r < ranks; ++r) rdzv_[r] = gather.Rendezvous(r);  // before the threads
    uint32_t first_index = 0;
    for (uint32_t r = 0; r < ranks; ++r) {
      threads.emplace_back([&, r, first_index] { results[r] = StartRank(r, first_index); });
      first_index += static_cast<uint32_t>(stores_[r].size());
    }
    for (auto& t : threads) t.join();
    results_ = results;
    for (const Status& s : results) SHOAL_RETURN_IF_ERROR(s);
    return Status::OK();
  }

  ClusterGroup& rank(uint32_t r) { return *groups_.at(r); }
  // The members store `store` declares lost at its Open (the others declare none): the ranks
  // disagree, so that member's Open fails after the rendezvous.
  void DeclareLostAt(uint32_t store, std::vector<std::string> ids) { lost_[store] = std::move(ids); }
  // Each rank's Start result (Start returns the first error).
  const std::vector<Status>& results() const { return results_; }
  uint32_t ranks() const { return static_cast<uint32_t>(stores_.size()); }

 private:
  Status StartRank(uint32_t r, uint32_t first_index) {
    std::vector<ClusterGroup::Member> members;
    for (size_t s = 0; s < stores_[r].size(); ++s) {
      const std::string store = dir_.Sub("m" + std::to_string(stores_[r][s]));
      ClusterGroup::Member m;
      SHOAL_ASSIGN_OR_RETURN(
          m.store, ObjectStore::Open(shoal::testing::TestOptions(store, IoBackend::kPosix, 4)));
      m.options.replicas = 2;
      m.options.chunk_size = kTestChunk;
      m.options.inline_threshold = 1024;
      m.options.deadline = std::chrono::milliseconds(2000);
      m.options.metadata_map_size = 64ull << 20;
      m.options.ring_dir = store + "/ring";
      m.options.declare_lost = lost_[stores_[r][s]];
      m.transport = net_->Endpoint(first_index + static_cast<uint32_t>(s));
      members.push_back(std::move(m));
    }
    WorldOptions wo;
    wo.rank = r;
    wo.world_size = ranks();
    wo.node = stores_[r][0] % 2 == 0 ? "node-a" : "node-b";  // even stores on a, odd on b
    wo.timeout = std::chrono::milliseconds(10000);
    SHOAL_ASSIGN_OR_RETURN(groups_[r], ClusterGroup::Start(std::move(members), wo, *rdzv_.at(r)));
    return Status::OK();
  }

  const TempDir& dir_;
  std::vector<std::vector<uint32_t>> stores_;
  std::unique_ptr<transport::InProcNetwork> net_;
  std::map<uint32_t, std::unique_ptr<transport::Rendezvous>> rdzv_;
  std::vector<std::unique_ptr<ClusterGroup>> groups_;
  std::map<uint32_t, std::vector<std::string>> lost_;
  std::vector<Status> results_;
};

Status Put(ObjectApi& api, const std::string& path, const std::vector<std::byte>& data) {
  CreateOptions co;
  co.size = data.size();
  SHOAL_RETURN_IF_ERROR(api.Create(path, co));
  SHOAL_RETURN_IF_ERROR(api.Write(path, 0, data));
  return api.Seal(path);
}

void ExpectReads(ObjectApi& api, const std::string& path, const std::vector<std::byte>& want) {
  std::vector<std::byte> got(want.size());
  ReadRequest req{path, 0, got, {}, 0};
  ASSERT_OK(api.ReadBatch({&req, 1}));
  ASSERT_OK(req.status) << path;
  EXPECT_EQ(req.bytes_read, want.size()) << path;
  EXPECT_TRUE(got == want) << path;
}

size_t SizeOf(uint32_t step, uint32_t r) { return (r + 1) * kTestChunk + 100 * step + 7; }

TEST(ClusterGroup, JobsOfFiveTwoAndThreeRanksAreOneWorldOfTheSameFiveStores) {
  TempDir dir;
  std::map<std::string, std::vector<std::byte>> live;
  std::vector<std::string> removed;
  uint64_t epoch = 0;
  const std::vector<std::vector<std::vector<uint32_t>>> jobs = {
      {{0}, {1}, {2}, {3}, {4}},  // one store per rank
      {{0, 2, 4}, {1, 3}},        // two ranks (one per node) serve all five
      {{2, 0}, {3, 1}, {4}},      // three, in another order
  };
  for (uint32_t step = 0; step < jobs.size(); ++step) {
    SCOPED_TRACE("job " + std::to_string(step));
    GroupJob job(dir, jobs[step], 40 + step);
    ASSERT_OK(job.Start());
    for (uint32_t r = 0; r < job.ranks(); ++r) {
      ClusterGroup& g = job.rank(r);
      EXPECT_EQ(g.rank(), r);
      EXPECT_EQ(g.world_size(), job.ranks());
      EXPECT_EQ(g.size(), jobs[step][r].size());
      for (size_t s = 0; s < g.size(); ++s) {
        Cluster& m = g.member(s);
        EXPECT_EQ(m.world().size(), 5u);  // a member per store, whatever the ranks
        EXPECT_EQ(m.world().job_rank(), r);
        const Membership& ms = m.membership();
        EXPECT_EQ(ms.members.size(), 5u);
        for (const MemberEntry& e : ms.members) EXPECT_TRUE(e.up) << e.id;
        if (step > 0) {
          // The same five stores: a new epoch, but no owner moved and nothing merged.
          EXPECT_EQ(ms.epoch, epoch + 1);
          EXPECT_EQ(m.open_report().owner_moves, 0u);
          EXPECT_EQ(m.open_report().shards_merged, 0u);
        }
      }
    }
    epoch = job.rank(0).member(0).membership().epoch;

    // The job's collectives have one participant per rank, in rank order; a store a rank serves
    // for others does not take part.
    std::vector<std::thread> threads;
    std::vector<Result<std::vector<std::vector<std::byte>>>> gathered(
        job.ranks(), Status::Internal("not run"));
    for (uint32_t r = 0; r < job.ranks(); ++r) {
      threads.emplace_back([&, r] {
        std::vector<std::byte> mine{static_cast<std::byte>(r)};
        gathered[r] = job.rank(r).AllGather(mine);
      });
    }
    for (auto& t : threads) t.join();
    for (uint32_t r = 0; r < job.ranks(); ++r) {
      ASSERT_OK(gathered[r]);
      ASSERT_EQ(gathered[r]->size(), job.ranks());
      for (uint32_t i = 0; i < job.ranks(); ++i) {
        EXPECT_EQ((*gathered[r])[i], std::vector<std::byte>{static_cast<std::byte>(i)});
      }
    }
    if (job.rank(0).size() > 1) {
      EXPECT_CODE(job.rank(0).member(1).AllGather({}), kFailedPrecondition);
    }

    // Every object of earlier jobs reads back from every rank; removed ones stay removed.
    for (uint32_t r = 0; r < job.ranks(); ++r) {
      for (auto& [path, data] : live) ExpectReads(job.rank(r), path, data);
      for (auto& path : removed) EXPECT_CODE(job.rank(r).Stat(path), kNotFound) << path;
    }
    // Each rank writes; rank 0 removes one object of the last job.
    for (uint32_t r = 0; r < job.ranks(); ++r) {
      std::string path = "j" + std::to_string(step) + "/r" + std::to_string(r);
      auto data = Pattern(SizeOf(step, r), step * 100 + r);
      ASSERT_OK(Put(job.rank(r), path, data));
      live[path] = data;
    }
    if (step > 0) {
      std::string victim = "j" + std::to_string(step - 1) + "/r0";
      ASSERT_OK(job.rank(0).Remove(victim));
      live.erase(victim);
      removed.push_back(victim);
    }
    for (uint32_t r = 0; r < job.ranks(); ++r) {
      for (auto& [path, data] : live) ExpectReads(job.rank(r), path, data);
    }
  }
}

// One store of a rank failing after the rendezvous (its Open disagrees with the others) fails
// every rank's Open with an error, without waiting out a timeout, and leaves nothing open: the
// group closes the rank's other members (their store locks are released), so the next job over
// the same stores opens them all and finds every object.
TEST(ClusterGroup, AMemberFailingAfterTheRendezvousFailsTheJobAndLeavesNothingOpen) {
  TempDir dir;
  const std::vector<std::vector<uint32_t>> stores = {{0, 2}, {1, 3}};
  std::vector<std::byte> data = Pattern(3 * kTestChunk + 11, 7);
  std::string stranger;
  {
    GroupJob job(dir, stores, 70);
    ASSERT_OK(job.Start());
    ASSERT_OK(Put(job.rank(0), "kept/x", data));
    stranger = job.rank(1).member(1).membership().members[0].id;  // a real member's id
  }
  {
    GroupJob job(dir, stores, 71);
    job.DeclareLostAt(2, {stranger});  // rank 0's second store only
    const auto started = std::chrono::steady_clock::now();
    EXPECT_FALSE(job.Start().ok());
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(9))
        << "the failure was noticed only at the 10 s join timeout";
    ASSERT_EQ(job.results().size(), 2u);
    for (uint32_t r = 0; r < 2; ++r) {
      EXPECT_FALSE(job.results()[r].ok()) << "rank " << r << " opened with a member failed";
      EXPECT_NE(job.results()[r].message().find("disagree"), std::string::npos)
          << job.results()[r];
    }
  }
  GroupJob again(dir, stores, 72);
  ASSERT_OK(again.Start());
  for (uint32_t r = 0; r < again.ranks(); ++r) ExpectReads(again.rank(r), "kept/x", data);
}

}  // namespace
}  // namespace shoal::engine
