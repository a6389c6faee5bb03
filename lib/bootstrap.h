// Bootstrap: turns Options and the launcher's environment into "alone" or "join this world
// through this rendezvous". The rules are documented in docs/bootstrap.md.
#pragma once

#include <memory>

#include "engine/world.h"
#include "shoal/options.h"
#include "transport/rendezvous.h"

namespace shoal {

struct BootstrapPlan {
  bool alone = true;  // a world of one: no network at all
  std::string store_dir;  // Options::store_dir with {rank}, {local_rank}, {node} filled in
  engine::WorldOptions world;
  std::unique_ptr<transport::Rendezvous> rendezvous;
};

// InvalidArgument for contradictory or incomplete settings (rank outside the world, no token,
// no rendezvous port), naming the option or variable to set.
Result<BootstrapPlan> PlanBootstrap(const Options& options);

}  // namespace shoal
