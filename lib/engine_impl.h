// Engine::Impl: what the public Engine holds — one ObjectApi (engine/object_api.h), a Cluster
// for every Engine::Open (a world of one included) or, for tests inside the project, any other
// implementation (an ObjectStore over a fault-injecting disk) through Wrap. Not installed.
#pragma once

#include <array>
#include <memory>

#include "base/metrics.h"
#include "engine/object_api.h"
#include "lib/metrics_http.h"
#include "shoal/engine.h"

namespace shoal {

class Engine::Impl {
 public:
  // `metrics`: the registry the layers below record into (shared with the Cluster), or null.
  explicit Impl(std::unique_ptr<engine::ObjectApi> api,
                std::unique_ptr<metrics::Registry> metrics = nullptr);

  // An Engine forwarding to `api`.
  static std::unique_ptr<Engine> Wrap(std::unique_ptr<engine::ObjectApi> api,
                                      std::unique_ptr<metrics::Registry> metrics = nullptr);

  engine::ObjectApi& api() { return *api_; }
  // OK in the process that opened the engine; FailedPrecondition in a forked child.
  Status Usable() const;
  bool forked() const;
  // Gives up the implementation without destroying it (a forked child must not join threads
  // that exist only in its parent).
  void Leak() {
    (void)http_.release();
    (void)api_.release();
    (void)metrics_.release();
  }

  metrics::Registry& metrics() { return *metrics_; }
  // Serves this engine's metrics over HTTP until the engine closes (Options::metrics_listen).
  Status ServeMetrics(const std::string& listen, uint32_t local_rank, MetricLabels labels);
  uint16_t metrics_port() const { return http_ ? http_->port() : 0; }
  // One call of the API: its counters and latency histogram ("engine.<name>.*").
  struct Call {
    metrics::Counter* ops;
    metrics::Counter* bytes;
    metrics::Histogram* latency;  // null: not timed (stat: a clock read would cost ~10%)
  };
  Call& call(size_t i) { return calls_[i]; }
  // Counts a failed call by its code ("engine.errors.<Code>").
  void CountError(const Status& s) {
    if (!s.ok()) errors_[static_cast<size_t>(s.code()) % errors_.size()]->Add();
  }

  enum CallIndex : size_t { kCreate, kWrite, kSeal, kAbort, kRead, kStat, kList, kRemove, kCalls };

 private:
  // Declared first: destroyed after the implementation that records into it.
  std::unique_ptr<metrics::Registry> metrics_;
  std::unique_ptr<engine::ObjectApi> api_;
  std::array<Call, kCalls> calls_{};
  std::array<metrics::Counter*, static_cast<size_t>(Code::kInternal) + 1> errors_{};
  uint64_t fork_generation_;
  int pid_;
  // Last: stopped before the implementation it reads from goes.
  std::unique_ptr<MetricsHttpServer> http_;
};

}  // namespace shoal
