// Observing a live world: an Engine whose calls go to the members of a running job, joined as
// a guest with the job token (engine/observer_client.h says what it may do; docs/cli.md shows
// the shoal CLI's live mode, its user). The observer learns the members from rank 0's TCP
// rendezvous (transport::ObserveTcpRendezvous), connects to each as a guest of its messenger
// and says hello; it holds no data, owns no shard, is never chosen as a holder and starts no
// epoch, and its leaving changes nothing at the members.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "engine/observer_client.h"
#include "shoal/engine.h"

namespace shoal {

struct ObserveOptions {
  std::string rendezvous;  // the job's SHOAL_RENDEZVOUS: "tcp:HOST:PORT"
  std::string token;       // the job's SHOAL_TOKEN
  std::chrono::milliseconds timeout{20000};   // to reach rank 0 and every member's hello
  std::chrono::milliseconds deadline{60000};  // of each call after
};

struct ObservedWorld {
  std::unique_ptr<Engine> engine;    // Stat, List, Read, Locate, checkpoints' listings
  engine::ObserverClient* client;    // owned by `engine`: members' reports and scrubs
  // Per member: OK, or why its hello failed (a member down: the others still answer).
  std::vector<Status> reached;
};

// PermissionDenied when the token differs, FailedPrecondition while the world is still
// forming, Timeout/Unavailable when no world answers at the address, Unavailable when no
// member answered the hello.
Result<ObservedWorld> ObserveWorld(const ObserveOptions& options);

}  // namespace shoal
