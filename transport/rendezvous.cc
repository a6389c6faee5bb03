#include "transport/rendezvous.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "base/bytes.h"
#include "base/errno_status.h"
#include "base/log.h"
#include "transport/job_token.h"

namespace shoal::transport {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kMaxFrame = 64u << 20;
constexpr std::string_view kServerLabel = "shoal-rdzv-server-v1";
constexpr std::string_view kClientLabel = "shoal-rdzv-client-v1";
constexpr std::string_view kTableLabel = "shoal-rdzv-table-v1";
constexpr std::string_view kFileLabel = "shoal-rdzv-file-v1";

Blob EncodeTable(const std::vector<Blob>& table) {
  ByteWriter w;
  w.Put<uint32_t>(static_cast<uint32_t>(table.size()));
  for (const Blob& b : table) w.Prefixed(b);
  return w.Take();
}

// The concatenation of `parts`.
Blob Concat(std::initializer_list<std::span<const std::byte>> parts) {
  ByteWriter w;
  for (auto p : parts) w.Raw(p);
  return w.Take();
}

Result<std::vector<Blob>> DecodeTable(std::span<const std::byte> bytes, uint32_t world) {
  ByteReader r(bytes);
  uint32_t n = 0;
  if (!r.Get(&n) || n != world) return Status::InvalidArgument("rendezvous table: member count");
  std::vector<Blob> table(n);
  for (uint32_t i = 0; i < n; ++i) {
    std::span<const std::byte> b;
    if (!r.Prefixed(kMaxBlobBytes, &b)) {
      return Status::InvalidArgument(fmt::format("rendezvous table: entry {} malformed", i));
    }
    table[i].assign(b.begin(), b.end());
  }
  if (r.left() != 0) return Status::InvalidArgument("rendezvous table: trailing bytes");
  return table;
}

int Remaining(Clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return ms <= 0 ? 0 : static_cast<int>(std::min<int64_t>(ms, 1 << 30));
}

Status WaitFd(int fd, short events, Clock::time_point deadline, std::string_view what) {
  while (true) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, Remaining(deadline));
    if (n > 0) return Status::OK();
    if (n == 0) return Status::Timeout(fmt::format("rendezvous: timed out {}", what));
    if (errno != EINTR) return ErrnoStatus(errno, "poll");
  }
}

Status SendAll(int fd, const void* data, size_t n, Clock::time_point deadline) {
  auto* p = static_cast<const char*>(data);
  while (n > 0) {
    SHOAL_RETURN_IF_ERROR(WaitFd(fd, POLLOUT, deadline, "sending"));
    ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (k < 0) return ErrnoStatus(errno, "rendezvous send");
    p += k;
    n -= static_cast<size_t>(k);
  }
  return Status::OK();
}

Status RecvAll(int fd, void* data, size_t n, Clock::time_point deadline) {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    SHOAL_RETURN_IF_ERROR(WaitFd(fd, POLLIN, deadline, "receiving"));
    ssize_t k = ::recv(fd, p, n, 0);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (k < 0) return ErrnoStatus(errno, "rendezvous receive");
    if (k == 0) return Status::Unavailable("rendezvous: the other side closed the connection");
    p += k;
    n -= static_cast<size_t>(k);
  }
  return Status::OK();
}

Status SendFrame(int fd, char tag, std::span<const std::byte> body, Clock::time_point deadline) {
  uint32_t len = static_cast<uint32_t>(body.size() + 1);
  SHOAL_RETURN_IF_ERROR(SendAll(fd, &len, 4, deadline));
  SHOAL_RETURN_IF_ERROR(SendAll(fd, &tag, 1, deadline));
  return SendAll(fd, body.data(), body.size(), deadline);
}

// Receives one frame; returns its tag in *tag and its body.
Result<Blob> RecvFrame(int fd, char* tag, Clock::time_point deadline) {
  uint32_t len = 0;
  SHOAL_RETURN_IF_ERROR(RecvAll(fd, &len, 4, deadline));
  if (len == 0 || len > kMaxFrame) {
    return Status::InvalidArgument(fmt::format("rendezvous: frame of {} bytes", len));
  }
  SHOAL_RETURN_IF_ERROR(RecvAll(fd, tag, 1, deadline));
  Blob body(len - 1);
  SHOAL_RETURN_IF_ERROR(RecvAll(fd, body.data(), body.size(), deadline));
  return body;
}

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (fd >= 0) ::close(fd);
    fd = std::exchange(o.fd, -1);
    return *this;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string PeerName(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[NI_MAXHOST] = {}, port[NI_MAXSERV] = {};
  ::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof(host), port, sizeof(port),
                NI_NUMERICHOST | NI_NUMERICSERV);
  return fmt::format("{}:{}", host, port);
}

class TcpRendezvous final : public Rendezvous {
 public:
  explicit TcpRendezvous(TcpRendezvousOptions o) : o_(std::move(o)) {}

  Result<std::vector<Blob>> AllGather(const Blob& mine) override {
    if (o_.world_size == 0 || o_.rank >= o_.world_size) {
      return Status::InvalidArgument(
          fmt::format("rank {} outside a world of {}", o_.rank, o_.world_size));
    }
    if (mine.size() > kMaxBlobBytes) return Status::InvalidArgument("rendezvous blob too large");
    if (o_.world_size == 1) return std::vector<Blob>{mine};
    if (o_.port == 0) {
      return Status::InvalidArgument("rendezvous port is 0: set SHOAL_RENDEZVOUS_PORT or "
                                     "MASTER_PORT (docs/bootstrap.md)");
    }
    auto deadline = Clock::now() + o_.timeout;
    return o_.rank == 0 ? Host(mine, deadline) : Join(mine, deadline);
  }

 private:
  struct Client {
    Fd fd;
    Nonce cn{}, sn{};
  };

  Result<std::vector<Blob>> Host(const Blob& mine, Clock::time_point deadline) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* res = nullptr;
    std::string port = std::to_string(o_.port);
    int rc = ::getaddrinfo(o_.bind_addr.empty() ? nullptr : o_.bind_addr.c_str(), port.c_str(),
                           &hints, &res);
    if (rc != 0) {
      return Status::InvalidArgument(fmt::format("rendezvous bind address: {}", gai_strerror(rc)));
    }
    Fd listener(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    ::setsockopt(listener.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    rc = listener.fd < 0 ? -1 : ::bind(listener.fd, res->ai_addr, res->ai_addrlen);
    int err = errno;
    ::freeaddrinfo(res);
    if (rc != 0) {
      return ErrnoStatus(err, fmt::format("rendezvous: listening on port {} (choose another "
                                          "with SHOAL_RENDEZVOUS_PORT)", o_.port));
    }
    if (::listen(listener.fd, 128) != 0) return ErrnoStatus(errno, "listen");
    Log(LogLevel::kInfo, "rendezvous: rank 0 hosting on port {} for {} members", o_.port,
        o_.world_size);

    std::vector<Blob> table(o_.world_size);
    std::vector<Client> clients(o_.world_size);
    std::vector<bool> have(o_.world_size, false);
    table[0] = mine;
    have[0] = true;
    uint32_t count = 1;
    while (count < o_.world_size) {
      Status s = WaitFd(listener.fd, POLLIN, deadline, "waiting for members");
      if (!s.ok()) {
        std::string missing;
        for (uint32_t r = 0; r < o_.world_size; ++r) {
          if (!have[r]) missing += (missing.empty() ? "" : ",") + std::to_string(r);
        }
        for (auto& c : clients) {
          if (c.fd.fd >= 0) {
            std::string why = "rendezvous timed out waiting for ranks " + missing;
            (void)SendFrame(c.fd.fd, 'R', AsBytes(why), Clock::now() + std::chrono::seconds(1));
          }
        }
        return Status::Timeout(fmt::format("rendezvous: ranks {} never joined", missing));
      }
      Fd fd(::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC));
      if (fd.fd < 0) continue;
      ::setsockopt(fd.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      // A slow or hostile client gets a bounded slice of time, not the whole deadline.
      auto hs_deadline = std::min(deadline, Clock::now() + std::chrono::seconds(10));
      uint32_t rank = 0;
      Blob blob;
      Client c;
      Status hs = Handshake(fd.fd, hs_deadline, &c, &rank, &blob, have);
      if (!hs.ok()) {
        Log(LogLevel::kWarn, "rendezvous: refused {}: {}", PeerName(fd.fd), hs.message());
        if (hs.code() == Code::kPermissionDenied || hs.code() == Code::kInvalidArgument) {
          (void)SendFrame(fd.fd, 'R', AsBytes(hs.message()), hs_deadline);
        }
        continue;
      }
      c.fd = std::move(fd);
      table[rank] = std::move(blob);
      clients[rank] = std::move(c);
      have[rank] = true;
      ++count;
    }
    Blob encoded = EncodeTable(table);
    for (uint32_t r = 1; r < o_.world_size; ++r) {
      Client& c = clients[r];
      Mac tmac = TokenMac(o_.token, kTableLabel, {c.cn, c.sn, encoded});
      Blob body = Concat({tmac, encoded});
      Status s = SendFrame(c.fd.fd, 'T', body, deadline);
      if (!s.ok()) return s.WithContext(fmt::format("rendezvous: sending the table to rank {}", r));
    }
    return table;
  }

  Status Handshake(int fd, Clock::time_point deadline, Client* c, uint32_t* rank, Blob* blob,
                   const std::vector<bool>& have) {
    char tag = 0;
    SHOAL_ASSIGN_OR_RETURN(Blob hello, RecvFrame(fd, &tag, deadline));
    if (tag != 'H' || hello.size() != c->cn.size()) {
      return Status::InvalidArgument("not a shoal rendezvous hello");
    }
    std::memcpy(c->cn.data(), hello.data(), c->cn.size());
    c->sn = NewNonce();
    Mac smac = TokenMac(o_.token, kServerLabel, {c->cn, c->sn});
    Blob challenge = Concat({c->sn, smac});
    SHOAL_RETURN_IF_ERROR(SendFrame(fd, 'C', challenge, deadline));
    auto join = RecvFrame(fd, &tag, deadline);
    if (!join.ok()) {
      return Status::Unavailable(
          "left during the token handshake (most likely it holds another job token)");
    }
    ByteReader r(*join);
    std::span<const std::byte> cmac_bytes, rest;
    uint32_t world = 0;
    if (tag != 'J' || !r.Raw(32, &cmac_bytes) || !r.Get(rank) || !r.Get(&world)) {
      return Status::InvalidArgument("malformed join");
    }
    Mac cmac;
    std::memcpy(cmac.data(), cmac_bytes.data(), 32);
    if (!MacEqual(cmac, TokenMac(o_.token, kClientLabel, {c->sn, c->cn}))) {
      return Status::PermissionDenied(fmt::format("rank {} does not hold the job token", *rank));
    }
    if (world != o_.world_size) {
      return Status::InvalidArgument(fmt::format("rank {} expects a world of {}, this one has {}",
                                                 *rank, world, o_.world_size));
    }
    if (*rank == 0 || *rank >= o_.world_size || have[*rank]) {
      return Status::InvalidArgument(fmt::format("rank {} is invalid or already joined", *rank));
    }
    if (r.left() > kMaxBlobBytes || !r.Raw(r.left(), &rest)) {
      return Status::InvalidArgument("blob too large");
    }
    blob->assign(rest.begin(), rest.end());
    return Status::OK();
  }

  Result<std::vector<Blob>> Join(const Blob& mine, Clock::time_point deadline) {
    Fd fd;
    std::string where = fmt::format("{}:{}", o_.host, o_.port);
    Status last;
    while (true) {
      fd = Fd(Connect(&last));
      if (fd.fd >= 0) break;
      if (Clock::now() >= deadline) {
        return Status::Timeout(fmt::format("rendezvous: could not reach rank 0 at {}: {}", where,
                                           last.message()));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    Nonce cn = NewNonce();
    SHOAL_RETURN_IF_ERROR(SendFrame(fd.fd, 'H', cn, deadline));
    char tag = 0;
    SHOAL_ASSIGN_OR_RETURN(Blob ch, RecvFrame(fd.fd, &tag, deadline));
    if (tag != 'C' || ch.size() != 64) {
      return Status::InvalidArgument(fmt::format("rendezvous: {} is not a shoal rank 0", where));
    }
    Nonce sn;
    Mac smac;
    std::memcpy(sn.data(), ch.data(), 32);
    std::memcpy(smac.data(), ch.data() + 32, 32);
    if (!MacEqual(smac, TokenMac(o_.token, kServerLabel, {cn, sn}))) {
      return Status::PermissionDenied(fmt::format(
          "rendezvous: rank 0 at {} does not hold this job token (is SHOAL_TOKEN the same on "
          "every rank?)", where));
    }
    Mac cmac = TokenMac(o_.token, kClientLabel, {sn, cn});
    Blob join = Concat({cmac, BytesOf(o_.rank), BytesOf(o_.world_size), mine});
    SHOAL_RETURN_IF_ERROR(SendFrame(fd.fd, 'J', join, deadline));
    SHOAL_ASSIGN_OR_RETURN(Blob resp, RecvFrame(fd.fd, &tag, deadline));
    if (tag == 'R') {
      std::string why(reinterpret_cast<const char*>(resp.data()), resp.size());
      Status refused = why.find("job token") != std::string::npos
                           ? Status::PermissionDenied("rendezvous refused this rank: " + why)
                           : Status::InvalidArgument("rendezvous refused this rank: " + why);
      if (why.find("timed out") != std::string::npos) refused = Status::Timeout(why);
      return refused;
    }
    if (tag != 'T' || resp.size() < 32) return Status::InvalidArgument("rendezvous: bad table");
    Mac tmac;
    std::memcpy(tmac.data(), resp.data(), 32);
    std::span<const std::byte> encoded(resp.data() + 32, resp.size() - 32);
    if (!MacEqual(tmac, TokenMac(o_.token, kTableLabel, {cn, sn, encoded}))) {
      return Status::PermissionDenied("rendezvous: the member table fails its token MAC");
    }
    SHOAL_ASSIGN_OR_RETURN(auto table, DecodeTable(encoded, o_.world_size));
    if (table[o_.rank] != mine) return Status::InvalidArgument("rendezvous: table lost my entry");
    return table;
  }

  int Connect(Status* last) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    std::string port = std::to_string(o_.port);
    int rc = ::getaddrinfo(o_.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) {
      *last = Status::Unavailable(gai_strerror(rc));
      return -1;
    }
    int fd = -1;
    for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
      fd = ::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
      *last = ErrnoStatus(errno, "connect");
      ::close(fd);
      fd = -1;
    }
    ::freeaddrinfo(res);
    if (fd >= 0) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
  }

  TcpRendezvousOptions o_;
};

class FileRendezvous final : public Rendezvous {
 public:
  FileRendezvous(std::string dir, uint32_t rank, uint32_t world, std::string token,
                 std::chrono::milliseconds timeout)
      : dir_(std::move(dir)), rank_(rank), world_(world), token_(std::move(token)),
        timeout_(timeout) {}

  Result<std::vector<Blob>> AllGather(const Blob& mine) override {
    if (world_ == 0 || rank_ >= world_) {
      return Status::InvalidArgument(fmt::format("rank {} outside a world of {}", rank_, world_));
    }
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    uint32_t r = rank_;
    Mac mac = TokenMac(token_, kFileLabel, {BytesOf(r), mine});
    std::string path = Path(rank_), tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary);
      out.write(reinterpret_cast<const char*>(mac.data()), 32);
      out.write(reinterpret_cast<const char*>(mine.data()), static_cast<std::streamsize>(mine.size()));
      if (!out) return Status::IOError("rendezvous: writing " + tmp);
    }
    std::filesystem::rename(tmp, path, ec);
    if (ec) return Status::IOError("rendezvous: " + ec.message());
    auto deadline = Clock::now() + timeout_;
    std::vector<Blob> table(world_);
    for (uint32_t i = 0; i < world_; ++i) {
      while (!std::filesystem::exists(Path(i))) {
        if (Clock::now() >= deadline) {
          return Status::Timeout(fmt::format("rendezvous: member {} never wrote {}", i, Path(i)));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      std::ifstream in(Path(i), std::ios::binary);
      std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      auto* rp = reinterpret_cast<const std::byte*>(raw.data());
      Blob b(rp, rp + raw.size());
      if (b.size() < 32 || b.size() > 32 + kMaxBlobBytes) {
        return Status::InvalidArgument(fmt::format("rendezvous: {} is malformed", Path(i)));
      }
      Mac got;
      std::memcpy(got.data(), b.data(), 32);
      Blob blob(b.begin() + 32, b.end());
      if (!MacEqual(got, TokenMac(token_, kFileLabel, {BytesOf(i), blob}))) {
        return Status::PermissionDenied(
            fmt::format("rendezvous: {} was not written with this job token", Path(i)));
      }
      table[i] = std::move(blob);
    }
    return table;
  }

 private:
  std::string Path(uint32_t r) const { return fmt::format("{}/member-{}", dir_, r); }
  std::string dir_;
  uint32_t rank_, world_;
  std::string token_;
  std::chrono::milliseconds timeout_;
};

class CallbackRendezvous final : public Rendezvous {
 public:
  CallbackRendezvous(AllGatherFn fn, uint32_t world) : fn_(std::move(fn)), world_(world) {}
  Result<std::vector<Blob>> AllGather(const Blob& mine) override {
    SHOAL_ASSIGN_OR_RETURN(auto table, fn_(mine));
    if (table.size() != world_) {
      return Status::InvalidArgument(fmt::format("all-gather returned {} entries for a world of {}",
                                                 table.size(), world_));
    }
    return table;
  }

 private:
  AllGatherFn fn_;
  uint32_t world_;
};

}  // namespace

std::unique_ptr<Rendezvous> NewTcpRendezvous(const TcpRendezvousOptions& options) {
  return std::make_unique<TcpRendezvous>(options);
}

std::unique_ptr<Rendezvous> NewFileRendezvous(std::string dir, uint32_t rank, uint32_t world_size,
                                              std::string token,
                                              std::chrono::milliseconds timeout) {
  return std::make_unique<FileRendezvous>(std::move(dir), rank, world_size, std::move(token),
                                          timeout);
}

std::unique_ptr<Rendezvous> NewCallbackRendezvous(AllGatherFn fn, uint32_t world_size) {
  return std::make_unique<CallbackRendezvous>(std::move(fn), world_size);
}

}  // namespace shoal::transport
