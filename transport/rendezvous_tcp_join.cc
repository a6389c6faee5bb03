// The TCP rendezvous from a rank above 0: connect to rank 0 (again while time is left), prove
// the job token both ways, join, then wait for the member table, hearing who is still missing.
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
#include <thread>

#include "base/bytes.h"
#include "base/errno_status.h"
#include "transport/job_token.h"
#include "transport/rendezvous_tcp.h"
#include "transport/rendezvous_wire.h"

namespace shoal::transport {
namespace {

class TcpJoiner {
 public:
  explicit TcpJoiner(const TcpRendezvousOptions& o) : o_(o) {}

  Result<std::vector<Blob>> Join(const Blob& mine, Clock::time_point deadline) {
    auto r = Attempts<std::vector<Blob>>(
        deadline,
        [&](int fd, const std::string& where, bool* retry) {
          return JoinOnce(fd, mine, deadline, where, retry);
        },
        [&](const std::string& where, const Status& last) {
          return fmt::format("rendezvous: rank {} could not reach rank 0 at {} within {} ms: {}",
                             o_.rank, where, o_.timeout.count(), last.message());
        });
    // A formed world that answered says more than whichever attempt the deadline cut short
    // (a connect, a handshake, or the wait for a table).
    if (!r.ok() && r.status().code() == Code::kTimeout && !formed_.empty()) {
      return Status::Timeout(fmt::format("rendezvous: rank {} gave up after {} ms: {}", o_.rank,
                                         o_.timeout.count(), formed_));
    }
    return r;
  }

  Result<ObservedWorld> Observe(Clock::time_point deadline) {
    return Attempts<ObservedWorld>(
        deadline,
        [&](int fd, const std::string& where, bool* retry) {
          return ObserveOnce(fd, deadline, where, retry);
        },
        [&](const std::string& where, const Status& last) {
          return fmt::format("rendezvous: no world answered at {} within {} ms: {}", where,
                             o_.timeout.count(), last.message());
        });
  }

 private:
  // Runs `once` on fresh connections to rank 0 until it succeeds, fails for good (its *retry
  // left false), or the deadline passes: Timeout with `why(where, last failure)`.
  template <typename T, typename Once, typename Why>
  Result<T> Attempts(Clock::time_point deadline, Once&& once, Why&& why) {
    std::string where = fmt::format("{}:{}", o_.host, o_.port);
    Status last = Status::Unavailable("no attempt");
    while (true) {
      Fd fd(Connect(deadline, &last));
      if (fd.fd >= 0) {
        bool retry = false;
        Result<T> r = once(fd.fd, where, &retry);
        if (r.ok() || !retry) return r;
        last = r.status();
      }
      if (Clock::now() >= deadline) return Status::Timeout(why(where, last));
      // A formed world is asked again once a second (its rank 0 logs every ask), anything
      // else every 50 ms; never past the deadline.
      const auto pause = formed_.empty() ? std::chrono::milliseconds(50) : std::chrono::seconds(1);
      std::this_thread::sleep_until(std::min(deadline, Clock::now() + pause));
    }
  }

  // The hello and challenge on a fresh connection: rank 0's nonce, once it proved the token
  // (*retry set while it has not answered at all).
  // *sn is rank 0's nonce also when it fails to prove the token (PermissionDenied).
  Status Greet(int fd, const Nonce& cn, Clock::time_point deadline, const std::string& where,
               bool* retry, Nonce* sn) {
    *retry = true;
    SHOAL_RETURN_IF_ERROR(SendFrame(fd, 'H', cn, deadline));
    char tag = 0;
    SHOAL_ASSIGN_OR_RETURN(Blob ch, RecvFrame(fd, &tag, deadline));
    *retry = false;
    if (tag != 'C' || ch.size() != 64) {
      return Status::InvalidArgument(fmt::format("rendezvous: {} is not a shoal rank 0", where));
    }
    std::memcpy(sn->data(), ch.data(), 32);
    Mac smac;
    std::memcpy(smac.data(), ch.data() + 32, 32);
    if (!MacEqual(smac, TokenMac(o_.token, kServerLabel, {cn, *sn}))) {
      return Status::PermissionDenied(fmt::format(
          "rendezvous: rank 0 at {} does not hold this job token (is SHOAL_TOKEN the same on "
          "every rank?)", where));
    }
    return Status::OK();
  }

  Result<ObservedWorld> ObserveOnce(int fd, Clock::time_point deadline, const std::string& where,
                                    bool* retry) {
    Nonce cn = NewNonce(), sn{};
    SHOAL_RETURN_IF_ERROR(Greet(fd, cn, deadline, where, retry, &sn));
    SHOAL_RETURN_IF_ERROR(SendFrame(fd, 'O', TokenMac(o_.token, kObserverLabel, {sn, cn}),
                                    deadline));
    char tag = 0;
    auto resp = RecvFrame(fd, &tag, deadline);
    if (!resp.ok()) {
      return Status::Unavailable(fmt::format("rendezvous: rank 0 at {} closed the connection: {}",
                                             where, resp.status().message()));
    }
    if (tag == 'R') {
      std::string why(reinterpret_cast<const char*>(resp->data()), resp->size());
      if (why.find("job token") != std::string::npos) {
        return Status::PermissionDenied("rendezvous refused this observer: " + why);
      }
      if (why.find("still forming") != std::string::npos) {
        return Status::FailedPrecondition("rendezvous: " + why);
      }
      return Status::InvalidArgument("rendezvous refused this observer: " + why);
    }
    if (tag != 'W' || resp->size() < 32 + 4) {
      return Status::InvalidArgument("rendezvous: not a world description");
    }
    Mac wmac;
    std::memcpy(wmac.data(), resp->data(), 32);
    std::span<const std::byte> world(resp->data() + 32, resp->size() - 32);
    if (!MacEqual(wmac, TokenMac(o_.token, kWorldLabel, {cn, sn, world}))) {
      return Status::PermissionDenied("rendezvous: the world description fails its token MAC");
    }
    return DecodeWorld(world);
  }

  // One attempt at the handshake on a fresh connection. *retry is set when the connection failed
  // before rank 0 proved itself (rank 0 restarting, or dropping this connection under load): the
  // caller connects again while time is left.
  Result<std::vector<Blob>> JoinOnce(int fd, const Blob& mine, Clock::time_point deadline,
                                     const std::string& where, bool* retry) {
    Nonce cn = NewNonce(), sn{};
    Status greeted = Greet(fd, cn, deadline, where, retry, &sn);
    if (!greeted.ok() && greeted.code() != Code::kPermissionDenied) return greeted;
    Mac cmac = TokenMac(o_.token, kClientLabel, {sn, cn});
    if (!greeted.ok()) {
      // Still show rank 0 our proof (of the wrong token: it reveals nothing), so that it logs
      // and reports which rank it refused, instead of a connection that just went away.
      (void)SendFrame(fd, 'J', Concat({cmac, BytesOf(o_.rank), BytesOf(o_.world_size)}),
                      deadline);
      return greeted;
    }
    char tag = 0;
    Blob join = Concat({cmac, BytesOf(o_.rank), BytesOf(o_.world_size), mine});
    SHOAL_RETURN_IF_ERROR(SendFrame(fd, 'J', join, deadline));
    // Progress reports until the table or a refusal. Waiting past the deadline ends with the
    // last report: which ranks rank 0 was still waiting for.
    std::string missing;
    while (true) {
      auto resp = RecvFrame(fd, &tag, deadline);
      if (!resp.ok()) {
        if (resp.status().code() == Code::kTimeout) {
          return Status::Timeout(fmt::format(
              "rendezvous: rank {} timed out after {} ms: {}", o_.rank, o_.timeout.count(),
              missing.empty() ? "rank 0 sent no member table"
                              : "rank 0 was still waiting for ranks " + missing));
        }
        return Status::Unavailable(fmt::format(
            "rendezvous: rank 0 at {} closed the connection before the world formed (it gave up "
            "or failed; see rank 0's log): {}", where, resp.status().message()));
      }
      if (tag == 'P') {
        ByteReader r(*resp);
        uint32_t total = 0, rank = 0;
        std::vector<bool> have(o_.world_size, true);
        if (!r.Get(&total)) return Status::InvalidArgument("rendezvous: bad progress report");
        while (r.Get(&rank)) {
          if (rank < o_.world_size) have[rank] = false;
        }
        missing = MissingRanks(have);
        uint32_t named = static_cast<uint32_t>(std::count(have.begin(), have.end(), false));
        if (total > named) missing += fmt::format(" and {} more", total - named);
        continue;
      }
      if (tag == 'F') {  // a world that formed already: perhaps the last job's; try again
        *retry = true;
        formed_.assign(reinterpret_cast<const char*>(resp->data()), resp->size());
        return Status::Unavailable(formed_);
      }
      if (tag == 'R') {
        std::string why(reinterpret_cast<const char*>(resp->data()), resp->size());
        if (why.find("timed out") != std::string::npos) return Status::Timeout(why);
        if (why.find("job token") != std::string::npos) {
          return Status::PermissionDenied("rendezvous refused this rank: " + why);
        }
        return Status::InvalidArgument("rendezvous refused this rank: " + why);
      }
      if (tag != 'T' || resp->size() < 32) return Status::InvalidArgument("rendezvous: bad table");
      Mac tmac;
      std::memcpy(tmac.data(), resp->data(), 32);
      std::span<const std::byte> encoded(resp->data() + 32, resp->size() - 32);
      if (!MacEqual(tmac, TokenMac(o_.token, kTableLabel, {cn, sn, encoded}))) {
        return Status::PermissionDenied("rendezvous: the member table fails its token MAC");
      }
      SHOAL_ASSIGN_OR_RETURN(auto table, DecodeTable(encoded, o_.world_size));
      if (table[o_.rank] != mine) return Status::InvalidArgument("rendezvous: table lost my entry");
      return table;
    }
  }

  // A connected socket, or -1 with *last saying why. Each connect waits at most a few seconds
  // (a full or unreachable listener must not hold the whole deadline).
  int Connect(Clock::time_point deadline, Status* last) {
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
      fd = ::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (fd < 0) continue;
      int c = ::connect(fd, a->ai_addr, a->ai_addrlen);
      if (c != 0 && errno == EINPROGRESS) {
        auto until = std::min(deadline, Clock::now() + std::chrono::seconds(3));
        Status w = WaitFd(fd, POLLOUT, until, "connecting");
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        if (w.ok() && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0) {
          c = 0;
        } else {
          *last = w.ok() ? ErrnoStatus(soerr, "connect") : w;
        }
      } else if (c != 0) {
        *last = ErrnoStatus(errno, "connect");
      }
      if (c == 0) break;
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

  const TcpRendezvousOptions& o_;
  std::string formed_;  // the last formed world's answer ('F'), if one came
};

}  // namespace

Result<std::vector<Blob>> JoinTcpRendezvous(const TcpRendezvousOptions& o, const Blob& mine,
                                            Clock::time_point deadline) {
  return TcpJoiner(o).Join(mine, deadline);
}

Result<ObservedWorld> ObserveTcpHost(const TcpRendezvousOptions& o, Clock::time_point deadline) {
  return TcpJoiner(o).Observe(deadline);
}

}  // namespace shoal::transport
