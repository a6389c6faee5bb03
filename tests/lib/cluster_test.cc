// Worlds of real processes on loopback through the public Engine: each rank has its own store
// directory and node name and joins through the users' bootstrap (environment variables, file
// or TCP rendezvous). The member program (cluster_member_main.cc) does the checks; here we start
// worlds, kill members, delete stores and permute ranks.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <set>
#include <thread>

#include "tests/process_util.h"
#include "tests/store_util.h"
#include "tests/test_util.h"

namespace shoal {
namespace {

using testing::FreePort;
using testing::Process;
using testing::TempDir;

struct Member {
  std::string store;
  std::string node;
  std::string token = "cluster-job-token";
  // The launcher's local rank and ranks on this node (SHOAL_LOCAL_RANK / _WORLD_SIZE); -1: unset.
  int local_rank = -1;
  int local_world_size = -1;
  std::string log = "";  // SHOAL_LOG when not empty
};

struct Outcome {
  int code;
  std::string err;
};

class World {
 public:
  // Members meet through `rendezvous` and leave files for each other in <dir>/sync.
  World(const TempDir& dir, std::string rendezvous) : dir_(dir), rdzv_(std::move(rendezvous)) {
    std::filesystem::create_directories(dir_.Sub("sync"));
  }

  // Starts one member per entry of `members`, rank = index.
  void Start(const std::vector<Member>& members, const std::string& scenario,
             const std::string& replicas, const std::string& arg = "",
             const std::string& join_timeout_ms = "60000") {
    static int run = 0;
    ++run;
    for (size_t r = 0; r < members.size(); ++r) {
      std::string id = std::to_string(run) + "-" + std::to_string(r);
      std::vector<std::string> args{scenario, members[r].store, dir_.Sub("sync"), replicas};
      if (!arg.empty()) args.push_back(arg);
      std::vector<std::pair<std::string, std::string>> env;
      if (members.size() == 1 && rdzv_.empty()) {
        // A process alone, without a launcher: a world of one rank, no network.
        env = {{"SHOAL_NODE", members[r].node}};
      } else {
        env = testing::RankEnv(r, members.size(), members[r].node, members[r].token, rdzv_);
      }
      if (members[r].local_rank >= 0) {
        env.emplace_back("SHOAL_LOCAL_RANK", std::to_string(members[r].local_rank));
        env.emplace_back("SHOAL_LOCAL_WORLD_SIZE", std::to_string(members[r].local_world_size));
      }
      if (!members[r].log.empty()) env.emplace_back("SHOAL_LOG", members[r].log);
      env.emplace_back("TEST_JOIN_TIMEOUT_MS", join_timeout_ms);
      procs_.push_back(testing::Spawn(SHOAL_CLUSTER_MEMBER, args, dir_.Sub("out-" + id),
                                      dir_.Sub("err-" + id), env));
    }
  }
  const Process& proc(size_t r) const { return procs_[r]; }

  std::vector<Outcome> WaitAll() {
    std::vector<Outcome> out;
    for (auto& p : procs_) out.push_back({testing::Wait(p), testing::Slurp(p.err)});
    procs_.clear();
    return out;
  }

 private:
  const TempDir& dir_;
  std::string rdzv_;
  std::vector<Process> procs_;
};

std::vector<Member> Members(const TempDir& dir, int n) {
  std::vector<Member> m;
  for (int r = 0; r < n; ++r) {
    m.push_back({dir.Sub("store-" + std::to_string(r)), "node-" + std::to_string(r)});
  }
  return m;
}

void ExpectAllOk(const std::vector<Outcome>& res) {
  for (size_t r = 0; r < res.size(); ++r) EXPECT_EQ(res[r].code, 0) << "rank " << r << ":\n" << res[r].err;
}

TEST(Cluster, FourRanksReadWriteListRemoveEachOthersObjects) {
  TempDir dir;
  World w(dir, "file:" + dir.Sub("rdzv"));
  w.Start(Members(dir, 4), "full", "1");
  ExpectAllOk(w.WaitAll());
}

TEST(Cluster, TcpRendezvousHostedByRankZeroWithReplicationTwo) {
  TempDir dir;
  World w(dir, "tcp:127.0.0.1:" + std::to_string(FreePort()));
  w.Start(Members(dir, 4), "full", "2");
  ExpectAllOk(w.WaitAll());
}

// A CLI attaching to a live world (issue 12): ranks 1..3 observe the world of 4 through rank
// 0's rendezvous port after Open and see its members and this epoch's membership record; the
// world goes on working, and the next job's Open starts exactly the next epoch: observers
// start none.
TEST(Cluster, ObserversOfALiveWorldStartNoEpoch) {
  TempDir dir;
  World w(dir, "tcp:127.0.0.1:" + std::to_string(FreePort()));
  // Runs the job and returns the epoch its observers saw.
  auto run = [&] {
    w.Start(Members(dir, 4), "observe", "2");
    std::vector<std::string> outs;
    for (int r = 1; r < 4; ++r) outs.push_back(w.proc(r).out);
    ExpectAllOk(w.WaitAll());
    std::set<std::string> seen;
    for (int r = 1; r < 4; ++r) {
      std::string out = testing::Slurp(outs[r - 1]);
      EXPECT_EQ(out.rfind("epoch ", 0), 0u) << "rank " << r << ": " << out;
      seen.insert(out.substr(0, out.find('\n')));
    }
    EXPECT_EQ(seen.size(), 1u);  // every observer saw the same epoch
    return seen.empty() ? 0ull : std::stoull(seen.begin()->substr(6));
  };
  const uint64_t first = run();
  EXPECT_GE(first, 1u);
  EXPECT_EQ(run(), first + 1);
}

TEST(Cluster, RestartWithPermutedRanksFindsEveryObject) {
  TempDir dir;
  auto members = Members(dir, 4);
  {
    World w(dir, "file:" + dir.Sub("rdzv-1"));
    w.Start(members, "write", "1");
    ExpectAllOk(w.WaitAll());
  }
  // Same store directories (a store stays on its node), rank numbers rotated.
  std::vector<Member> permuted = {members[2], members[3], members[1], members[0]};
  World w(dir, "file:" + dir.Sub("rdzv-2"));
  w.Start(permuted, "verify", "1", "4");
  ExpectAllOk(w.WaitAll());
}

TEST(Cluster, ReplicationTwoSurvivesANodeKilledWithItsStoreDeleted) {
  TempDir dir;
  auto members = Members(dir, 4);
  const int victim = 2;
  World w(dir, "file:" + dir.Sub("rdzv"));
  w.Start(members, "kill", "2", std::to_string(victim));
  for (int r = 0; r < 4; ++r) {
    std::string ready = dir.Sub("sync/ready-" + std::to_string(r));
    for (int i = 0; i < 6000 && !std::filesystem::exists(ready); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(std::filesystem::exists(ready)) << "rank " << r << " never got ready";
  }
  ASSERT_EQ(::kill(w.proc(victim).pid, SIGKILL), 0);
  std::filesystem::remove_all(members[victim].store);
  { std::FILE* f = std::fopen(dir.Sub("sync/go").c_str(), "w"); ASSERT_NE(f, nullptr); std::fclose(f); }
  auto res = w.WaitAll();
  EXPECT_EQ(res[victim].code, 128 + SIGKILL);
  for (int r = 0; r < 4; ++r) {
    if (r == victim) continue;
    EXPECT_EQ(res[r].code, 0) << "rank " << r << ":\n" << res[r].err;
  }
}

// Repair after a lost node: four members write with replication 2; member 3's store is deleted.
// The three others repair (every chunk back to 2 live replicas, checked with Locate); then member
// 2's store is deleted too and the last two still read every object. Without the repair, chunks
// whose two replicas were on members 2 and 3 would be gone.
TEST(Cluster, RepairRebuildsReplicasSoASecondLossIsSurvived) {
  TempDir dir;
  auto members = Members(dir, 4);
  {
    World w(dir, "file:" + dir.Sub("rdzv-1"));
    w.Start(members, "write", "2");
    ExpectAllOk(w.WaitAll());
  }
  // A node is lost with its disk; the job restarts without it and declares it lost
  // (SHOAL_LOST_MEMBERS): its metadata shards are rebuilt at Open, its chunks by the repair.
  const std::string lost3 = testing::StoreMemberId(members[3].store);
  std::filesystem::remove_all(members[3].store);
  {
    testing::ScopedEnv lost("SHOAL_LOST_MEMBERS", lost3);
    World w(dir, "file:" + dir.Sub("rdzv-2"));
    w.Start({members[0], members[1], members[2]}, "repair", "2", "4");
    auto res = w.WaitAll();
    ExpectAllOk(res);
  }
  const std::string lost2 = testing::StoreMemberId(members[2].store);
  std::filesystem::remove_all(members[2].store);
  testing::ScopedEnv lost("SHOAL_LOST_MEMBERS", lost2);
  World w(dir, "file:" + dir.Sub("rdzv-3"));
  w.Start({members[1], members[0]}, "verify", "2", "4");
  ExpectAllOk(w.WaitAll());
}

// Jobs of 1, 3, 2, 4, 3 and 4 ranks over the same stores (a store down, a new one, ranks
// permuted), each writing and removing: every object written and not removed reads back
// bit-exact on every rank of every later job; every removed one stays removed (cluster_member
// "seq" checks the whole history at each step). A job of 1 on a store of the 4 is refused.
TEST(Cluster, SequencesOfJobsOfDifferentSizesLoseNothingAndResurrectNothing) {
  TempDir dir;
  auto m = Members(dir, 4);
  const std::vector<std::vector<Member>> steps = {
      {m[0]}, {m[0], m[1], m[2]}, {m[1], m[0]}, {m[0], m[1], m[2], m[3]}, {m[3], m[1], m[2]},
      {m[2], m[0], m[3], m[1]}};
  std::string sizes;
  for (size_t s = 0; s < steps.size(); ++s) {
    sizes += (s == 0 ? "" : ",") + std::to_string(steps[s].size());
    World w(dir, "file:" + dir.Sub("rdzv-seq-" + std::to_string(s)));
    w.Start(steps[s], "seq", "2", sizes);
    const std::string out = w.proc(0).out;
    ExpectAllOk(w.WaitAll());
    const std::string said = testing::Slurp(out);
    EXPECT_NE(said.find(fmt::format("seq step {} ", s)), std::string::npos) << said;
    std::printf("%s", said.c_str());
  }
  World alone(dir, "file:" + dir.Sub("rdzv-alone"));
  alone.Start({m[0]}, "verify", "2", "0");
  auto res = alone.WaitAll();
  ASSERT_EQ(res.size(), 1u);
  EXPECT_NE(res[0].code, 0);
  EXPECT_NE(res[0].err.find("majority"), std::string::npos) << res[0].err;
}

// Stores are members, not ranks: a node's stores named by local rank ("<dir>/n/{local_rank}")
// and jobs of 4, 2, 1, 3 and 5 ranks on that node. Each rank serves its own store and the
// node's stores no rank of the job opens (local rank l of L: l, l + L, ...), so every job is
// the same world of the same stores (a new empty one at 5 ranks): every object written and not
// removed reads back bit-exact, every removed one stays removed, at every step — and no step
// is refused for want of a majority, which a job serving only its own stores would be.
TEST(Cluster, AJobOfFewerRanksServesEveryStoreOfItsNode) {
  TempDir dir;
  const std::string stores = dir.Sub("n") + "/{local_rank}";
  auto job = [&](int ranks) {
    std::vector<Member> m;
    for (int r = 0; r < ranks; ++r) {
      m.push_back({stores, "node-n", "cluster-job-token", r, ranks, "info"});
    }
    return m;
  };
  const std::vector<int> sizes_of = {4, 2, 1, 3, 5};
  std::string sizes;
  for (size_t s = 0; s < sizes_of.size(); ++s) {
    sizes += (s == 0 ? "" : ",") + std::to_string(sizes_of[s]);
    // The job of one rank runs without any launcher variable (alone: its stores meet in-process).
    World w(dir, sizes_of[s] == 1 ? std::string() : "file:" + dir.Sub("rdzv-" + std::to_string(s)));
    w.Start(job(sizes_of[s]), "seq", "2", sizes);
    const std::string out = w.proc(0).out;
    const std::string err = w.proc(0).err;
    ExpectAllOk(w.WaitAll());
    const std::string said = testing::Slurp(out);
    EXPECT_NE(said.find(fmt::format("seq step {} ", s)), std::string::npos) << said;
    std::printf("%s", said.c_str());
    // Every store of the node took part: 4 members, 5 once the job of 5 made a new one.
    const std::string log = testing::Slurp(err);
    const std::string members = fmt::format("of {} joined", s + 1 < sizes_of.size() ? 4 : 5);
    EXPECT_NE(log.find(members), std::string::npos) << log;
  }
  EXPECT_TRUE(std::filesystem::exists(dir.Sub("n/4/FORMAT")));
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("n/5")));
}

TEST(Cluster, MalformedMessagesFromAMemberCrashNobody) {
  TempDir dir;
  World w(dir, "file:" + dir.Sub("rdzv"));
  w.Start(Members(dir, 4), "evil", "2");
  ExpectAllOk(w.WaitAll());
}

TEST(Cluster, WrongTokenIsRefusedAtOpen) {
  TempDir dir;
  auto members = Members(dir, 2);
  members[1].token = "stolen-token";
  World w(dir, "tcp:127.0.0.1:" + std::to_string(FreePort()));
  w.Start(members, "write", "1", "", "4000");
  auto res = w.WaitAll();  // rank 0 keeps waiting for a rightful rank 1 until its join timeout
  EXPECT_EQ(res[1].code, 3) << res[1].err;
  EXPECT_NE(res[1].err.find("job token"), std::string::npos) << res[1].err;
  EXPECT_NE(res[0].code, 0);
  EXPECT_NE(res[0].err.find("job token"), std::string::npos) << res[0].err;
}

}  // namespace
}  // namespace shoal
