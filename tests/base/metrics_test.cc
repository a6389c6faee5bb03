#include "base/metrics.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

namespace shoal::metrics {
namespace {

TEST(Counter, ThreadsAddingGiveTheExactTotal) {
  Registry reg;
  Counter& c = reg.counter("ops");
  constexpr int kThreads = 8;
  constexpr uint64_t kPerThread = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0; i < kPerThread; ++i) c.Add(t % 2 == 0 ? 1 : 3);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), kThreads / 2 * kPerThread * (1 + 3));
  EXPECT_EQ(reg.Snapshot().counters.at("ops"), c.value());
}

TEST(Counter, WrapsModulo2To64) {
  Counter c;
  c.Add(UINT64_MAX);
  c.Add(2);
  EXPECT_EQ(c.value(), 1u);
}

TEST(Registry, OneNameIsOneMetricAtAStableAddress) {
  Registry reg;
  Counter& a = reg.counter("a");
  Histogram& ha = reg.histogram("a");  // another name space: not the counter
  // Growing the maps must not move what was handed out.
  for (int i = 0; i < 1000; ++i) {
    reg.counter("c" + std::to_string(i)).Add();
    reg.histogram("h" + std::to_string(i)).Record(i);
  }
  EXPECT_EQ(&reg.counter("a"), &a);
  EXPECT_EQ(&reg.histogram("a"), &ha);
  a.Add(5);
  ha.Record(7);
  MetricsSnapshot s = reg.Snapshot();
  EXPECT_EQ(s.counters.size(), 1001u);
  EXPECT_EQ(s.histograms.size(), 1001u);
  EXPECT_EQ(s.counters.at("a"), 5u);
  EXPECT_EQ(s.histograms.at("a").count, 1u);
  EXPECT_EQ(s.histograms.at("a").sum, 7u);
  EXPECT_EQ(s.counters.at("c999"), 1u);
}

TEST(Registry, ConcurrentRegistrationOfOneNameYieldsOneMetric) {
  Registry reg;
  constexpr int kThreads = 8;
  std::vector<Counter*> seen(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) reg.counter("n" + std::to_string(i)).Add();
      seen[t] = &reg.counter("shared");
      seen[t]->Add();
    });
  }
  for (auto& t : threads) t.join();
  for (Counter* c : seen) {
    EXPECT_EQ(c, seen[0]);
  }
  MetricsSnapshot s = reg.Snapshot();
  EXPECT_EQ(s.counters.at("shared"), uint64_t{kThreads});
  EXPECT_EQ(s.counters.size(), 201u);
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(s.counters.at("n" + std::to_string(i)), uint64_t{kThreads});
  }
}

TEST(Histogram, BucketEdgesArePowersOfTwo) {
  EXPECT_EQ(Histogram::BucketOf(0), 0);
  EXPECT_EQ(Histogram::BucketOf(1), 1);
  EXPECT_EQ(Histogram::BucketOf(2), 2);
  EXPECT_EQ(Histogram::BucketOf(3), 2);
  EXPECT_EQ(Histogram::BucketOf(4), 3);
  EXPECT_EQ(Histogram::BucketOf(1023), 10);
  EXPECT_EQ(Histogram::BucketOf(1024), 11);
  EXPECT_EQ(Histogram::BucketOf(UINT64_MAX), 64);
  for (int i = 0; i < Histogram::kBuckets; ++i) {
    uint64_t lo = Histogram::BucketLower(i), hi = Histogram::BucketUpper(i);
    EXPECT_LE(lo, hi) << i;
    EXPECT_EQ(Histogram::BucketOf(lo), i) << i;
    EXPECT_EQ(Histogram::BucketOf(hi), i) << i;
    if (i > 0) {
      EXPECT_EQ(Histogram::BucketUpper(i - 1) + 1, lo) << i;  // no gaps, no overlaps
    }
  }
  EXPECT_EQ(Histogram::BucketUpper(64), UINT64_MAX);
}

TEST(Histogram, RecordsLandInTheirBuckets) {
  Histogram h;
  for (uint64_t v : {0ull, 1ull, 2ull, 3ull, 4ull, 7ull, 8ull, 1ull << 40, ~0ull}) h.Record(v);
  auto c = h.BucketCounts();
  EXPECT_EQ(c[0], 1u);
  EXPECT_EQ(c[1], 1u);
  EXPECT_EQ(c[2], 2u);
  EXPECT_EQ(c[3], 2u);
  EXPECT_EQ(c[4], 1u);
  EXPECT_EQ(c[41], 1u);
  EXPECT_EQ(c[64], 1u);
  HistogramSummary s = h.Summary();
  EXPECT_EQ(s.count, 9u);
  EXPECT_EQ(s.max_bucket, UINT64_MAX);
}

TEST(Histogram, EmptySummaryIsZero) {
  Histogram h;
  EXPECT_EQ(h.Summary(), HistogramSummary{});
  EXPECT_EQ(h.Summary().mean(), 0.0);
}

TEST(Histogram, OneValueIsEstimatedInsideItsBucket) {
  Histogram h;
  for (int i = 0; i < 100; ++i) h.Record(1000);
  HistogramSummary s = h.Summary();
  EXPECT_EQ(s.count, 100u);
  EXPECT_EQ(s.sum, 100000u);
  EXPECT_DOUBLE_EQ(s.mean(), 1000.0);
  EXPECT_EQ(s.max_bucket, 1023u);  // 1000 lies in [512, 1023]
  for (uint64_t p : {s.p50, s.p90, s.p99}) {
    EXPECT_GE(p, 512u);
    EXPECT_LE(p, 1023u);
  }
  EXPECT_LE(s.p50, s.p90);
  EXPECT_LE(s.p90, s.p99);
}

TEST(Histogram, PercentilesOfAKnownDistribution) {
  // 1..10000 ns uniformly: the true p50 is 5000, p90 9000, p99 9900.
  Histogram h;
  for (uint64_t v = 1; v <= 10000; ++v) h.Record(v);
  HistogramSummary s = h.Summary();
  EXPECT_EQ(s.count, 10000u);
  EXPECT_EQ(s.sum, 10000u * 10001 / 2);
  EXPECT_EQ(s.max_bucket, 16383u);
  // Each estimate lies in the bucket of the true value.
  EXPECT_EQ(Histogram::BucketOf(s.p50), Histogram::BucketOf(5000));
  EXPECT_EQ(Histogram::BucketOf(s.p90), Histogram::BucketOf(9000));
  EXPECT_EQ(Histogram::BucketOf(s.p99), Histogram::BucketOf(9900));
  // Linear interpolation keeps these close where the bucket is evenly filled: 4096..8191 holds
  // 4096 of the values, 5000 is the 905th of them.
  EXPECT_NEAR(static_cast<double>(s.p50), 5000.0, 5.0);
}

TEST(Histogram, PercentileOfSkewedCountsFollowsTheRank) {
  std::array<uint64_t, Histogram::kBuckets> counts{};
  counts[Histogram::BucketOf(100)] = 98;     // [64, 127]
  counts[Histogram::BucketOf(1000000)] = 2;  // [524288, 1048575]
  EXPECT_LE(Histogram::Percentile(counts, 0.5), 127u);
  EXPECT_GE(Histogram::Percentile(counts, 0.5), 64u);
  EXPECT_LE(Histogram::Percentile(counts, 0.98), 127u);  // the 98th record is still small
  EXPECT_GE(Histogram::Percentile(counts, 0.99), 524288u);
  EXPECT_EQ(Histogram::Percentile(counts, 1.0), 1048575u);
  EXPECT_GE(Histogram::Percentile(counts, 0.0), 64u);  // q = 0 is the smallest record
  std::array<uint64_t, Histogram::kBuckets> top{};
  top[64] = 1;
  EXPECT_EQ(Histogram::Percentile(top, 0.5), UINT64_MAX);  // no overflow at the last bucket
  std::array<uint64_t, Histogram::kBuckets> zeros{};
  zeros[0] = 3;
  EXPECT_EQ(Histogram::Percentile(zeros, 0.99), 0u);
}

TEST(Histogram, ConcurrentRecordsAreAllCounted) {
  Histogram h;
  constexpr int kThreads = 8;
  constexpr uint64_t kPerThread = 50000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0; i < kPerThread; ++i) h.Record(uint64_t{1} << t);
    });
  }
  for (auto& t : threads) t.join();
  HistogramSummary s = h.Summary();
  EXPECT_EQ(s.count, kThreads * kPerThread);
  EXPECT_EQ(s.sum, kPerThread * ((uint64_t{1} << kThreads) - 1));
  auto c = h.BucketCounts();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(c[t + 1], kPerThread) << t;
  }
  EXPECT_EQ(s.max_bucket, (uint64_t{1} << kThreads) - 1);
}

TEST(ScopedTimer, RecordsTheElapsedTimeOnceOnScopeExit) {
  Histogram h;
  {
    ScopedTimer t(h);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    EXPECT_EQ(h.Summary().count, 0u);  // nothing until the scope ends
    EXPECT_GE(t.elapsed(), std::chrono::milliseconds(2));
  }
  HistogramSummary s = h.Summary();
  EXPECT_EQ(s.count, 1u);
  EXPECT_GE(s.sum, 2000000u);
  EXPECT_LT(s.sum, 2000000000u);  // well under 2 s even on a loaded machine
  EXPECT_GE(s.max_bucket, s.sum);
}

TEST(Snapshot, IsAPlainCopyThatLaterUpdatesDoNotChange) {
  Registry reg;
  Counter& c = reg.counter("bytes");
  Histogram& h = reg.histogram("lat");
  c.Add(10);
  h.Record(100);
  MetricsSnapshot before = reg.Snapshot();
  c.Add(10);
  h.Record(100000);
  reg.counter("late");  // registered after the snapshot
  EXPECT_EQ(before.counters.at("bytes"), 10u);
  EXPECT_EQ(before.counters.count("late"), 0u);
  EXPECT_EQ(before.histograms.at("lat").count, 1u);
  EXPECT_EQ(before.histograms.at("lat").max_bucket, 127u);
  MetricsSnapshot after = reg.Snapshot();
  EXPECT_EQ(after.counters.at("bytes"), 20u);
  EXPECT_EQ(after.counters.at("late"), 0u);
  EXPECT_EQ(after.histograms.at("lat").count, 2u);
}

TEST(Snapshot, CountersNeverGoBackwardsUnderConcurrentUpdates) {
  Registry reg;
  Counter& c = reg.counter("ops");
  Histogram& h = reg.histogram("lat");
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        c.Add();
        h.Record(50);
      }
    });
  }
  uint64_t last_counter = 0, last_count = 0;
  for (int i = 0; i < 2000; ++i) {
    MetricsSnapshot s = reg.Snapshot();
    EXPECT_GE(s.counters.at("ops"), last_counter);
    EXPECT_GE(s.histograms.at("lat").count, last_count);
    last_counter = s.counters.at("ops");
    last_count = s.histograms.at("lat").count;
    if (last_count > 0) {
      EXPECT_EQ(s.histograms.at("lat").max_bucket, 63u);
    }
  }
  stop = true;
  for (auto& t : writers) t.join();
  MetricsSnapshot s = reg.Snapshot();
  EXPECT_EQ(s.histograms.at("lat").count, s.counters.at("ops"));  // quiescent: all consistent
  EXPECT_EQ(s.histograms.at("lat").sum, 50 * s.counters.at("ops"));
}

// Not a benchmark: prints the cost of the recording path so a regression (a lock, a lookup)
// shows, and fails only if it is absurd.
TEST(Metrics, RecordingCostsNanoseconds) {
  Registry reg;
  Counter& c = reg.counter("ops");
  Histogram& h = reg.histogram("lat");
  constexpr int kOps = 5000000;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kOps; ++i) c.Add();
  auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < kOps; ++i) h.Record(static_cast<uint64_t>(i));
  auto t2 = std::chrono::steady_clock::now();
  double counter_ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / kOps;
  double hist_ns = std::chrono::duration<double, std::nano>(t2 - t1).count() / kOps;
  std::printf("[ metrics  ] Counter::Add %.2f ns/op, Histogram::Record %.2f ns/op (1 thread)\n",
              counter_ns, hist_ns);
  EXPECT_EQ(c.value(), uint64_t{kOps});
  EXPECT_EQ(h.Summary().count, uint64_t{kOps});
  EXPECT_LT(counter_ns, 200.0);
  EXPECT_LT(hist_ns, 400.0);
}

}  // namespace
}  // namespace shoal::metrics
