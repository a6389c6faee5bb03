// The dataset cache in jobs of real processes (dataset_member_main.cc), each rank with its own
// store and node name: one source read per sample across ranks and threads, and the cache found
// again by jobs of other sizes, after a member's loss.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "tests/process_util.h"
#include "tests/store_util.h"
#include "tests/test_util.h"

namespace shoal {
namespace {

using testing::Process;
using testing::TempDir;

struct Outcome {
  int code;
  std::string out, err;
};

std::vector<Outcome> RunJob(const TempDir& dir, const std::vector<std::string>& stores,
                            const std::string& sync, const std::string& src, int replicas,
                            bool warm) {
  static int run = 0;
  ++run;
  std::filesystem::create_directories(sync);
  const std::string rdzv = dir.Sub("rdzv-" + std::to_string(run));
  std::vector<Process> procs;
  for (size_t r = 0; r < stores.size(); ++r) {
    const std::string id = std::to_string(run) + "-" + std::to_string(r);
    procs.push_back(testing::Spawn(
        SHOAL_DATASET_MEMBER,
        {stores[r], sync, src, std::to_string(replicas), warm ? "1" : "0"},
        dir.Sub("out-" + id), dir.Sub("err-" + id),
        testing::RankEnv(r, stores.size(), "node-" + std::to_string(r), "dataset-token",
                         "file:" + rdzv)));
  }
  std::vector<Outcome> out;
  for (auto& p : procs) {
    int code = testing::Wait(p);
    out.push_back({code, testing::Slurp(p.out), testing::Slurp(p.err)});
  }
  return out;
}

// name -> how many times the job's ranks read it from the source.
std::map<std::string, int> SourceReads(const std::string& sync) {
  std::map<std::string, int> n;
  for (auto& f : std::filesystem::directory_iterator(sync)) {
    if (f.path().filename().string().rfind("source-r", 0) != 0) continue;
    std::istringstream in(testing::Slurp(f.path()));
    for (std::string line; std::getline(in, line);) n[line]++;
  }
  return n;
}

int Lists(const std::string& sync) {
  int n = 0;
  for (auto& f : std::filesystem::directory_iterator(sync)) {
    if (f.path().filename().string().rfind("lists-r", 0) != 0) continue;
    std::istringstream in(testing::Slurp(f.path()));
    for (std::string line; std::getline(in, line);) n++;
  }
  return n;
}

TEST(DatasetWorld, EverySampleComesFromTheSourceOnceAndLaterJobsOfOtherSizesFindTheCache) {
  TempDir dir;
  const std::string src = dir.Sub("src");
  std::vector<std::string> names;
  for (int i = 0; i < 48; ++i) {
    const std::string name = fmt::format("d{}/s{:02}.bin", i % 5, i);
    const auto bytes = testing::Pattern(1 + (static_cast<size_t>(i) * 7919) % 300000, i);
    std::filesystem::create_directories(std::filesystem::path(src) / fmt::format("d{}", i % 5));
    std::ofstream(src + "/" + name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    names.push_back(name);
  }
  std::vector<std::string> stores;
  for (int r = 0; r < 3; ++r) stores.push_back(dir.Sub("store-" + std::to_string(r)));

  // A job of 3: every thread of every rank reads every sample at once.
  auto res = RunJob(dir, stores, dir.Sub("sync-1"), src, 2, false);
  for (size_t r = 0; r < res.size(); ++r) ASSERT_EQ(res[r].code, 0) << "rank " << r << ":\n" << res[r].err;
  auto reads = SourceReads(dir.Sub("sync-1"));
  for (const std::string& n : names) EXPECT_EQ(reads[n], 1) << n << " read from the source";
  EXPECT_EQ(reads.size(), names.size());
  EXPECT_EQ(Lists(dir.Sub("sync-1")), 3) << "each rank lists its part once";

  // A job of 2 after losing the third member (its store deleted, declared lost): the index is
  // found (the world's replica count) and nothing is listed; the samples the lost member held
  // (one copy each: DatasetOptions::replicas) are read from the source again, once each, and
  // none is reported lost.
  const std::string lost = testing::StoreMemberId(stores[2]);
  std::filesystem::remove_all(stores[2]);
  {
    testing::ScopedEnv env("SHOAL_LOST_MEMBERS", lost);
    res = RunJob(dir, {stores[0], stores[1]}, dir.Sub("sync-2"), src, 2, false);
  }
  for (size_t r = 0; r < res.size(); ++r) ASSERT_EQ(res[r].code, 0) << "rank " << r << ":\n" << res[r].err;
  reads = SourceReads(dir.Sub("sync-2"));
  for (auto& [n, count] : reads) EXPECT_EQ(count, 1) << n << " read again from the source";
  EXPECT_GT(reads.size(), 0u) << "the lost member held no sample";
  EXPECT_LT(reads.size(), names.size()) << "every sample read again";
  EXPECT_EQ(Lists(dir.Sub("sync-2")), 0);

  // A job of 4 (two new, empty stores) that warms first: nothing to load.
  res = RunJob(dir, {stores[0], stores[1], dir.Sub("store-3"), dir.Sub("store-4")},
               dir.Sub("sync-3"), src, 2, true);
  for (size_t r = 0; r < res.size(); ++r) ASSERT_EQ(res[r].code, 0) << "rank " << r << ":\n" << res[r].err;
  EXPECT_TRUE(SourceReads(dir.Sub("sync-3")).empty());
  EXPECT_EQ(Lists(dir.Sub("sync-3")), 0);
}

TEST(DatasetWorld, AWarmUpLoadsEachSampleOnceSpreadOverTheRanks) {
  TempDir dir;
  const std::string src = dir.Sub("src");
  std::filesystem::create_directories(src);
  for (int i = 0; i < 40; ++i) {
    const auto bytes = testing::Pattern(1000 + static_cast<size_t>(i) * 997, i);
    std::ofstream(fmt::format("{}/s{:02}.bin", src, i), std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  std::vector<std::string> stores{dir.Sub("a"), dir.Sub("b"), dir.Sub("c")};
  auto res = RunJob(dir, stores, dir.Sub("sync"), src, 1, true);
  for (size_t r = 0; r < res.size(); ++r) ASSERT_EQ(res[r].code, 0) << "rank " << r << ":\n" << res[r].err;
  auto reads = SourceReads(dir.Sub("sync"));
  EXPECT_EQ(reads.size(), 40u);
  for (auto& [name, n] : reads) EXPECT_EQ(n, 1) << name;
  // The warm-up split the loads: every rank read some (owners by a hash of the name).
  for (int r = 0; r < 3; ++r) {
    EXPECT_FALSE(testing::Slurp(dir.Sub(fmt::format("sync/source-r{}", r))).empty()) << "rank " << r;
  }
  // And the reads after it (4 threads x 40 samples per rank) were all hits; the warm-up's
  // loads are the rank's misses.
  for (size_t r = 0; r < res.size(); ++r) {
    EXPECT_EQ(res[r].out.rfind("hits 160 misses ", 0), 0u) << res[r].out;
  }
}

}  // namespace
}  // namespace shoal
