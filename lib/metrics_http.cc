#include "lib/metrics_http.h"

#include <fmt/format.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <thread>

namespace shoal {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr size_t kMaxConnections = 32;
constexpr auto kRequestTimeout = std::chrono::seconds(5);

std::string MetricName(std::string_view dotted) {
  std::string out = "shoal_";
  for (char c : dotted) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    out += ok ? c : '_';
  }
  return out;
}

std::string LabelText(const MetricLabels& labels, std::string_view extra = {}) {
  std::string out;
  for (const auto& [k, v] : labels) {
    out += out.empty() ? "{" : ",";
    out += k + "=\"";
    for (char c : v) {
      if (c == '\\' || c == '"') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    out += '"';
  }
  if (!extra.empty()) {
    out += out.empty() ? "{" : ",";
    out += extra;
  }
  if (!out.empty()) out += '}';
  return out;
}

}  // namespace

std::string PrometheusText(const Stats& stats, const MetricLabels& labels) {
  std::string out;
  const std::string l = LabelText(labels);
  for (const auto& [name, value] : stats.counters) {
    const std::string n = MetricName(name) + "_total";
    out += fmt::format("# TYPE {} counter\n{}{} {}\n", n, n, l, value);
  }
  for (const auto& [name, h] : stats.histograms) {
    const std::string n = MetricName(name);
    out += fmt::format("# TYPE {} summary\n", n);
    for (auto [q, v] : {std::pair{"0.5", h.p50}, {"0.9", h.p90}, {"0.99", h.p99}}) {
      out += fmt::format("{}{} {}\n", n, LabelText(labels, fmt::format("quantile=\"{}\"", q)), v);
    }
    out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", n, l, h.sum, n, l, h.count);
  }
  return out;
}

Result<std::pair<std::string, uint16_t>> ParseListenAddress(const std::string& text) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument(
        fmt::format("metrics address \"{}\": {} (give HOST:PORT, e.g. 127.0.0.1:9400)", text,
                    why));
  };
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) return bad("no port");
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "127.0.0.1";
  const std::string_view port_text = std::string_view(text).substr(colon + 1);
  uint32_t port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port_text.empty() ||
      port > 65535) {
    return bad("the port is not a number in 0..65535");
  }
  boost::system::error_code aec;
  asio::ip::make_address(host, aec);
  if (aec) return bad("the host is not a numeric IPv4 or IPv6 address");
  return std::pair{host, static_cast<uint16_t>(port)};
}

class MetricsHttpServer::Impl {
 public:
  explicit Impl(std::function<std::string()> render)
      : render_(std::move(render)), acceptor_(ioc_) {}

  Status Listen(const std::string& host, uint16_t port) {
    boost::system::error_code ec;
    auto address = asio::ip::make_address(host, ec);
    if (ec) return Status::InvalidArgument(fmt::format("metrics host \"{}\": {}", host, ec.message()));
    tcp::endpoint ep(address, port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status::IOError(fmt::format("metrics endpoint {}:{}: {}", host, port, ec.message()));
    }
    port_ = acceptor_.local_endpoint().port();
    Accept();
    thread_ = std::thread([this] { ioc_.run(); });
    return Status::OK();
  }

  ~Impl() {
    asio::post(ioc_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
    });
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
  }

  uint16_t port() const { return port_; }
  uint64_t served() const { return served_.load(std::memory_order_relaxed); }

 private:
  struct Connection : std::enable_shared_from_this<Connection> {
    Connection(Impl* impl, tcp::socket socket) : impl(impl), stream(std::move(socket)) {}
    ~Connection() { impl->open_--; }

    void Start() {
      parser.header_limit(8192);
      parser.body_limit(0);
      stream.expires_after(kRequestTimeout);
      http::async_read(stream, buffer, parser,
                       [self = shared_from_this()](beast::error_code ec, size_t) {
                         if (!ec) {
                           self->Respond();
                         } else if (ec.category() == http::make_error_code(
                                                         http::error::header_limit).category()) {
                           self->Refuse(ec);  // a malformed or oversized request: say so
                         }                    // (a timeout or a closed peer: just close)
                       });
    }

    void Refuse(beast::error_code why) {
      response.version(11);
      response.keep_alive(false);
      response.result(why == http::error::header_limit
                           ? http::status::request_header_fields_too_large
                           : http::status::bad_request);
      response.body() = "bad request: " + why.message() + "\n";
      Send();
    }

    void Respond() {
      const auto& req = parser.get();
      response.version(req.version());
      response.keep_alive(false);
      response.set(http::field::server, "shoal");
      if (req.method() != http::verb::get && req.method() != http::verb::head) {
        response.result(http::status::method_not_allowed);
        response.set(http::field::allow, "GET, HEAD");
      } else if (req.target() != "/metrics" && req.target() != "/") {
        response.result(http::status::not_found);
        response.body() = "not found: the metrics are at /metrics\n";
      } else {
        response.result(http::status::ok);
        response.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        if (req.method() == http::verb::get) response.body() = impl->render_();
        impl->served_.fetch_add(1, std::memory_order_relaxed);
      }
      Send();
    }

    void Send() {
      response.prepare_payload();
      stream.expires_after(kRequestTimeout);
      http::async_write(stream, response, [self = shared_from_this()](beast::error_code, size_t) {
        beast::error_code ec;
        self->stream.socket().shutdown(tcp::socket::shutdown_send, ec);
      });
    }

    Impl* impl;
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    http::request_parser<http::empty_body> parser;
    http::response<http::string_body> response;
  };

  void Accept() {
    acceptor_.async_accept(asio::make_strand(ioc_), [this](beast::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      if (!ec) {
        if (open_ >= kMaxConnections) {
          beast::error_code ignored;
          s.close(ignored);  // full: a flood of idle connections does not grow without bound
        } else {
          open_++;
          std::make_shared<Connection>(this, std::move(s))->Start();
        }
      }
      Accept();
    });
  }

  // Declared before the io_context: its destruction destroys pending connections, which
  // count themselves out of open_.
  std::function<std::string()> render_;
  size_t open_ = 0;  // touched only on the io_context's one thread
  std::atomic<uint64_t> served_{0};
  uint16_t port_ = 0;
  asio::io_context ioc_{1};
  tcp::acceptor acceptor_;
  std::thread thread_;
};

MetricsHttpServer::MetricsHttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MetricsHttpServer::~MetricsHttpServer() = default;

Result<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& host, uint16_t port, std::function<std::string()> render) {
  auto impl = std::make_unique<Impl>(std::move(render));
  SHOAL_RETURN_IF_ERROR(impl->Listen(host, port));
  return std::unique_ptr<MetricsHttpServer>(new MetricsHttpServer(std::move(impl)));
}

uint16_t MetricsHttpServer::port() const { return impl_->port(); }
uint64_t MetricsHttpServer::requests_served() const { return impl_->served(); }

}  // namespace shoal
