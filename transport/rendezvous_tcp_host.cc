// The TCP rendezvous hosted in rank 0: one poll loop serving every connection at once, each a
// small state machine (hello, join, joined) with its own handshake deadline.
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <list>
#include <memory>
#include <thread>

#include "base/bytes.h"
#include "base/errno_status.h"
#include "base/fork_closed_fds.h"
#include "base/log.h"
#include "transport/job_token.h"
#include "transport/rendezvous_tcp.h"
#include "transport/rendezvous_wire.h"

namespace shoal::transport {
namespace {

std::string PeerName(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[NI_MAXHOST] = {}, port[NI_MAXSERV] = {};
  ::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof(host), port, sizeof(port),
                NI_NUMERICHOST | NI_NUMERICSERV);
  return fmt::format("{}:{}", host, port);
}

// Time a connection gets, from accept, to complete the token handshake and its join.
constexpr auto kHandshakeTime = std::chrono::seconds(5);
// Connections in the handshake at once; past it the oldest is dropped (a legitimate rank's
// handshake takes milliseconds, so the oldest are the idle and the stalled).
constexpr size_t kMaxPending = 256;
// Bytes of one hello frame (length, tag, client nonce), and the most a join frame may hold.
constexpr size_t kHelloFrame = 4 + 1 + sizeof(Nonce);
constexpr size_t kMaxJoinFrame = 4 + 1 + sizeof(Mac) + 8 + kMaxBlobBytes;
// How often joined ranks hear which ranks are still missing.
constexpr auto kProgressEvery = std::chrono::seconds(1);
// Ranks named in one progress report.
constexpr uint32_t kMaxReported = 64;

class TcpHost final : public FormedHost {
 public:
  explicit TcpHost(const TcpRendezvousOptions& o) : o_(o) {}
  ~TcpHost() override {
    if (serving_.joinable()) {
      const char b = 1;
      (void)!::write(stop_[1], &b, 1);
      serving_.join();
    }
    ForgetInForkedChildren(listener_.fd);  // closed with listener_
    for (int fd : stop_) {
      if (fd >= 0) ::close(fd);
    }
  }

  void ServeObservers(std::function<Blob()> info) override {
    if (!formed_ || serving_.joinable()) return;
    if (::pipe2(stop_, O_CLOEXEC) != 0) {
      Log(LogLevel::kWarn, "rendezvous: observers not served: {}",
          ErrnoStatus(errno, "pipe").message());
      return;
    }
    info_ = std::move(info);
    serving_ = std::thread([this] { ServeLoop(); });
  }

  Result<std::vector<Blob>> Host(const Blob& mine, Clock::time_point deadline) {
    auto started = Clock::now();
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
    listener_ = Fd(::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    Fd& listener = listener_;
    // Kept for the engine's lifetime (observers): a forked child must not keep the port
    // listening after this process closes it (base/fork_closed_fds.h).
    CloseInForkedChildren(listener.fd);
    int one = 1;
    ::setsockopt(listener.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    rc = listener.fd < 0 ? -1 : ::bind(listener.fd, res->ai_addr, res->ai_addrlen);
    int err = errno;
    ::freeaddrinfo(res);
    if (rc != 0) {
      return ErrnoStatus(err, fmt::format("rendezvous: listening on port {} (choose another "
                                          "with SHOAL_RENDEZVOUS_PORT)", o_.port));
    }
    if (::listen(listener.fd, 1024) != 0) return ErrnoStatus(errno, "listen");
    Log(LogLevel::kInfo, "rendezvous: rank 0 hosting on port {} for {} members", o_.port,
        o_.world_size);

    Hosting h;
    h.table.resize(o_.world_size);
    h.have.assign(o_.world_size, false);
    h.left.assign(o_.world_size, false);
    h.table[0] = mine;
    h.have[0] = true;
    Clock::time_point accept_paused_until{};
    std::vector<pollfd> fds;
    std::vector<Conn*> polled;

    while (h.count < o_.world_size) {
      auto now = Clock::now();
      if (now >= deadline) {
        std::string why = WhyMissing(h);
        Linger(h, fmt::format("rendezvous timed out after {} ms: {}", o_.timeout.count(), why));
        return Status::Timeout(fmt::format("rendezvous: {} within {} ms", why, o_.timeout.count()));
      }
      // Progress for the joined, at most once a kProgressEvery.
      if (h.changed && now - h.last_progress >= kProgressEvery) {
        Blob p = Progress(h);
        for (Conn& c : h.conns) {
          if (c.state == Conn::kJoined && c.out.size() < 65536) c.Queue('P', p);
        }
        h.changed = false;
        h.last_progress = now;
      }
      // Expired handshakes and lingers end; the oldest pending go past the cap.
      size_t pending = 0;
      for (auto it = h.conns.begin(); it != h.conns.end();) {
        if (it->state != Conn::kJoined && now >= it->deadline) {
          if (it->state != Conn::kClosing) {
            Log(LogLevel::kInfo, "rendezvous: dropped {}: no complete handshake within {} s",
                it->peer, kHandshakeTime.count());
          }
          it = h.conns.erase(it);
          continue;
        }
        if (it->state != Conn::kJoined) ++pending;
        ++it;
      }

      fds.clear();
      polled.clear();
      Clock::time_point wake = std::min(deadline, now + kProgressEvery);
      bool accepting = now >= accept_paused_until;
      fds.push_back({listener.fd, static_cast<short>(accepting ? POLLIN : 0), 0});
      polled.push_back(nullptr);
      if (!accepting) wake = std::min(wake, accept_paused_until);
      wake = PollConns(h, &fds, &polled, wake);
      int n = ::poll(fds.data(), fds.size(), Remaining(wake));
      if (n < 0 && errno != EINTR) return ErrnoStatus(errno, "rendezvous: poll");
      if (n <= 0) continue;

      Turn(h, fds, polled, 1);
      if (fds[0].revents & POLLIN) Accept(h, &pending, &accept_paused_until, deadline);
    }

    // Everyone is here: the table to every rank, with a MAC bound to its handshake.
    Blob encoded = EncodeTable(h.table);
    for (Conn& c : h.conns) {
      if (c.state != Conn::kJoined) continue;
      Mac tmac = TokenMac(o_.token, kTableLabel, {c.cn, c.sn, encoded});
      c.Compact();  // keep a progress frame already begun: the stream must stay whole
      c.Queue('T', Concat({tmac, encoded}));
    }
    auto send_deadline = std::max(deadline, Clock::now() + std::chrono::seconds(10));
    for (Conn& c : h.conns) {
      if (c.state != Conn::kJoined) continue;
      // Blocking sends from here: each rank reads its table at once.
      int flags = ::fcntl(c.fd.fd, F_GETFL);
      ::fcntl(c.fd.fd, F_SETFL, flags & ~O_NONBLOCK);
      Status s = SendAll(c.fd.fd, c.out.data(), c.out.size(), send_deadline);
      if (!s.ok()) {
        return s.WithContext(fmt::format("rendezvous: sending the table to rank {}", c.rank));
      }
    }
    Log(LogLevel::kInfo, "rendezvous: {} members joined in {} ms", o_.world_size,
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
    formed_ = true;
    table_ = h.table;
    return std::move(h.table);
  }

 private:
  // One TCP connection to the host, from accept to close. Non-blocking; the host's poll loop
  // moves it through its states. Input is buffered up to one frame of the size its state
  // allows, output until sent.
  struct Conn {
    enum State { kHello, kJoin, kJoined, kClosing } state = kHello;
    Fd fd;
    std::string peer;
    Clock::time_point deadline;  // kHello/kJoin: the handshake's; kClosing: the linger's
    Clock::time_point accepted;
    Blob in, out;
    size_t out_sent = 0;
    Nonce cn{}, sn{};
    bool mac_checked = false;
    uint32_t rank = 0;

    void Queue(char tag, std::span<const std::byte> body) {
      Blob f = Frame(tag, body);
      out.insert(out.end(), f.begin(), f.end());
    }
    // Sends what the socket takes now. False when the connection failed.
    bool Flush() {
      while (out_sent < out.size()) {
        ssize_t k = ::send(fd.fd, out.data() + out_sent, out.size() - out_sent, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
        if (k <= 0) return false;
        out_sent += static_cast<size_t>(k);
      }
      out.clear();
      out_sent = 0;
      return true;
    }
    bool Pending() const { return out_sent < out.size(); }
    void Compact() {
      out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(out_sent));
      out_sent = 0;
    }
  };

  // The host's state while the world forms.
  struct Hosting {
    std::vector<Blob> table;
    std::vector<bool> have;
    std::vector<bool> left;      // joined, then closed its connection before the table
    std::vector<int> conn_of;    // rank -> index in conns (-1: none)
    std::list<Conn> conns;
    uint32_t count = 1;
    bool changed = true;
    Clock::time_point last_progress{};
  };

  // Appends every connection to the poll set (what it waits for: input unless closing, output
  // while some is queued) and returns `wake` moved up to the earliest handshake or linger
  // deadline (a joined rank has none).
  static Clock::time_point PollConns(Hosting& h, std::vector<pollfd>* fds,
                                     std::vector<Conn*>* polled, Clock::time_point wake) {
    for (Conn& c : h.conns) {
      short ev = c.Pending() ? POLLOUT : 0;
      if (c.state != Conn::kClosing) ev |= POLLIN;
      fds->push_back({c.fd.fd, ev, 0});
      polled->push_back(&c);
      if (c.state != Conn::kJoined) wake = std::min(wake, c.deadline);
    }
    return wake;
  }

  // One turn of the poll loop for the connections (fds[first..] are polled[first..]): reads
  // what arrived, advances handshakes, sends what is queued, and removes the connections that
  // ended (a joined rank's place is free again).
  void Turn(Hosting& h, const std::vector<pollfd>& fds, const std::vector<Conn*>& polled,
            size_t first) {
    std::vector<Conn*> dead;
    for (size_t i = first; i < fds.size(); ++i) {
      Conn& c = *polled[i];
      short re = fds[i].revents;
      if (re == 0) continue;
      bool alive = true;
      if (re & (POLLIN | POLLHUP | POLLERR)) {
        if (c.state == Conn::kHello) {
          alive = Fill(c, kHelloFrame);
        } else if (c.state == Conn::kJoin) {
          size_t cap = 5 + sizeof(Mac) + 4;
          if (c.mac_checked && c.in.size() >= 4) {
            uint32_t len = 0;
            std::memcpy(&len, c.in.data(), 4);
            cap = std::min<size_t>(4 + size_t{len}, kMaxJoinFrame);
          }
          alive = Fill(c, cap);
        } else if (c.state == Conn::kJoined) {
          // A joined rank sends nothing more: readable means it closed (gave up) or broke
          // the protocol. Either way its place is free again.
          std::byte b[256];
          ssize_t k = ::recv(c.fd.fd, b, sizeof(b), 0);
          if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) alive = false;
        }
        if (alive && c.state != Conn::kJoined && c.state != Conn::kClosing) {
          Advance(h, c);
          // The join frame may have arrived with its MAC: take the rest in the same turn.
          if (c.state == Conn::kJoin && c.mac_checked) {
            uint32_t len = 0;
            if (c.in.size() >= 4) std::memcpy(&len, c.in.data(), 4);
            alive = Fill(c, std::min<size_t>(4 + size_t{len}, kMaxJoinFrame));
            if (alive) Advance(h, c);
          }
        }
      }
      if (alive && c.Pending()) alive = c.Flush();
      if (alive && c.state == Conn::kClosing && !c.Pending()) alive = false;
      if (!alive) dead.push_back(&c);
    }
    for (Conn* d : dead) {
      if (d->state == Conn::kJoined) {
        Log(LogLevel::kWarn, "rendezvous: rank {} ({}) closed its connection before the world "
            "formed; waiting for it again", d->rank, d->peer);
        h.have[d->rank] = false;
        h.left[d->rank] = true;
        h.table[d->rank].clear();
        --h.count;
        h.changed = true;
      }
      h.conns.remove_if([d](const Conn& c) { return &c == d; });
    }
  }

  // Takes every connection waiting on the listener now; *pending counts those in their
  // handshake (the oldest go past kMaxPending).
  void Accept(Hosting& h, size_t* pending, Clock::time_point* paused_until,
              Clock::time_point deadline) {
    int one = 1;
    while (true) {
      int fd = ::accept4(listener_.fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          if (!DropOldestPending(h)) *paused_until = Clock::now() + std::chrono::milliseconds(100);
        }
        break;
      }
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      Conn& c = h.conns.emplace_back();
      c.fd = Fd(fd);
      c.peer = PeerName(fd);
      c.accepted = Clock::now();
      c.deadline = std::min(deadline, c.accepted + kHandshakeTime);
      if (++*pending > kMaxPending) {
        DropOldestPending(h);
        --*pending;
      }
    }
  }

  // After the world formed (ServeObservers): the same poll loop over the same listener, for
  // observers and late joiners only, until the stop pipe is written.
  void ServeLoop() {
    Hosting h;
    h.count = o_.world_size;
    Clock::time_point paused_until{};
    const auto never = Clock::now() + std::chrono::hours(24 * 365 * 10);
    std::vector<pollfd> fds;
    std::vector<Conn*> polled;
    while (true) {
      auto now = Clock::now();
      size_t pending = 0;
      for (auto it = h.conns.begin(); it != h.conns.end();) {
        if (now >= it->deadline) {
          if (it->state != Conn::kClosing) {
            Log(LogLevel::kInfo, "rendezvous: dropped {}: no complete handshake within {} s",
                it->peer, kHandshakeTime.count());
          }
          it = h.conns.erase(it);
          continue;
        }
        ++pending;
        ++it;
      }
      fds.clear();
      polled.clear();
      const bool accepting = now >= paused_until;
      fds.push_back({stop_[0], POLLIN, 0});
      fds.push_back({listener_.fd, static_cast<short>(accepting ? POLLIN : 0), 0});
      polled.assign(2, nullptr);
      Clock::time_point wake = now + std::chrono::seconds(1);
      if (!accepting) wake = std::min(wake, paused_until);
      wake = PollConns(h, &fds, &polled, wake);
      int n = ::poll(fds.data(), fds.size(), Remaining(wake));
      if (n < 0 && errno != EINTR) {
        Log(LogLevel::kWarn, "rendezvous: observers no longer served: {}",
            ErrnoStatus(errno, "poll").message());
        return;
      }
      if (n <= 0) continue;
      if (fds[0].revents != 0) return;
      Turn(h, fds, polled, 2);
      if (fds[1].revents & POLLIN) Accept(h, &pending, &paused_until, never);
    }
  }

  // An observer's frame ('O', its MAC): answered with the world once the token checks out.
  void Observe(Hosting& h, Conn& c, uint32_t len) {
    if (len != 1 + sizeof(Mac)) {
      return Refuse(c, Status::InvalidArgument("malformed observe"), true);
    }
    if (c.in.size() < 4 + size_t{len}) return;
    Mac cmac;
    std::memcpy(cmac.data(), c.in.data() + 5, cmac.size());
    if (!MacEqual(cmac, TokenMac(o_.token, kObserverLabel, {c.sn, c.cn}))) {
      return Refuse(c, Status::PermissionDenied("an observer does not hold the job token"), true);
    }
    if (!formed_) {
      return Refuse(c, Status::FailedPrecondition(fmt::format(
                           "the world is still forming: {} of {} ranks joined", h.count,
                           o_.world_size)), true);
    }
    const Blob info = info_ ? info_() : Blob{};
    const Blob world = EncodeWorld(table_, info);
    Mac wmac = TokenMac(o_.token, kWorldLabel, {c.cn, c.sn, world});
    c.Queue('W', Concat({wmac, world}));
    Blob().swap(c.in);
    c.state = Conn::kClosing;
    c.deadline = Clock::now() + kHandshakeTime;
    Log(LogLevel::kDebug, "rendezvous: observer {} served", c.peer);
  }

  // A rank that proved the token and asked to join after the world formed.
  void TooLate(Conn& c, uint32_t rank) {
    const std::string why = fmt::format(
        "rank 0 on this port serves a world of {} ranks that formed already: rank {} can join "
        "only the next Open of the job (is an earlier job still running on this port?)",
        o_.world_size, rank);
    Log(LogLevel::kInfo, "rendezvous: {} asked to join as rank {} after the world formed",
        c.peer, rank);
    c.Queue('F', AsBytes(why));
    Blob().swap(c.in);
    c.state = Conn::kClosing;
    c.deadline = Clock::now() + std::chrono::seconds(1);
  }

  void Refuse(Conn& c, const Status& why, bool tell) {
    Log(why.code() == Code::kPermissionDenied ? LogLevel::kWarn : LogLevel::kInfo,
        "rendezvous: refused {}: {}", c.peer, why.message());
    if (tell) c.Queue('R', AsBytes(why.message()));
    c.state = Conn::kClosing;
    c.deadline = Clock::now() + std::chrono::seconds(1);
  }

  // Takes what a frame needs from the socket. Returns false when the peer closed or failed.
  static bool Fill(Conn& c, size_t cap) {
    std::byte buf[4096];
    while (c.in.size() < cap) {
      size_t want = std::min(sizeof(buf), cap - c.in.size());
      ssize_t k = ::recv(c.fd.fd, buf, want, 0);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      if (k <= 0) return false;
      c.in.insert(c.in.end(), buf, buf + k);
    }
    return true;
  }

  // Advances a connection in the handshake after input arrived.
  void Advance(Hosting& h, Conn& c) {
    if (c.state == Conn::kHello) {
      if (c.in.size() < kHelloFrame) return;
      uint32_t len = 0;
      std::memcpy(&len, c.in.data(), 4);
      if (len != 1 + sizeof(Nonce) || static_cast<char>(c.in[4]) != 'H') {
        return Refuse(c, Status::InvalidArgument("not a shoal rendezvous hello"), false);
      }
      std::memcpy(c.cn.data(), c.in.data() + 5, c.cn.size());
      c.in.clear();
      c.sn = NewNonce();
      Mac smac = TokenMac(o_.token, kServerLabel, {c.cn, c.sn});
      c.Queue('C', Concat({c.sn, smac}));
      c.state = Conn::kJoin;
      return;
    }
    if (c.state != Conn::kJoin || c.in.size() < 5) return;
    uint32_t len = 0;
    std::memcpy(&len, c.in.data(), 4);
    if (static_cast<char>(c.in[4]) == 'O') return Observe(h, c, len);
    if (static_cast<char>(c.in[4]) != 'J' || len < 1 + sizeof(Mac) + 8 ||
        len > kMaxJoinFrame - 4) {
      return Refuse(c, Status::InvalidArgument("malformed join"), true);
    }
    // The MAC comes first: only a peer holding the token may make the host buffer a large blob.
    if (!c.mac_checked && c.in.size() >= 5 + sizeof(Mac) + 4) {
      Mac cmac;
      std::memcpy(cmac.data(), c.in.data() + 5, cmac.size());
      uint32_t rank = 0;
      std::memcpy(&rank, c.in.data() + 5 + sizeof(Mac), 4);
      if (!MacEqual(cmac, TokenMac(o_.token, kClientLabel, {c.sn, c.cn}))) {
        return Refuse(c, Status::PermissionDenied(
                             fmt::format("rank {} does not hold the job token", rank)), true);
      }
      if (formed_) return TooLate(c, rank);
      c.mac_checked = true;
    }
    if (c.in.size() < 4 + size_t{len}) return;
    ByteReader r(std::span<const std::byte>(c.in).subspan(5, len - 1));
    std::span<const std::byte> mac, rest;
    uint32_t rank = 0, world = 0;
    (void)r.Raw(sizeof(Mac), &mac);
    (void)r.Get(&rank);
    (void)r.Get(&world);
    if (world != o_.world_size) {
      return Refuse(c, Status::InvalidArgument(fmt::format(
                           "rank {} expects a world of {}, this one has {}", rank, world,
                           o_.world_size)), true);
    }
    if (rank == 0 || rank >= o_.world_size || h.have[rank]) {
      return Refuse(c, Status::InvalidArgument(
                           fmt::format("rank {} is invalid or already joined", rank)), true);
    }
    (void)r.Raw(r.left(), &rest);
    h.table[rank].assign(rest.begin(), rest.end());
    Blob().swap(c.in);
    c.rank = rank;
    c.state = Conn::kJoined;
    h.have[rank] = true;
    h.left[rank] = false;
    ++h.count;
    h.changed = true;
    Log(LogLevel::kDebug, "rendezvous: rank {} joined from {} ({} of {})", rank, c.peer, h.count,
        o_.world_size);
    if (h.count < o_.world_size) c.Queue('P', Progress(h));  // tell the newcomer at once
  }

  // Progress report: how many ranks are missing, then up to kMaxReported of them.
  Blob Progress(const Hosting& h) const {
    ByteWriter w;
    w.Put<uint32_t>(o_.world_size - h.count);
    uint32_t n = 0;
    for (uint32_t r = 0; r < o_.world_size && n < kMaxReported; ++r) {
      if (!h.have[r]) {
        w.Put<uint32_t>(r);
        ++n;
      }
    }
    return w.Take();
  }

  // "ranks 2 never joined; ranks 1 joined, then gave up (closed their connection)".
  std::string WhyMissing(const Hosting& h) const {
    std::vector<bool> not_never(o_.world_size), not_left(o_.world_size);
    bool never = false, left = false;
    for (size_t r = 0; r < o_.world_size; ++r) {
      not_never[r] = h.have[r] || h.left[r];
      not_left[r] = !h.left[r];
      never = never || !not_never[r];
      left = left || h.left[r];
    }
    std::string why;
    if (never) why = fmt::format("ranks {} never joined", MissingRanks(not_never));
    if (left) {
      why += fmt::format("{}ranks {} joined, then gave up (closed their connection)",
                         why.empty() ? "" : "; ", MissingRanks(not_left));
    }
    return why;
  }

  // Drops the connection longest in its handshake. False when none is.
  static bool DropOldestPending(Hosting& h) {
    auto oldest = h.conns.end();
    for (auto it = h.conns.begin(); it != h.conns.end(); ++it) {
      if (it->state == Conn::kJoined) continue;
      if (oldest == h.conns.end() || it->accepted < oldest->accepted) oldest = it;
    }
    if (oldest == h.conns.end()) return false;
    Log(LogLevel::kInfo, "rendezvous: dropped {}: too many connections in their handshake",
        oldest->peer);
    h.conns.erase(oldest);
    return true;
  }

  // Tells every joined rank why the world will not form, for at most a second.
  void Linger(Hosting& h, const std::string& why) {
    auto until = Clock::now() + std::chrono::seconds(1);
    for (Conn& c : h.conns) {
      if (c.state != Conn::kJoined) continue;
      c.Compact();  // keep a progress frame already begun: the stream must stay whole
      c.Queue('R', AsBytes(why));
      int flags = ::fcntl(c.fd.fd, F_GETFL);
      ::fcntl(c.fd.fd, F_SETFL, flags & ~O_NONBLOCK);
      (void)SendAll(c.fd.fd, c.out.data(), c.out.size(), until);
    }
  }

  const TcpRendezvousOptions& o_;
  Fd listener_;
  // Set once the table went out; from then on only ServeLoop's thread uses the connections.
  bool formed_ = false;
  std::vector<Blob> table_;
  std::function<Blob()> info_;
  int stop_[2] = {-1, -1};
  std::thread serving_;
};

}  // namespace

Result<std::vector<Blob>> HostTcpRendezvous(const TcpRendezvousOptions& o, const Blob& mine,
                                            Clock::time_point deadline,
                                            std::unique_ptr<FormedHost>* formed) {
  auto host = std::make_unique<TcpHost>(o);
  auto table = host->Host(mine, deadline);
  if (table.ok() && formed != nullptr) *formed = std::move(host);
  return table;
}

}  // namespace shoal::transport
