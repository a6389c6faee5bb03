// `shoal run` (bindings/cli/launcher.h) as users run it: the real binary starting real
// processes — the launcher variables, prefixed output, a failing rank stopping the others,
// forwarded signals, a killed launcher leaving no rank, and a clean 4-rank world whose stderr
// at the default log level is empty, on its first run and on a reopen.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <sstream>
#include <thread>

#include "tests/process_util.h"
#include "tests/test_util.h"

namespace shoal::testing {
namespace {

using Clock = std::chrono::steady_clock;

class LauncherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           fmt::format("shoal-launcher-{}-{}", ::getpid(), counter_++);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Process Run(std::vector<std::string> args, std::vector<std::pair<std::string, std::string>> env = {}) {
    args.insert(args.begin(), "run");
    n_++;
    return Spawn(SHOAL_CLI, args, Path(fmt::format("out{}", n_)), Path(fmt::format("err{}", n_)),
                 env);
  }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
  int n_ = 0;
  static inline int counter_ = 0;
};

bool WaitFor(const std::function<bool()>& done, std::chrono::seconds limit) {
  const auto until = Clock::now() + limit;
  while (Clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

TEST_F(LauncherTest, SetsTheLauncherVariablesAndPrefixesEveryRanksLines) {
  Process p = Run({"-n", "3", "--nodes", "2", "--node-prefix", "h-", "--", "sh", "-c",
                   "echo \"$SHOAL_RANK $RANK $SHOAL_LOCAL_RANK $LOCAL_WORLD_SIZE $SHOAL_NODE "
                   "${#SHOAL_TOKEN} $SHOAL_RENDEZVOUS $MASTER_ADDR\"; printf partial >&2"});
  ASSERT_EQ(Wait(p), 0) << Slurp(p.err);
  const std::string out = Slurp(p.out), err = Slurp(p.err);
  // Ranks dealt to 2 nodes in contiguous blocks of 2: h-0 runs ranks 0 and 1, h-1 rank 2.
  EXPECT_NE(out.find("[rank 0] 0 0 0 2 h-0 32 tcp:127.0.0.1:"), std::string::npos) << out;
  EXPECT_NE(out.find("[rank 1] 1 1 1 2 h-0 32 tcp:127.0.0.1:"), std::string::npos) << out;
  EXPECT_NE(out.find("[rank 2] 2 2 0 1 h-1 32 tcp:127.0.0.1:"), std::string::npos) << out;
  // A last line without its newline is forwarded whole at the end, prefixed.
  for (int r = 0; r < 3; ++r) {
    EXPECT_NE(err.find(fmt::format("[rank {}] partial\n", r)), std::string::npos) << err;
  }
  // Every start has its own token: the three ranks of one start share one.
  Process q = Run({"-n", "2", "--no-prefix", "--", "sh", "-c", "echo $SHOAL_TOKEN"});
  ASSERT_EQ(Wait(q), 0);
  const std::string tokens = Slurp(q.out);
  ASSERT_EQ(tokens.size(), 2 * 33u) << tokens;
  EXPECT_EQ(tokens.substr(0, 33), tokens.substr(33));
  Process q2 = Run({"-n", "1", "--no-prefix", "--", "sh", "-c", "echo $SHOAL_TOKEN"});
  ASSERT_EQ(Wait(q2), 0);
  EXPECT_NE(Slurp(q2.out), tokens.substr(0, 33));
}

TEST_F(LauncherTest, AFailingRankStopsTheOthersAndItsCodeIsTheResult) {
  const auto start = Clock::now();
  Process p = Run({"-n", "3", "--", "sh", "-c",
                   "if [ \"$SHOAL_RANK\" = 1 ]; then exit 3; fi; exec sleep 120"});
  EXPECT_EQ(Wait(p), 3) << Slurp(p.err);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(60));
  EXPECT_NE(Slurp(p.err).find("rank 1 exited with 3; stopping the others"), std::string::npos);
  // A rank killed by a signal counts as 128 + its number; one that ignores SIGTERM is killed
  // after the grace period.
  Process q = Run({"-n", "2", "--grace", "1", "--", "sh", "-c",
                   "if [ \"$SHOAL_RANK\" = 0 ]; then kill -KILL $$; fi; trap '' TERM; "
                   "while true; do sleep 1; done"});
  EXPECT_EQ(Wait(q), 128 + SIGKILL) << Slurp(q.err);
}

TEST_F(LauncherTest, ForwardsSignalsToEveryRank) {
  Process p = Run({"-n", "2", "--", "sh", "-c",
                   "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done"});
  ASSERT_TRUE(WaitFor([&] { return Count(Slurp(p.out), "ready") == 2; }, std::chrono::seconds(60)));
  ::kill(p.pid, SIGTERM);
  EXPECT_EQ(Wait(p), 7);
  EXPECT_EQ(Count(Slurp(p.out), "got-term"), 2u) << Slurp(p.out);
}

TEST_F(LauncherTest, AKilledLauncherLeavesNoRankBehind) {
  Process p = Run({"-n", "2", "--no-prefix", "--", "sh", "-c", "echo $$; exec sleep 120"});
  std::vector<pid_t> ranks;
  ASSERT_TRUE(WaitFor([&] { return Count(Slurp(p.out), "\n") == 2; }, std::chrono::seconds(60)));
  std::istringstream in(Slurp(p.out));
  for (pid_t pid; in >> pid;) ranks.push_back(pid);
  ASSERT_EQ(ranks.size(), 2u);
  ::kill(p.pid, SIGKILL);
  Wait(p);
  for (pid_t r : ranks) {
    EXPECT_TRUE(WaitFor([&] { return ::kill(r, 0) != 0; }, std::chrono::seconds(10)))
        << "rank process " << r << " outlived its launcher";
  }
}

TEST_F(LauncherTest, AProgramThatCannotStartIsReported) {
  Process p = Run({"-n", "2", "--", Path("no-such-program")});
  EXPECT_EQ(Wait(p), 127);
  EXPECT_NE(Slurp(p.err).find("cannot start"), std::string::npos) << Slurp(p.err);
  Process q = Run({"-n", "0", "--", "true"});
  EXPECT_NE(Wait(q), 0);
  Process r = Run({"-n", "2"});
  EXPECT_NE(Wait(r), 0);
  EXPECT_NE(Slurp(r.err).find("no program"), std::string::npos) << Slurp(r.err);
}

// A clean multi-rank run prints nothing at the default log level: no "member N is
// unreachable" when ranks close one after another, no recovery message on the next Open.
TEST_F(LauncherTest, ACleanFourRankWorldPrintsNothingOnStderrAtTheDefaultLevel) {
  const std::string store = Path("stores");
  for (const char* run : {"first", "reopen"}) {
    SCOPED_TRACE(run);
    Process p = Run({"-n", "4", "--store", store, "--", SHOAL_WORLD_JOB},
                    {{"SHOAL_LOG", ""}, {"JOB_RUN", run}});
    ASSERT_EQ(Wait(p), 0) << Slurp(p.err);
    EXPECT_EQ(Slurp(p.err), "");
    EXPECT_EQ(Count(Slurp(p.out), "of 4 read 32 objects"), 4u) << Slurp(p.out);
    EXPECT_FALSE(std::filesystem::exists(store + "/shoal-job"));
  }
  // A rank that fails mid-job: the launcher stops the others and says so; its code wins.
  Process p = Run({"-n", "4", "--store", store, "--", SHOAL_WORLD_JOB},
                  {{"JOB_RUN", "fail"}, {"JOB_EXIT_RANK", "2"}, {"JOB_EXIT_CODE", "5"}});
  EXPECT_EQ(Wait(p), 5) << Slurp(p.err);
}

}  // namespace
}  // namespace shoal::testing
