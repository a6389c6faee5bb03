// The two sides of the TCP rendezvous (transport/rendezvous.h describes the protocol), called by
// NewTcpRendezvous's AllGather once it checked the options: rank 0 hosts, the others join.
// Both block until the world formed or `deadline` passed; `o` must outlive the call.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "shoal/result.h"
#include "transport/rendezvous.h"
#include "transport/rendezvous_wire.h"

namespace shoal::transport {

// Rank 0 once the world formed: its listener, kept open, answering observers when asked
// (Rendezvous::ServeObservers) until destroyed.
class FormedHost {
 public:
  virtual ~FormedHost() = default;
  virtual void ServeObservers(std::function<Blob()> info) = 0;
};

// Rank 0: listens on o.port and serves every joining rank until all o.world_size have joined;
// returns the table, with `mine` at rank 0, and in *formed (when not null) the listener for
// observers.
Result<std::vector<Blob>> HostTcpRendezvous(const TcpRendezvousOptions& o, const Blob& mine,
                                            Clock::time_point deadline,
                                            std::unique_ptr<FormedHost>* formed);

// Ranks above 0: connects to rank 0 at o.host:o.port (retrying until the deadline), joins with
// `mine` and returns the table rank 0 sends.
Result<std::vector<Blob>> JoinTcpRendezvous(const TcpRendezvousOptions& o, const Blob& mine,
                                            Clock::time_point deadline);

// An observer's visit to rank 0 at o.host:o.port (rendezvous.h: ObserveTcpRendezvous).
Result<ObservedWorld> ObserveTcpHost(const TcpRendezvousOptions& o, Clock::time_point deadline);

}  // namespace shoal::transport
