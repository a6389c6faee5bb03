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

TEST(Crash, SigkillDuringWritesLeavesOnlySealedObjects) {
  std::mt19937 rng(20261124);
  const int kTrials = 20;
  for (int trial = 0; trial < kTrials; ++trial) {
    TempDir dir;
    int pipefd[2];
    ASSERT_EQ(::pipe(pipefd), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(pipefd[0]);
      Writer(dir.Sub("store"), pipefd[1]);
    }
    ::close(pipefd[1]);
    // Wait for a random number of seals, then kill at a random instant after it.
    const int want = 2 + static_cast<int>(rng() % 20);
    std::set<int> reported;
    int i = 0;
    while (static_cast<int>(reported.size()) < want && ::read(pipefd[0], &i, sizeof(i)) == sizeof(i)) {
      reported.insert(i);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 20000));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    while (::read(pipefd[0], &i, sizeof(i)) == sizeof(i)) reported.insert(i);
    ::close(pipefd[0]);
    ASSERT_TRUE(WIFSIGNALED(status)) << "writer exited early with " << WEXITSTATUS(status);
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

}  // namespace
}  // namespace shoal
