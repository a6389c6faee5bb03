#include "base/metrics.h"

#include <bit>
#include <cmath>

namespace shoal::metrics {

int Histogram::BucketOf(uint64_t value) { return std::bit_width(value); }

uint64_t Histogram::BucketLower(int i) { return i == 0 ? 0 : uint64_t{1} << (i - 1); }

uint64_t Histogram::BucketUpper(int i) {
  if (i == 0) return 0;
  if (i == 64) return UINT64_MAX;
  return (uint64_t{1} << i) - 1;
}

std::array<uint64_t, Histogram::kBuckets> Histogram::BucketCounts() const {
  std::array<uint64_t, kBuckets> counts{};
  for (int i = 0; i < kBuckets; ++i) counts[i] = buckets_[i].load(std::memory_order_relaxed);
  return counts;
}

uint64_t Histogram::Percentile(const std::array<uint64_t, kBuckets>& counts, double q) {
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  if (total == 0) return 0;
  // The rank-th smallest record (1-based) is the q-quantile.
  // (The epsilon keeps 0.98 * 100, not exactly 98 in binary, from rounding up to 99.)
  double want = std::ceil(q * static_cast<double>(total) - 1e-9);
  uint64_t rank = want < 1 ? 1 : want >= static_cast<double>(total) ? total
                                                                     : static_cast<uint64_t>(want);
  uint64_t before = 0;
  for (int i = 0; i < kBuckets; ++i) {
    if (counts[i] == 0 || before + counts[i] < rank) {
      before += counts[i];
      continue;
    }
    // Records spread evenly over the bucket: the last one at its upper bound.
    uint64_t lo = BucketLower(i), hi = BucketUpper(i);
    double frac = static_cast<double>(rank - before) / static_cast<double>(counts[i]);
    double offset = static_cast<double>(hi - lo) * frac;
    // hi - lo may not be representable; never step past the bucket.
    if (offset >= static_cast<double>(hi - lo)) return hi;
    return lo + static_cast<uint64_t>(offset);
  }
  return 0;  // not reached: rank <= total
}

HistogramSummary Histogram::Summary() const {
  std::array<uint64_t, kBuckets> counts = BucketCounts();
  HistogramSummary s;
  for (int i = 0; i < kBuckets; ++i) {
    s.count += counts[i];
    if (counts[i] != 0) s.max_bucket = BucketUpper(i);
  }
  if (s.count == 0) return s;
  s.sum = sum_.load(std::memory_order_relaxed);
  s.p50 = Percentile(counts, 0.50);
  s.p90 = Percentile(counts, 0.90);
  s.p99 = Percentile(counts, 0.99);
  return s;
}

Counter& Registry::counter(std::string_view name) {
  std::lock_guard lk(mu_);
  auto it = counters_.find(name);
  if (it == counters_.end()) {
    it = counters_.emplace(std::string(name), std::make_unique<Counter>()).first;
  }
  return *it->second;
}

Histogram& Registry::histogram(std::string_view name) {
  std::lock_guard lk(mu_);
  auto it = histograms_.find(name);
  if (it == histograms_.end()) {
    it = histograms_.emplace(std::string(name), std::make_unique<Histogram>()).first;
  }
  return *it->second;
}

MetricsSnapshot Registry::Snapshot() const {
  MetricsSnapshot s;
  std::lock_guard lk(mu_);
  for (const auto& [name, c] : counters_) s.counters.emplace(name, c->value());
  for (const auto& [name, h] : histograms_) s.histograms.emplace(name, h->Summary());
  return s;
}

}  // namespace shoal::metrics
