// The two sides of the TCP rendezvous (transport/rendezvous.h describes the protocol), called by
// NewTcpRendezvous's AllGather once it checked the options: rank 0 hosts, the others join.
// Both block until the world formed or `deadline` passed; `o` must outlive the call.
#pragma once

#include <vector>

#include "shoal/result.h"
#include "transport/rendezvous.h"
#include "transport/rendezvous_wire.h"

namespace shoal::transport {

// Rank 0: listens on o.port and serves every joining rank until all o.world_size have joined;
// returns the table, with `mine` at rank 0.
Result<std::vector<Blob>> HostTcpRendezvous(const TcpRendezvousOptions& o, const Blob& mine,
                                            Clock::time_point deadline);

// Ranks above 0: connects to rank 0 at o.host:o.port (retrying until the deadline), joins with
// `mine` and returns the table rank 0 sends.
Result<std::vector<Blob>> JoinTcpRendezvous(const TcpRendezvousOptions& o, const Blob& mine,
                                            Clock::time_point deadline);

}  // namespace shoal::transport
