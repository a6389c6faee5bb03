// Checkpoints of jobs of real processes (ckpt_member_main.cc), each rank with its own store and
// node name, killed, restarted with other world sizes and permuted ranks, with stores deleted.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <random>
#include <algorithm>
#include <chrono>
#include <thread>

#include "shoal/engine.h"
#include "engine/object_store.h"
#include "tests/lib/ckpt_content.h"
#include "tests/process_util.h"
#include "tests/store_util.h"
#include "tests/test_util.h"

namespace shoal {
namespace {

using testing::Process;
using testing::TempDir;

struct Member {
  std::string store;
  std::string node;
};

struct Outcome {
  int code;
  std::string out, err;
};

class Job {
 public:
  Job(const TempDir& dir, std::string token = "ckpt-job-token") : dir_(dir), token_(std::move(token)) {
    std::filesystem::create_directories(dir_.Sub("sync"));
  }

  void Start(const std::vector<Member>& members, const std::vector<std::string>& args) {
    static int run = 0;
    ++run;
    const std::string rdzv = dir_.Sub("rdzv-" + std::to_string(run));
    for (size_t r = 0; r < members.size(); ++r) {
      std::string id = std::to_string(run) + "-" + std::to_string(r);
      std::vector<std::string> argv{args[0], members[r].store, dir_.Sub("sync"), args[1]};
      argv.insert(argv.end(), args.begin() + 2, args.end());
      procs_.push_back(testing::Spawn(
          SHOAL_CKPT_MEMBER, argv, dir_.Sub("out-" + id), dir_.Sub("err-" + id),
          testing::RankEnv(r, members.size(), members[r].node, token_, "file:" + rdzv)));
    }
  }
  std::vector<Process>& procs() { return procs_; }

  std::vector<Outcome> WaitAll() {
    std::vector<Outcome> out;
    for (auto& p : procs_) {
      int code = testing::Wait(p);
      out.push_back({code, testing::Slurp(p.out), testing::Slurp(p.err)});
    }
    procs_.clear();
    return out;
  }

 private:
  const TempDir& dir_;
  std::string token_;
  std::vector<Process> procs_;
};

std::vector<Member> Members(const TempDir& dir, int n, const std::string& prefix = "store-") {
  std::vector<Member> m;
  for (int r = 0; r < n; ++r) {
    m.push_back({dir.Sub(prefix + std::to_string(r)), "node-" + std::to_string(r)});
  }
  return m;
}

void ExpectAllOk(const std::vector<Outcome>& res) {
  for (size_t r = 0; r < res.size(); ++r) {
    EXPECT_EQ(res[r].code, 0) << "rank " << r << ":\n" << res[r].err;
  }
}

// "tags N latest T worlds W..." from rank 0 of a verify run.
struct Seen {
  int tags = -1;
  int latest = 0;
  int first = 0;
  std::string worlds;
};

Seen Verified(const std::vector<Outcome>& res) {
  Seen s;
  const std::string& out = res.at(0).out;
  size_t at = out.find("tags ");
  if (at == std::string::npos) return s;
  char latest[64] = {0}, first[64] = {0};
  if (std::sscanf(out.c_str() + at, "tags %d latest %63s first %63s", &s.tags, latest, first) != 3) {
    return s;
  }
  s.latest = std::strncmp(latest, "step-", 5) == 0 ? std::atoi(latest + 5) : 0;
  s.first = std::strncmp(first, "step-", 5) == 0 ? std::atoi(first + 5) : 0;
  size_t w = out.find("worlds", at);
  if (w != std::string::npos) s.worlds = out.substr(w + 6, out.find('\n', w) - w - 6);
  return s;
}

// The steps of the markers "<prefix><n>-r<rank>" ckpt_member left in SYNC after each Commit.
std::vector<int> Markers(const TempDir& dir, const std::string& prefix) {
  std::vector<int> steps;
  for (const auto& f : std::filesystem::directory_iterator(dir.Sub("sync"))) {
    std::string n = f.path().filename().string();
    if (n.rfind(prefix, 0) == 0) steps.push_back(std::atoi(n.c_str() + prefix.size()));
  }
  return steps;
}

bool HasMarker(const TempDir& dir, const std::string& name) {
  return std::filesystem::exists(dir.Sub("sync") + "/" + name);
}

// Removes the per-rank outcome markers (ok-, unknown-, failed-), which hold for one save run.
void ClearOutcomeMarkers(const TempDir& dir) {
  std::filesystem::create_directories(dir.Sub("sync"));
  for (const auto& f : std::filesystem::directory_iterator(dir.Sub("sync"))) {
    std::string n = f.path().filename().string();
    if (n.rfind("ok-", 0) == 0 || n.rfind("unknown-", 0) == 0 || n.rfind("failed-", 0) == 0) {
      std::filesystem::remove(f.path());
    }
  }
}

// Commit's result is exact: a step some rank saw OK is committed (latest >= it: steps are
// committed in order, and each save run starts at latest + 1), a step some rank saw fail
// (not Timeout, which means "unknown") is not (the run stops at the failure).
void ExpectExactOutcomes(const TempDir& dir, int latest, const std::string& where) {
  for (int n : Markers(dir, "ok-")) {
    EXPECT_LE(n, latest) << where << ": a Commit of step-" << n << " returned OK, not committed";
  }
  for (int n : Markers(dir, "failed-")) {
    EXPECT_GT(n, latest) << where << ": a Commit of step-" << n << " failed, yet it is committed";
  }
}

int MaxMarker(const TempDir& dir) {
  int best = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir.Sub("sync"))) {
    std::string n = f.path().filename().string();
    if (n.rfind("committed-", 0) == 0) best = std::max(best, std::atoi(n.c_str() + 10));
  }
  return best;
}

// A rank killed at a random instant of save or commit, then the whole job torn down (as a
// launcher does) and restarted on the same stores, ranks permuted every other trial: every
// committed tag loads bit-exact, the listed tags are the last 4 (5 when the kill fell between a
// publish and its retention) of step-1..step-L with no gap (a torn tag is never listed;
// retention keeps 4, so kills also land in deletions), `latest` never goes back and covers
// every commit that returned OK, every Commit's result was exact (OK iff committed, a failure
// iff not; Timeout, "unknown", is allowed), and the next Begin leaves no data of uncommitted
// tags. Seeded; SHOAL_CKPT_TRIALS / SHOAL_CKPT_SEED override.
//
// Why at most 5, always: Begin (rank 0, before any rank saves) applies retention, and fails
// when it cannot, so at most keep_last = 4 tags are listed before a publish and 5 after it,
// until that commit's own retention. A kill only stops a removal, never adds a tag. (Before
// Begin applied retention, two trials in a row killed between publish and retention left 6:
// the bound depended on chance, and the test failed once, trial 6 of seed 20261124 under ASan.)
TEST(CheckpointWorld, RankKilledAtRandomPointsNeverTearsACheckpoint) {
  const int trials = std::getenv("SHOAL_CKPT_TRIALS") ? std::atoi(std::getenv("SHOAL_CKPT_TRIALS")) : 20;
  const unsigned seed = std::getenv("SHOAL_CKPT_SEED") ? std::atoi(std::getenv("SHOAL_CKPT_SEED")) : 20261124;
  std::mt19937 rng(seed);
  TempDir dir;
  auto members = Members(dir, 3);
  // The kill window follows this machine's pace: a first save job runs until its first commit
  // returns (rank 0's committed-1 marker) and is killed then; trials kill at 150 ms plus up to
  // three times that (at least 900 ms). A fixed window let an ASan build on a busy 2-core
  // machine, which needs over a second to open and commit, never commit in 20 trials, so the
  // test tested nothing (and its last check failed).
  int window_ms = 900;
  {
    ClearOutcomeMarkers(dir);
    Job first(dir);
    const auto t0 = std::chrono::steady_clock::now();
    first.Start(members, {"save", "1", "0", "0", "4"});
    while (MaxMarker(dir) < 1 && std::chrono::steady_clock::now() - t0 < std::chrono::minutes(2)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const auto first_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - t0).count();
    ASSERT_GE(MaxMarker(dir), 1) << "no commit within 2 minutes of the first save job";
    for (auto& p : first.procs()) ::kill(p.pid, SIGKILL);
    (void)first.WaitAll();
    window_ms = std::max(900, 3 * static_cast<int>(first_ms));
    std::printf("first commit after %lld ms: kills within %d ms of a job's start\n",
                static_cast<long long>(first_ms), 150 + window_ms);
  }
  int latest = 0, advanced = 0, unknown = 0;
  for (int trial = 0; trial < trials; ++trial) {
    const bool async = trial % 2 == 1;
    const int victim = static_cast<int>(rng() % 3);
    const int delay_ms = 150 + static_cast<int>(rng() % static_cast<unsigned>(window_ms));
    ClearOutcomeMarkers(dir);
    Job save(dir);
    save.Start(members, {"save", "1", "0", async ? "1" : "0", "4"});
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(save.procs()[victim].pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 20));
    for (auto& p : save.procs()) ::kill(p.pid, SIGKILL);
    auto killed = save.WaitAll();
    // The victim was still running when killed; the others were killed too or stopped on their
    // own because a peer died (both are fine: only what is on disk matters).
    ASSERT_EQ(killed[victim].code, 128 + SIGKILL)
        << "trial " << trial << ": rank " << victim << " ended before the kill:\n" << killed[victim].err;

    std::vector<Member> restart = members;
    if (trial % 2 == 0) std::rotate(restart.begin(), restart.begin() + 1, restart.end());
    Job verify(dir);
    verify.Start(restart, {"verify", "1"});
    auto res = verify.WaitAll();
    ExpectAllOk(res);
    Seen s = Verified(res);
    // Retention runs after the publish: a kill in between leaves one extra (complete) tag,
    // which the next Begin's retention removes before anything else is published.
    ASSERT_GE(s.tags, std::min(s.latest, 4)) << "trial " << trial << "\n" << res[0].out;
    ASSERT_LE(s.tags, std::min(s.latest, 5)) << "trial " << trial << "\n" << res[0].out;
    // A kill before the first commit of all leaves no tag: no latest, no first (0 each).
    if (s.tags == 0) {
      ASSERT_EQ(s.latest, 0) << "trial " << trial << ": latest names a tag not listed\n" << res[0].out;
    } else {
      ASSERT_EQ(s.latest - s.first + 1, s.tags) << "trial " << trial << ": a gap in the tags\n"
                                                << res[0].out;
    }
    ASSERT_GE(s.latest, latest) << "trial " << trial << ": latest went back";
    ASSERT_GE(s.latest, MaxMarker(dir)) << "trial " << trial << ": a commit that returned OK is lost";
    ExpectExactOutcomes(dir, s.latest, "trial " + std::to_string(trial));
    unknown += static_cast<int>(Markers(dir, "unknown-").size());
    if (s.latest > latest) advanced++;
    latest = s.latest;
    std::printf("trial %d (seed %u, %s, kill rank %d after %d ms): %d committed tags\n", trial,
                seed, async ? "async" : "sync", victim, delay_ms, s.tags);
  }
  std::printf("%d trials, invariant held in all; latest advanced in %d, %d tags committed, "
              "%d commit outcomes unknown to a rank\n",
              trials, advanced, latest, unknown);
  EXPECT_GT(latest, 0) << "no trial ever committed: the kill windows are too short to test much";
}

// Runs `save` with DIE "victim:point" (ckpt_member kills itself there), waits for the victim's
// death, then kills the rest (as a launcher does: they would wait for it in a collective until
// the deadline), once each of `wait_ranks` wrote its outcome marker for `step` (bounded: 2
// minutes). Returns the victim's exit code.
int SaveAndDie(const TempDir& dir, const std::vector<Member>& members, int victim,
               const std::string& point, const std::string& keep,
               const std::vector<int>& wait_ranks = {}, int step = 0) {
  ClearOutcomeMarkers(dir);
  Job save(dir);
  save.Start(members, {"save", "1", "1", "0", keep, std::to_string(victim) + ":" + point});
  const int code = testing::Wait(save.procs()[victim]);
  save.procs()[victim].pid = -1;
  for (int wait_rank : wait_ranks) {
    const std::string r = "-r" + std::to_string(wait_rank), n = std::to_string(step);
    for (int i = 0; i < 1200; ++i) {
      if (HasMarker(dir, "ok-" + n + r) || HasMarker(dir, "failed-" + n + r) ||
          HasMarker(dir, "unknown-" + n + r)) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  for (auto& p : save.procs()) {
    if (p.pid > 0) ::kill(p.pid, SIGKILL);
  }
  for (auto& p : save.procs()) {
    if (p.pid > 0) testing::Wait(p);
  }
  return code;
}

Seen VerifyAll(const TempDir& dir, const std::vector<Member>& members) {
  Job verify(dir);
  verify.Start(members, {"verify", "1"});
  auto res = verify.WaitAll();
  ExpectAllOk(res);
  Seen s = Verified(res);
  EXPECT_EQ(s.latest - s.first + 1, s.tags) << "a gap in the tags\n" << res[0].out;
  return s;
}

// Rank 0 killed between publish and retention in two runs in a row (the sequence that once
// listed 6 tags under keep-last 4): each run's Begin applies retention first, so a run's
// publish finds 4 tags and a kill leaves 5, never 6. Deterministic (the kill is at the point).
TEST(CheckpointWorld, KilledBeforeRetentionTwiceInARowListsAtMostKeepLastPlusOne) {
  TempDir dir;
  auto members = Members(dir, 3);
  {
    Job save(dir);
    save.Start(members, {"save", "1", "5", "0", "4"});
    ExpectAllOk(save.WaitAll());
  }
  for (int step = 6; step <= 7; ++step) {
    ASSERT_EQ(SaveAndDie(dir, members, 0, "published", "4"), 128 + SIGKILL) << "step-" << step;
    Seen s = VerifyAll(dir, members);
    EXPECT_EQ(s.latest, step);
    EXPECT_EQ(s.tags, 5) << "step-" << step << ": keep-last 4 plus the one published before "
                         << "its retention";
    ExpectExactOutcomes(dir, s.latest, "step-" + std::to_string(step));
  }
  // A run that completes brings it back to 4.
  {
    Job save(dir);
    save.Start(members, {"save", "1", "1", "0", "4"});
    ExpectAllOk(save.WaitAll());
  }
  Seen s = VerifyAll(dir, members);
  EXPECT_EQ(s.tags, 4);
  EXPECT_EQ(s.latest, 8);
}

// A rank dies after rank 0 published but before it heard the verdict (rank 0's verdict
// all-gather then fails): rank 0's Commit returns OK, since the tag is committed (it used to
// return Unavailable), and the tag is Latest for the next job.
TEST(CheckpointWorld, CommitIsOkWhenItsTagIsCommittedThoughAPeerDiedBeforeTheVerdict) {
  TempDir dir;
  auto members = Members(dir, 3);
  {
    Job save(dir);
    save.Start(members, {"save", "1", "2", "0", "0"});
    ExpectAllOk(save.WaitAll());
  }
  ASSERT_EQ(SaveAndDie(dir, members, 1, "verdict", "0", {0}, 3), 128 + SIGKILL);
  EXPECT_TRUE(HasMarker(dir, "ok-3-r0")) << "rank 0's Commit of the published step-3 did not "
                                            "return OK";
  EXPECT_FALSE(HasMarker(dir, "failed-3-r2")) << "rank 2 was told step-3 failed";
  Seen s = VerifyAll(dir, members);
  EXPECT_EQ(s.latest, 3);
  EXPECT_EQ(s.tags, 3);
  ExpectExactOutcomes(dir, s.latest, "step-3");
}

// Rank 0 killed inside retention, after it removed the old manifests and before any of their
// blobs: every listed tag is whole (verify loads them all), the removed tag is not listed, and
// the next Begin collects its data.
TEST(CheckpointWorld, RetentionKilledBetweenManifestsAndBlobsLeavesNoTornTag) {
  TempDir dir;
  auto members = Members(dir, 3);
  {
    Job save(dir);
    save.Start(members, {"save", "1", "2", "0", "0"});
    ExpectAllOk(save.WaitAll());
  }
  // keep-last 2: step-3's Begin finds 2 tags (nothing to retain); its commit's retention
  // unpublishes step-1 and dies before removing step-1's blobs.
  ASSERT_EQ(SaveAndDie(dir, members, 0, "unpublished", "2"), 128 + SIGKILL);
  Seen s = VerifyAll(dir, members);
  EXPECT_EQ(s.latest, 3);
  EXPECT_EQ(s.tags, 2);
  EXPECT_EQ(s.first, 2);
}

// Saved by 4 ranks with replication 2; restored by 5 ranks (one new store); one node lost,
// declared lost, and the 4 left (permuted) repair; a second node lost: the last 3 still restore
// every tag, which they could not without the repair.
TEST(CheckpointWorld, RestoreWithMoreAndFewerRanksAndRepairAfterNodeLoss) {
  TempDir dir;
  auto members = Members(dir, 5);
  {
    Job save(dir);
    save.Start({members[0], members[1], members[2], members[3]}, {"save", "2", "2"});
    ExpectAllOk(save.WaitAll());
  }
  {
    Job more(dir);
    more.Start({members[4], members[2], members[0], members[3], members[1]}, {"verify", "2"});
    auto res = more.WaitAll();
    ExpectAllOk(res);
    EXPECT_EQ(Verified(res).tags, 2) << res[0].out;
  }
  const std::string lost3 = testing::StoreMemberId(members[3].store);
  std::filesystem::remove_all(members[3].store);
  {
    testing::ScopedEnv lost("SHOAL_LOST_MEMBERS", lost3);
    Job fewer(dir);
    fewer.Start({members[2], members[4], members[0], members[1]}, {"repair", "2"});
    auto res = fewer.WaitAll();
    ExpectAllOk(res);
    EXPECT_EQ(Verified(res).tags, 2) << res[0].out;
    EXPECT_NE(res[0].out.find("repair: "), std::string::npos);
    std::printf("%s", res[0].out.c_str());
  }
  const std::string lost2 = testing::StoreMemberId(members[2].store);
  std::filesystem::remove_all(members[2].store);
  testing::ScopedEnv lost("SHOAL_LOST_MEMBERS", lost2);
  Job last(dir);
  last.Start({members[1], members[4], members[0]}, {"verify", "2"});
  auto res = last.WaitAll();
  ExpectAllOk(res);
  EXPECT_EQ(Verified(res).tags, 2) << res[0].out;
}

// keep_last 2 over 5 saves: two tags listed, and on every member's disk only their chunks.
TEST(CheckpointWorld, RetentionDeletesOldTagsOnEveryMember) {
  TempDir dir;
  auto members = Members(dir, 3);
  {
    Job save(dir);
    save.Start(members, {"save", "1", "5", "0", "2"});
    ExpectAllOk(save.WaitAll());
  }
  {
    Job verify(dir);
    verify.Start(members, {"verify", "1"});
    auto res = verify.WaitAll();
    ExpectAllOk(res);
    Seen s = Verified(res);
    EXPECT_EQ(s.tags, 2) << res[0].out;
    EXPECT_EQ(s.latest, 5);
  }
  // Each member's local store (the chunk holder's objects, engine/store_layout.h): its chunk
  // objects ("c/<uid>") are exactly the striped blobs of the kept tags it wrote (local-first
  // placement, replication 1).
  for (int r = 0; r < 3; ++r) {
    Options o;
    o.store_dir = members[r].store;
    auto e = engine::ObjectStore::Open(o);
    ASSERT_OK(e);
    uint64_t held = 0;
    auto page = (*e)->ListChunkObjects("", 1000);
    ASSERT_OK(page);
    ASSERT_FALSE(page->truncated);
    for (const DirEntry& d : page->entries) held += d.size;
    uint64_t want = 0;
    for (int step : {4, 5}) {
      for (const char* kind : {"model", "optim"}) {
        std::string tag = "step-" + std::to_string(step);
        uint64_t size = testing::SizeOf(tag, "r" + std::to_string(r) + "/" + kind);
        if (size > 2048) want += size;
      }
    }
    EXPECT_EQ(held, want) << "member " << r << " keeps chunks of removed tags";
  }
}

// Two jobs with their own tokens and stores, at the same time, the same root and tag names:
// each sees only its own tags.
TEST(CheckpointWorld, TwoJobsNeverSeeEachOthersTags) {
  TempDir dir;
  auto a = Members(dir, 3, "a-store-");
  auto b = Members(dir, 2, "b-store-");
  Job ja(dir, "token-of-job-a"), jb(dir, "token-of-job-b");
  ja.Start(a, {"save", "1", "2"});
  jb.Start(b, {"save", "1", "3"});
  ExpectAllOk(ja.WaitAll());
  ExpectAllOk(jb.WaitAll());
  Job va(dir, "token-of-job-a"), vb(dir, "token-of-job-b");
  va.Start(a, {"verify", "1"});
  vb.Start(b, {"verify", "1"});
  auto ra = va.WaitAll(), rb = vb.WaitAll();
  ExpectAllOk(ra);
  ExpectAllOk(rb);
  Seen sa = Verified(ra), sb = Verified(rb);
  EXPECT_EQ(sa.tags, 2);
  EXPECT_EQ(sa.worlds, " 3") << "job a lists tags saved by another job";
  EXPECT_EQ(sb.tags, 3);
  EXPECT_EQ(sb.worlds, " 2") << "job b lists tags saved by another job";
}

}  // namespace
}  // namespace shoal
