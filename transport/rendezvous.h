// Rendezvous: the one all-gather a world needs before it can talk over UCX. Every member puts
// in a blob (its member id, node and UCX worker address) and gets back every member's blob, in
// rank order. No server process exists: rank 0 hosts the TCP rendezvous inside its own process.
//
// Job token: every exchange is bound to the job token (Options / SHOAL_TOKEN). Over TCP both
// sides prove they hold it with HMAC-SHA256 over fresh nonces (transport/job_token.h); the token
// itself never travels. A member with the wrong token is refused with a clear error on both
// sides and does not disturb the others; the rank-0 host keeps waiting for the right members.
//
// Implementations:
//   TCP  — rank 0 listens on `port` (all interfaces, or `bind_addr`); the others connect to
//          `host:port`, retrying until the deadline (rank 0 may start later than they do).
//          Rank 0 serves all connections at once (one poll loop): each gets 5 s for the token
//          handshake and at most one frame of the size its step allows (the join's blob is read
//          only after its token MAC checks out); past 256 connections in the handshake the
//          oldest is dropped. Idle, stalled or garbage connections never delay a real rank.
//
// Failures name their cause within the timeout: rank 0 fails with Timeout naming the ranks that
// never joined (and those that joined, then closed their connection); joined ranks hear rank 0's
// list of missing ranks about once a second and, at their own deadline, fail with Timeout naming
// them; when rank 0 gives up it tells them why; a rank 0 that vanishes is Unavailable.
//   file — each rank writes <dir>/member-<rank> (atomically, with a token MAC) and waits for
//          all others: for tests and for jobs with a shared directory. Use a fresh directory
//          per job start.
//   callback — the caller's own all-gather (e.g. over torch.distributed).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "shoal/result.h"

namespace shoal::transport {

using Blob = std::vector<std::byte>;
inline constexpr size_t kMaxBlobBytes = 1u << 20;

class Rendezvous {
 public:
  virtual ~Rendezvous() = default;
  // Blocks until every member's blob is known or the deadline passes (Timeout naming the
  // missing ranks where known).
  virtual Result<std::vector<Blob>> AllGather(const Blob& mine) = 0;
  // After AllGather formed the world, rank 0 of a TCP rendezvous keeps its port and answers
  // observers (ObserveTcpRendezvous: a CLI attaching to the live world) with the member table
  // and the blob `info` returns, from a thread of its own, until this object is destroyed;
  // nothing it serves starts an epoch or changes the world. A rank that tries to join the
  // formed world hears that it formed, and keeps trying until its own deadline (it may belong
  // to the next job, whose rank 0 has not started yet). `info` runs on the serving thread,
  // once per observer, and must not block. Other ranks and other rendezvous kinds serve
  // nothing (OK).
  virtual Status ServeObservers(std::function<Blob()> info) {
    (void)info;
    return Status::OK();
  }
};

struct TcpRendezvousOptions {
  uint32_t rank = 0;
  uint32_t world_size = 1;
  std::string host = "127.0.0.1";  // where rank 0 listens (MASTER_ADDR)
  uint16_t port = 0;               // 0 is refused: choose one (docs/bootstrap.md)
  std::string bind_addr;           // rank 0: interface to listen on; "" = all
  std::string token;
  std::chrono::milliseconds timeout{120000};
};

std::unique_ptr<Rendezvous> NewTcpRendezvous(const TcpRendezvousOptions& options);

// What an observer learns from a formed world's rank 0: the table the ranks exchanged, in rank
// order (an engine's ranks exchange their members' blobs packed: UnpackMemberBlobs gives the
// members), and the blob rank 0's ServeObservers `info` gave.
struct ObservedWorld {
  std::vector<Blob> members;
  Blob info;
};
// Connects to rank 0 at o.host:o.port as an observer (o.rank and o.world_size are not used):
// both sides prove the job token, as a joining rank does. Retries a refused connection until
// o.timeout; PermissionDenied when the token differs, FailedPrecondition while the world is
// still forming, Timeout naming the last failure when no formed world answered in time.
Result<ObservedWorld> ObserveTcpRendezvous(const TcpRendezvousOptions& o);
std::unique_ptr<Rendezvous> NewFileRendezvous(std::string dir, uint32_t rank, uint32_t world_size,
                                              std::string token,
                                              std::chrono::milliseconds timeout);
using AllGatherFn = std::function<Result<std::vector<Blob>>(const Blob& mine)>;
std::unique_ptr<Rendezvous> NewCallbackRendezvous(AllGatherFn fn, uint32_t world_size);

// The members one rank serves (a rank opening several stores) share the rank's one rendezvous:
// each member gets a Rendezvous of its own; once all of them put in their blob, the rank takes
// part in `rank_level` once, with their blobs packed in one, and every member gets the table
// of the world's members: rank 0's in slot order, then rank 1's, and so on. Every rank of a job
// must use a group (of one member where it serves one store), since the packed blobs are what
// the ranks exchange. Another rank's packed blob that does not parse fails the exchange with
// InvalidArgument. Thread-safety: each member's AllGather is called from its own thread.
class RendezvousGroup {
 public:
  RendezvousGroup(Rendezvous& rank_level, uint32_t members);
  ~RendezvousGroup();
  RendezvousGroup(const RendezvousGroup&) = delete;
  RendezvousGroup& operator=(const RendezvousGroup&) = delete;

  // Member `slot`'s rendezvous (slot < members); valid while the group lives.
  Rendezvous& member(uint32_t slot);
  // A member that cannot take part (its store failed to open): the others' AllGather returns
  // `why` instead of waiting for it.
  void Fail(const Status& why);

  class Member;

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::vector<std::unique_ptr<Member>> members_;
};

// The packing RendezvousGroup exchanges (exposed for its tests and fuzzing): one rank's member
// blobs in one, and the world's table flattened from every rank's.
Blob PackMemberBlobs(const std::vector<Blob>& members);
Result<std::vector<Blob>> UnpackMemberBlobs(const std::vector<Blob>& ranks);

}  // namespace shoal::transport
