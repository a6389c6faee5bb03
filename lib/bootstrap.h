// Bootstrap: turns Options and the launcher's environment into "alone" or "join this world
// through this rendezvous". The rules are documented in docs/bootstrap.md.
#pragma once

#include <memory>

#include "engine/world.h"
#include "shoal/options.h"
#include "transport/launch_info.h"
#include "transport/rendezvous.h"

namespace shoal {

struct BootstrapPlan {
  bool alone = true;  // a world of one: no network at all
  std::string store_dir;  // Options::store_dir with {rank}, {local_rank}, {node} filled in
  // The node's other stores this rank serves too (Options::serve_node_stores), in the order of
  // their local rank number.
  std::vector<std::string> more_store_dirs;
  engine::WorldOptions world;
  std::unique_ptr<transport::Rendezvous> rendezvous;
  // Where `rendezvous` meets, for logs and tests: "tcp:HOST:PORT", "file:DIR", "allgather"
  // (Options::allgather), or "" when alone.
  std::string rendezvous_address;
  // The job token (empty when alone): the members' messengers accept observers proving it.
  std::string token;
};

// Existing stores are found by their FORMAT file (the only thing looked at on disk).
// InvalidArgument for contradictory or incomplete settings (rank outside the world, no token,
// no rendezvous port), naming the option or variable to set. Options win over the launcher's
// variables field by field; the variables are read (and must parse) even when every field is
// given in Options. Nothing is connected or bound: the plan only describes the rendezvous.
Result<BootstrapPlan> PlanBootstrap(const Options& options);
// The same over any variable lookup instead of the process environment (tests).
Result<BootstrapPlan> PlanBootstrap(const Options& options, const transport::EnvLookup& env);

// The host and port of a "tcp:HOST:PORT" rendezvous address (an IPv6 host in brackets:
// "tcp:[::1]:29600"); InvalidArgument naming what is wrong.
Status ParseTcpRendezvous(std::string_view address, std::string* host, uint16_t* port);

}  // namespace shoal
