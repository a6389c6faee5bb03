// Stats: what Engine::GetStats returns — the counters and latency histograms this member has
// recorded since Open, as plain values (a snapshot; later calls see later values).
//
// Names are dotted and stable ("engine.read.ops", "engine.read.bytes",
// "engine.read.latency_ns", "member.remote.chunk-read.calls", "engine.errors.NotFound", ...);
// docs/metrics.md lists them. Counters only grow. Histograms are log2-bucketed: percentiles are
// estimates within a factor of two (the bucket that holds them).
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace shoal {

struct HistogramStats {
  uint64_t count = 0;
  uint64_t sum = 0;         // in the histogram's unit (ns for latencies); wraps modulo 2^64
  uint64_t p50 = 0;
  uint64_t p90 = 0;
  uint64_t p99 = 0;
  uint64_t max_bucket = 0;  // every recorded value is <= this (and > half of it)
  double mean() const { return count == 0 ? 0.0 : static_cast<double>(sum) / count; }
  bool operator==(const HistogramStats&) const = default;
};

struct Stats {
  std::map<std::string, uint64_t> counters;
  std::map<std::string, HistogramStats> histograms;
};

}  // namespace shoal
