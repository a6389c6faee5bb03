// Metrics: named counters and latency histograms, cheap enough for the data path.
//
//   metrics::Registry reg;                          // owned by whoever reports (e.g. the Engine)
//   metrics::Counter& reads = reg.counter("read.ops");        // register once, keep the handle
//   metrics::Histogram& lat = reg.histogram("read.latency_ns");
//   ...
//   reads.Add();                                    // one relaxed atomic add, no lookup, no lock
//   { metrics::ScopedTimer t(lat); DoRead(); }      // records the elapsed ns on scope exit
//   ...
//   MetricsSnapshot s = reg.Snapshot();             // plain values, for an API to return
//
// Cost model: registration takes the registry's mutex and may allocate; it belongs at setup
// time. Counter::Add is a single relaxed fetch_add on the counter's own cache line.
// Histogram::Record is two relaxed fetch_adds (the value's bucket, the sum). Nothing on the
// recording path locks, allocates or looks a name up.
//
// Ordering: counters and histograms are statistics, not synchronization. Values are read with
// relaxed loads; a snapshot taken while other threads record sees, for each metric, some value
// between the one before and the one after the concurrent updates (counters never go backwards
// between two snapshots), but not one instant across metrics, and a histogram's `sum` may
// include a record its bucket counts do not yet (or the other way round).
//
// Histogram buckets are powers of two: bucket 0 holds the value 0, bucket i (1..64) holds
// [2^(i-1), 2^i - 1]. A percentile is estimated by linear interpolation inside the bucket that
// holds it, so it is exact to within that bucket (a factor of two), which is what latency
// dashboards need at a fixed 65 x 8 bytes per histogram.
//
// Ownership and thread-safety: the Registry owns its metrics; the references it hands out stay
// valid (and at the same address) until the Registry is destroyed. All methods of all classes
// here are thread-safe. No global registry exists: the owner passes handles to the code that
// records.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "shoal/stats.h"

namespace shoal::metrics {

// A monotonically increasing count (operations, bytes, errors). Wraps modulo 2^64.
class alignas(64) Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// What a histogram held at one moment, as plain values (the public shoal::HistogramStats, which
// Engine::GetStats returns). All values in the histogram's unit (nanoseconds for latencies); with
// count == 0 every field is 0. p50/p90/p99 are estimates within the bucket holding them (above).
using HistogramSummary = shoal::HistogramStats;

// A distribution of non-negative values in log2 buckets.
class alignas(64) Histogram {
 public:
  static constexpr int kBuckets = 65;

  Histogram() = default;
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Record(uint64_t value) {
    buckets_[BucketOf(value)].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
  }
  // Negative durations (a clock that went backwards) are recorded as 0.
  void RecordDuration(std::chrono::nanoseconds d) {
    Record(d.count() < 0 ? 0 : static_cast<uint64_t>(d.count()));
  }

  // Bucket of a value, and the inclusive bounds of bucket i (0 <= i < kBuckets).
  static int BucketOf(uint64_t value);
  static uint64_t BucketLower(int i);
  static uint64_t BucketUpper(int i);

  // The bucket counts as plain values (one relaxed load each).
  std::array<uint64_t, kBuckets> BucketCounts() const;
  HistogramSummary Summary() const;
  // Estimate of the q-quantile (0 < q <= 1) of `counts`: the value below which a fraction q of
  // the records lie, interpolated linearly inside its bucket. 0 when `counts` is all zeros.
  static uint64_t Percentile(const std::array<uint64_t, kBuckets>& counts, double q);

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> sum_{0};
};

// Records the time from construction to destruction (steady clock, ns) into a histogram.
// Not copyable or movable: it lives in one scope.
class ScopedTimer {
 public:
  explicit ScopedTimer(Histogram& histogram)
      : histogram_(histogram), start_(std::chrono::steady_clock::now()) {}
  ~ScopedTimer() { histogram_.RecordDuration(std::chrono::steady_clock::now() - start_); }
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

  std::chrono::nanoseconds elapsed() const { return std::chrono::steady_clock::now() - start_; }

 private:
  Histogram& histogram_;
  const std::chrono::steady_clock::time_point start_;
};

// Plain values of every metric of a registry, by name (sorted): the public shoal::Stats.
using MetricsSnapshot = shoal::Stats;

// Owns named metrics. Counters and histograms have separate name spaces (one name may be both).
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The metric of that name, created (zero) on first use. Every call with one name returns the
  // same object, so independent components may register the same name and share it. Takes a
  // mutex: call at setup and keep the reference, not per operation.
  Counter& counter(std::string_view name);
  Histogram& histogram(std::string_view name);

  // Every metric's current value. Takes the registration mutex (not the recording path's).
  MetricsSnapshot Snapshot() const;

 private:
  mutable std::mutex mu_;
  // unique_ptr: a metric's address never changes when the maps grow.
  std::map<std::string, std::unique_ptr<Counter>, std::less<>> counters_;
  std::map<std::string, std::unique_ptr<Histogram>, std::less<>> histograms_;
};

}  // namespace shoal::metrics
