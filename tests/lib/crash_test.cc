// A writer killed with SIGKILL at a random instant (real fork + kill): no partial object is ever
// visible, every object it reported sealed reads back bit-exact, and recovery returns the space
// of unsealed writes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "shoal/engine.h"
#include "tests/test_util.h"

namespace shoal {
namespace {

using testing::Pattern;
using testing::TempDir;

constexpr uint32_t kChunk = 64u << 10;

Options StoreOptions(const std::string& dir) {
  Options o;
  o.store_dir = dir;
  o.chunk_size = kChunk;
  o.queue_depth = 8;
  o.segment_size = 64ull << 20;
  return o;
}

uint64_t SizeOf(int i) { return static_cast<uint64_t>((i * 7919) % (5 * kChunk)) + (i % 3); }

// The child: seals objects forever, reporting each on `fd`, with unsealed writes in between.
[[noreturn]] void Writer(const std::string& dir, int fd) {
  auto e = Engine::Open(StoreOptions(dir));
  if (!e.ok()) _exit(3);
  Engine& engine = **e;
  for (int i = 0;; ++i) {
    // An object that will never be sealed.
    std::string partial = "crash/partial-" + std::to_string(i);
    if (engine.Create(partial).ok()) {
      (void)engine.Write(partial, 0, Pattern(3 * kChunk, ~i));
    }
    std::string p = "crash/sealed-" + std::to_string(i);
    if (!engine.Put(p, Pattern(SizeOf(i), i)).ok()) _exit(4);
    if (::write(fd, &i, sizeof(i)) != sizeof(i)) _exit(5);
  }
}

// Forks `child` (which writes an int to `fd` per step it finished, forever), waits for `want`
// steps, kills it with SIGKILL `delay` later, and returns every step it reported.
// *killed: whether it died of the signal (not of an error of its own).
template <typename Child>
std::set<int> KillDuringSteps(Child child, int want, std::chrono::microseconds delay,
                              bool* killed) {
  int pipefd[2];
  *killed = false;
  if (::pipe(pipefd) != 0) return {};
  pid_t pid = ::fork();
  if (pid < 0) return {};
  if (pid == 0) {
    ::close(pipefd[0]);
    child(pipefd[1]);
    _exit(0);
  }
  ::close(pipefd[1]);
  std::set<int> reported;
  int i = 0;
  while (static_cast<int>(reported.size()) < want && ::read(pipefd[0], &i, sizeof(i)) == sizeof(i)) {
    reported.insert(i);
  }
  std::this_thread::sleep_for(delay);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  while (::read(pipefd[0], &i, sizeof(i)) == sizeof(i)) reported.insert(i);
  ::close(pipefd[0]);
  *killed = WIFSIGNALED(status);
  return reported;
}

TEST(Crash, SigkillDuringWritesLeavesOnlySealedObjects) {
  std::mt19937 rng(20261124);
  const int kTrials = 20;
  for (int trial = 0; trial < kTrials; ++trial) {
    TempDir dir;
    // Wait for a random number of seals, then kill at a random instant after it.
    const int want = 2 + static_cast<int>(rng() % 20);
    bool killed = false;
    std::set<int> reported =
        KillDuringSteps([&](int fd) { Writer(dir.Sub("store"), fd); }, want,
                        std::chrono::microseconds(rng() % 20000), &killed);
    ASSERT_TRUE(killed) << "the writer exited early";
    ASSERT_FALSE(reported.empty());
    ASSERT_EQ(static_cast<int>(reported.size()), *reported.rbegin() + 1);

    auto e = Engine::Open(StoreOptions(dir.Sub("store")));
    ASSERT_OK(e) << "trial " << trial;
    Engine& engine = **e;
    // Every reported object is intact.
    for (int r : reported) {
      std::string p = "crash/sealed-" + std::to_string(r);
      auto want_data = Pattern(SizeOf(r), r);
      std::vector<std::byte> got(want_data.size());
      auto n = engine.Read(p, 0, got);
      ASSERT_OK(n) << p << " trial " << trial;
      EXPECT_EQ(got, want_data) << p;
    }
    // Everything visible is sealed and whole; no partial object is visible.
    uint64_t live = 0;
    auto page = engine.List("crash", {.start_after = "", .limit = 100000});
    ASSERT_OK(page);
    for (const DirEntry& d : page->entries) {
      ASSERT_EQ(d.name.rfind("sealed-", 0), 0u) << "visible: " << d.name;
      int k = std::stoi(d.name.substr(7));
      EXPECT_LE(k, *reported.rbegin() + 1) << d.name;  // at most one sealed but unreported
      EXPECT_EQ(d.size, SizeOf(k));
      std::vector<std::byte> got(d.size);
      EXPECT_OK(engine.Read("crash/" + d.name, 0, got));
      EXPECT_EQ(got, Pattern(SizeOf(k), k));
      live += d.size > 2048 ? (d.size + 4095) / 4096 * 4096 + kChunk : 0;
    }
    EXPECT_GE(page->entries.size(), reported.size());
    // Recovery returned the unsealed objects' space: what stays allocated is about what lives.
    uint64_t allocated = 0;
    for (auto& f : std::filesystem::directory_iterator(dir.Sub("store/chunks"))) {
      struct stat st {};
      ASSERT_EQ(::stat(f.path().c_str(), &st), 0);
      allocated += static_cast<uint64_t>(st.st_blocks) * 512;
    }
    EXPECT_LE(allocated, live + (1ull << 20)) << "trial " << trial;
    // The store keeps working after recovery.
    ASSERT_OK(engine.Put("crash/after", Pattern(2 * kChunk, 99)));
  }
}

// The child of the batch trials: PutBatch of kBatch objects per batch below "batch/<k>/",
// forever, reporting k once its batch returned.
constexpr int kBatch = 400;
uint64_t BatchObjectSize(int k, int i) { return static_cast<uint64_t>((k * 131 + i * 977) % 9000); }

[[noreturn]] void BatchWriter(const std::string& dir, int fd) {
  auto e = Engine::Open(StoreOptions(dir));
  if (!e.ok()) _exit(3);
  Engine& engine = **e;
  for (int k = 0;; ++k) {
    std::vector<std::vector<std::byte>> data;
    std::vector<PutRequest> reqs;
    data.reserve(kBatch);
    for (int i = 0; i < kBatch; ++i) {
      data.push_back(Pattern(BatchObjectSize(k, i), k * kBatch + i));
      reqs.push_back({"batch/" + std::to_string(k) + "/o" + std::to_string(i), data.back(), {}});
    }
    if (!engine.PutBatch(reqs).ok()) _exit(4);
    for (const PutRequest& r : reqs) {
      if (!r.status.ok()) _exit(5);
    }
    if (::write(fd, &k, sizeof(k)) != sizeof(k)) _exit(6);
  }
}

// kill -9 in the middle of batches: each batch is on disk whole or not at all (a world of one
// commits its bytes and records in one transaction), every batch reported is there bit-exact,
// and the space of a batch cut short is returned.
TEST(Crash, SigkillDuringPutBatchLeavesWholeBatchesOrNone) {
  std::mt19937 rng(20261207);
  const int kTrials = 12;
  int cut_short = 0;  // trials whose last batch was not reported (killed mid-batch)
  for (int trial = 0; trial < kTrials; ++trial) {
    TempDir dir;
    const int want = 1 + static_cast<int>(rng() % 4);
    bool killed = false;
    std::set<int> reported =
        KillDuringSteps([&](int fd) { BatchWriter(dir.Sub("store"), fd); }, want,
                        std::chrono::microseconds(rng() % 30000), &killed);
    ASSERT_TRUE(killed) << "the writer exited early";
    ASSERT_FALSE(reported.empty());

    auto e = Engine::Open(StoreOptions(dir.Sub("store")));
    ASSERT_OK(e) << "trial " << trial;
    Engine& engine = **e;
    auto batches = engine.List("batch", {.start_after = "", .limit = 100000});
    ASSERT_OK(batches);
    std::set<int> present;
    for (const DirEntry& d : batches->entries) {
      const int b = std::stoi(d.name);
      present.insert(b);
      // All of the batch, or (a directory exists only with entries) nothing at all.
      ASSERT_EQ(d.size, static_cast<uint64_t>(kBatch)) << "batch " << b << " trial " << trial;
      auto page = engine.List("batch/" + d.name, {.start_after = "", .limit = 100000});
      ASSERT_OK(page);
      for (const DirEntry& o : page->entries) {
        const int i = std::stoi(o.name.substr(1));
        std::vector<std::byte> got(o.size);
        ASSERT_OK(engine.Read("batch/" + d.name + "/" + o.name, 0, got));
        ASSERT_EQ(got, Pattern(BatchObjectSize(b, i), b * kBatch + i)) << o.name;
      }
    }
    for (int r : reported) EXPECT_EQ(present.count(r), 1u) << "reported batch " << r << " lost";
    const int last = *reported.rbegin();
    EXPECT_LE(*present.rbegin(), last + 1) << "at most one batch durable but unreported";
    if (present.count(last + 1) == 0) ++cut_short;
    ASSERT_OK(engine.Put("batch/after", Pattern(3000, 1)));
  }
  EXPECT_GT(cut_short, 0) << "no trial killed a batch in the middle";
}

}  // namespace
}  // namespace shoal
