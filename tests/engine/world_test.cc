// Worlds of real processes on loopback, each rank with its own store directory and node name,
// joined through the same rendezvous users get (file or TCP hosted by rank 0).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sstream>

#include "tests/process_util.h"
#include "tests/test_util.h"

namespace shoal::engine {
namespace {

using shoal::testing::FreePort;
using shoal::testing::TempDir;

using shoal::testing::Process;

Process Spawn(const TempDir& dir, int id, std::vector<std::string> args) {
  return shoal::testing::Spawn(SHOAL_WORLD_MEMBER, args, dir.Sub("out-" + std::to_string(id)),
                               dir.Sub("err-" + std::to_string(id)));
}

struct Outcome {
  int code;
  std::string out;  // stdout: the roster
  std::string err;  // stderr: errors and log lines
};

// Runs a world; store_of[r] is rank r's store.
std::vector<Outcome> RunWorld(const TempDir& dir,
                                                  const std::vector<std::string>& store_of,
                                                  const std::string& rdzv,
                                                  std::vector<std::string> tokens = {},
                                                  std::string timeout_ms = "30000") {
  const size_t n = store_of.size();
  std::vector<Process> procs;
  static int run = 0;
  ++run;
  for (size_t r = 0; r < n; ++r) {
    std::string token = tokens.empty() ? "job-token" : tokens[r];
    procs.push_back(Spawn(dir, run * 100 + static_cast<int>(r),
                          {store_of[r], std::to_string(r), std::to_string(n),
                           "node-" + std::to_string(r), token, rdzv, timeout_ms}));
  }
  std::vector<Outcome> out;
  for (auto& p : procs) {
    int code = shoal::testing::Wait(p);
    out.push_back({code, shoal::testing::Slurp(p.out), shoal::testing::Slurp(p.err)});
  }
  return out;
}

TEST(World, FourRanksJoinThroughFileRendezvous) {
  TempDir dir;
  std::vector<std::string> stores;
  for (int r = 0; r < 4; ++r) stores.push_back(dir.Sub("store-" + std::to_string(r)));
  auto res = RunWorld(dir, stores, "file:" + dir.Sub("rdzv"));
  for (size_t r = 0; r < res.size(); ++r) {
    ASSERT_EQ(res[r].code, 0) << "rank " << r << ": " << res[r].err;
    EXPECT_EQ(res[r].out, res[0].out);  // the same roster everywhere
  }
  EXPECT_NE(res[0].out.find("3:node-3:"), std::string::npos) << res[0].out;
}

TEST(World, FourRanksJoinThroughTcpHostedByRankZero) {
  TempDir dir;
  std::vector<std::string> stores;
  for (int r = 0; r < 4; ++r) stores.push_back(dir.Sub("store-" + std::to_string(r)));
  auto res = RunWorld(dir, stores, "tcp:127.0.0.1:" + std::to_string(FreePort()));
  for (size_t r = 0; r < res.size(); ++r) {
    ASSERT_EQ(res[r].code, 0) << "rank " << r << ": " << res[r].err;
    EXPECT_EQ(res[r].out, res[0].out);
  }
}

TEST(World, MemberIdentityFollowsTheStoreNotTheRank) {
  TempDir dir;
  std::vector<std::string> stores;
  for (int r = 0; r < 3; ++r) stores.push_back(dir.Sub("store-" + std::to_string(r)));
  auto first = RunWorld(dir, stores, "file:" + dir.Sub("rdzv-1"));
  ASSERT_EQ(first[0].code, 0) << first[0].err;
  // Restart with ranks permuted over the same store directories.
  std::vector<std::string> permuted = {stores[2], stores[0], stores[1]};
  auto second = RunWorld(dir, permuted, "file:" + dir.Sub("rdzv-2"));
  ASSERT_EQ(second[0].code, 0) << second[0].err;
  auto id_of = [](const std::string& roster, int rank) {
    std::istringstream in(roster);
    std::string entry;
    for (int i = 0; i <= rank; ++i) in >> entry;
    return entry.substr(entry.rfind(':') + 1);
  };
  EXPECT_EQ(id_of(second[0].out, 0), id_of(first[0].out, 2));
  EXPECT_EQ(id_of(second[0].out, 1), id_of(first[0].out, 0));
  EXPECT_EQ(id_of(second[0].out, 2), id_of(first[0].out, 1));
}

TEST(World, WrongTokenIsRefusedOnBothSides) {
  TempDir dir;
  std::vector<std::string> stores;
  for (int r = 0; r < 3; ++r) stores.push_back(dir.Sub("store-" + std::to_string(r)));
  auto res = RunWorld(dir, stores, "tcp:127.0.0.1:" + std::to_string(FreePort()),
                      {"job-token", "job-token", "stolen-token"}, "3000");
  EXPECT_EQ(res[2].code, 3) << res[2].err;  // PermissionDenied at the intruder
  EXPECT_NE(res[2].err.find("does not hold this job token"), std::string::npos) << res[2].err;
  EXPECT_EQ(res[0].code, 4) << res[0].err;  // rank 0 refused it and timed out waiting
  EXPECT_NE(res[0].err.find("refused 127.0.0.1"), std::string::npos) << res[0].err;
  EXPECT_NE(res[0].err.find("job token"), std::string::npos) << res[0].err;
  EXPECT_NE(res[0].err.find("ranks 2 never joined"), std::string::npos) << res[0].err;
  EXPECT_EQ(res[1].code, 4) << res[1].err;
}

TEST(World, TwoRanksOnOneStoreAreRefused) {
  TempDir dir;
  auto res = RunWorld(dir, {dir.Sub("shared"), dir.Sub("shared")}, "file:" + dir.Sub("rdzv"),
                      {}, "3000");
  // One of them cannot lock the store; the other cannot complete the world.
  int denied = (res[0].code == 3) + (res[1].code == 3);
  EXPECT_EQ(denied, 1) << res[0].err << res[1].err;
}

}  // namespace
}  // namespace shoal::engine
