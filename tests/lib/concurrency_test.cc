// Many threads using one Engine at once: writers, readers, listers and removers.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "shoal/engine.h"
#include "tests/test_util.h"

namespace shoal {
namespace {

using testing::Pattern;
using testing::TempDir;

constexpr uint32_t kChunk = testing::kTestChunk;

class ConcurrencyTest : public ::testing::TestWithParam<IoBackend> {};

TEST_P(ConcurrencyTest, MixedOperationsFromManyThreads) {
  TempDir dir;
  Options o;
  o.store_dir = dir.Sub("store");
  o.chunk_size = kChunk;
  o.queue_depth = 8;
  o.io_backend = GetParam();
  auto e = Engine::Open(o);
  ASSERT_OK(e);
  Engine& engine = **e;
  const int kThreads = 6, kOps = 60;
  std::atomic<int> failures{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) {
        std::string p = "t" + std::to_string(t) + "/o" + std::to_string(i);
        uint64_t size = static_cast<uint64_t>((i * 31337 + t) % (3 * kChunk));
        auto data = Pattern(size, t * 1000 + i);
        if (!engine.Put(p, data).ok()) ++failures;
        std::vector<std::byte> got(size);
        auto n = engine.Read(p, 0, got);
        if (!n.ok() || *n != size || got != data) ++failures;
        if (!engine.Stat(p).ok()) ++failures;
        if (!engine.List("t" + std::to_string(t)).ok()) ++failures;
        if (i % 3 == 0 && !engine.Remove(p).ok()) ++failures;
      }
    });
  }
  for (auto& th : ts) th.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    auto page = engine.List("t" + std::to_string(t));
    ASSERT_OK(page);
    EXPECT_EQ(page->entries.size(), static_cast<size_t>(kOps - kOps / 3));
  }
}

TEST_P(ConcurrencyTest, ReadsRacingRemoveSeeDataOrNotFoundNeverCorruption) {
  TempDir dir;
  Options o;
  o.store_dir = dir.Sub("store");
  o.chunk_size = kChunk;
  o.io_backend = GetParam();
  auto e = Engine::Open(o);
  ASSERT_OK(e);
  Engine& engine = **e;
  for (int round = 0; round < 20; ++round) {
    auto data = Pattern(6 * kChunk, round);
    ASSERT_OK(engine.Put("race/obj", data));
    std::atomic<bool> go{false};
    std::atomic<int> bad{0};
    std::vector<std::thread> readers;
    for (int r = 0; r < 3; ++r) {
      readers.emplace_back([&] {
        while (!go.load()) std::this_thread::yield();
        for (int k = 0; k < 5; ++k) {
          std::vector<std::byte> got(data.size());
          auto n = engine.Read("race/obj", 0, got);
          if (n.ok() ? got != data : !n.status().IsNotFound()) ++bad;
        }
      });
    }
    go = true;
    std::this_thread::sleep_for(std::chrono::microseconds(200 * round));
    ASSERT_OK(engine.Remove("race/obj"));
    for (auto& th : readers) th.join();
    EXPECT_EQ(bad.load(), 0) << "round " << round;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, ConcurrencyTest,
                         ::testing::Values(IoBackend::kIoUring, IoBackend::kPosix), testing::BackendName());

}  // namespace
}  // namespace shoal
