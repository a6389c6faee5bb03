// Metrics over HTTP (lib/metrics_http.h): the text exposition of a snapshot, and an Engine
// serving its own at Options::metrics_listen, scraped over a real socket as Prometheus does —
// with wrong paths, wrong methods, idle connections and garbage in between.
#include "lib/metrics_http.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "shoal/engine.h"
#include "tests/test_util.h"

namespace shoal {
namespace {

int Connect(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Sends `request` and reads until the server closes: the whole response.
std::string Exchange(uint16_t port, const std::string& request) {
  int fd = Connect(port);
  if (fd < 0) return "connect failed";
  (void)!::write(fd, request.data(), request.size());
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

std::string Scrape(uint16_t port, const std::string& path = "/metrics") {
  return Exchange(port, fmt::format("GET {} HTTP/1.1\r\nHost: localhost\r\n\r\n", path));
}

TEST(PrometheusText, CountersAndSummariesWithEscapedLabels) {
  Stats s;
  s.counters["engine.read.ops"] = 7;
  s.counters["member.remote.chunk-read.calls"] = 2;
  HistogramStats h;
  h.count = 3;
  h.sum = 3000;
  h.p50 = 900;
  h.p90 = 1500;
  h.p99 = 1900;
  s.histograms["engine.read.latency_ns"] = h;
  const std::string text = PrometheusText(s, {{"rank", "1"}, {"node", "a\"b\\c"}});
  const std::string l = "{rank=\"1\",node=\"a\\\"b\\\\c\"}";
  EXPECT_NE(text.find("# TYPE shoal_engine_read_ops_total counter\nshoal_engine_read_ops_total" +
                      l + " 7\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("shoal_member_remote_chunk_read_calls_total" + l + " 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("# TYPE shoal_engine_read_latency_ns summary\n"), std::string::npos);
  EXPECT_NE(text.find("shoal_engine_read_latency_ns{rank=\"1\",node=\"a\\\"b\\\\c\","
                      "quantile=\"0.99\"} 1900\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("shoal_engine_read_latency_ns_sum" + l + " 3000\n"), std::string::npos);
  EXPECT_NE(text.find("shoal_engine_read_latency_ns_count" + l + " 3\n"), std::string::npos);
}

TEST(ListenAddress, ParsesAndRefuses) {
  EXPECT_EQ(*ParseListenAddress("127.0.0.1:9400"), (std::pair<std::string, uint16_t>{"127.0.0.1", 9400}));
  EXPECT_EQ(*ParseListenAddress(":0"), (std::pair<std::string, uint16_t>{"127.0.0.1", 0}));
  EXPECT_EQ(*ParseListenAddress("[::1]:80"), (std::pair<std::string, uint16_t>{"::1", 80}));
  for (const char* bad : {"9400", "host:9400", "1.2.3.4:", "1.2.3.4:70000", "1.2.3.4:9x"}) {
    EXPECT_EQ(ParseListenAddress(bad).status().code(), Code::kInvalidArgument) << bad;
  }
}

TEST(MetricsEndpoint, AnEngineServesItsCountersToAScrape) {
  testing::TempDir dir;
  Options o;
  o.store_dir = dir.path();
  o.metrics_listen = "127.0.0.1:0";
  auto e = Engine::Open(o);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  const uint16_t port = (*e)->metrics_port();
  ASSERT_NE(port, 0);
  ASSERT_TRUE((*e)->Put("a/b", std::string(10000, 'x')).ok());
  std::vector<std::byte> buf(100);
  ASSERT_TRUE((*e)->Read("a/b", 0, buf).ok());
  EXPECT_EQ((*e)->Read("missing", 0, buf).status().code(), Code::kNotFound);

  // Hostile neighbours first: idle connections and garbage do not keep a scrape waiting.
  std::vector<int> idle;
  for (int i = 0; i < 8; ++i) idle.push_back(Connect(port));
  EXPECT_NE(Exchange(port, std::string(20000, 'G') + "\r\n\r\n").find("HTTP/1.1 4"),
            std::string::npos);  // headers over the limit: an error, then closed
  EXPECT_EQ(Exchange(port, "garbage\r\n\r\n").find("200 OK"), std::string::npos);

  const std::string r = Scrape(port);
  EXPECT_NE(r.find("HTTP/1.1 200 OK"), std::string::npos) << r;
  EXPECT_NE(r.find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(r.find("shoal_engine_write_ops_total{rank=\"0\","), std::string::npos) << r;
  EXPECT_NE(r.find("shoal_engine_read_bytes_total{rank=\"0\","), std::string::npos);
  EXPECT_NE(r.find("shoal_engine_errors_NotFound_total{rank=\"0\",node=\""), std::string::npos);
  EXPECT_NE(r.find("} 1\n"), std::string::npos);
  EXPECT_NE(r.find("shoal_engine_read_latency_ns_count{"), std::string::npos);
  EXPECT_NE(Scrape(port, "/other").find("404 Not Found"), std::string::npos);
  EXPECT_NE(Exchange(port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                .find("405 Method Not Allowed"),
            std::string::npos);
  for (int fd : idle) ::close(fd);

  // Another engine asking for the same port is refused with the reason.
  testing::TempDir dir2;
  Options o2 = o;
  o2.store_dir = dir2.path();
  o2.metrics_listen = fmt::format("127.0.0.1:{}", port);
  auto e2 = Engine::Open(o2);
  ASSERT_FALSE(e2.ok());
  EXPECT_EQ(e2.status().code(), Code::kIOError);
  EXPECT_NE(e2.status().message().find(std::to_string(port)), std::string::npos);
  o2.metrics_listen = "nonsense";
  EXPECT_EQ(Engine::Open(o2).status().code(), Code::kInvalidArgument);

  e->reset();  // closing the engine closes the endpoint
  EXPECT_EQ(Connect(port), -1);
}

}  // namespace
}  // namespace shoal
