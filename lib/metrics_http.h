// Metrics over HTTP: a rank's Engine::GetStats() in the Prometheus text exposition format
// (version 0.0.4), served at GET /metrics on an opt-in port (Options::metrics_listen,
// docs/metrics.md). Built on Boost.Beast (docs/dependencies.md says why not civetweb).
//
// Exposition: every dotted metric name becomes shoal_<name with '.' and '-' as '_'>; counters get
// the suffix _total; latency histograms are summaries (quantile 0.5/0.9/0.99 from the log2
// buckets, _sum, _count). Every sample carries the labels given at Start (rank, node, member).
//
// The server: one thread running an io_context; each connection gets one request (headers up
// to 8 KiB, no body), one response, and is closed; a connection that sends nothing whole within
// 5 s is closed; at most 32 connections at once (more are closed at accept). Nothing a client
// sends reaches the engine: the only input read is the request line's method and path.
// Thread-safety: Start and the destructor from one thread; `render` is called on the server's
// thread and must be thread-safe against the engine's use (Engine::GetStats is).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "shoal/result.h"
#include "shoal/stats.h"

namespace shoal {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// The text exposition of `stats`, each sample labelled with `labels` (values escaped).
std::string PrometheusText(const Stats& stats, const MetricLabels& labels);

class MetricsHttpServer {
 public:
  // Listens on host:port (port 0: a free one, see port()). InvalidArgument for a host that is
  // not a numeric address; the errno of a failed bind (EADDRINUSE: another rank or process has
  // the port) as IOError naming the address.
  static Result<std::unique_ptr<MetricsHttpServer>> Start(const std::string& host,
                                                          uint16_t port,
                                                          std::function<std::string()> render);
  ~MetricsHttpServer();  // stops accepting, closes connections, joins the thread
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  uint16_t port() const;
  uint64_t requests_served() const;

  class Impl;

 private:
  explicit MetricsHttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Parses Options::metrics_listen ("HOST:PORT", "[V6]:PORT" or ":PORT" for 127.0.0.1).
// InvalidArgument naming what is wrong.
Result<std::pair<std::string, uint16_t>> ParseListenAddress(const std::string& text);

}  // namespace shoal
