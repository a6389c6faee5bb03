#include "lib/bootstrap.h"

#include <fmt/format.h>

#include <filesystem>
#include <system_error>

#include "engine/store_layout.h"
#include "transport/launch_info.h"

namespace shoal {

namespace {

constexpr uint32_t kMaxNodeStores = 256;

std::string Fill(std::string s, std::string_view key, std::string_view value) {
  for (size_t at = s.find(key); at != std::string::npos; at = s.find(key, at + value.size())) {
    s.replace(at, key.size(), value);
  }
  return s;
}

// The variables a launcher's rank and world size came from, for error messages.
std::pair<std::string_view, std::string_view> RankVariables(std::string_view source) {
  if (source == "torchrun") return {"RANK", "WORLD_SIZE"};
  if (source == "openmpi") return {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"};
  if (source == "shoal") return {"SHOAL_RANK", "SHOAL_WORLD_SIZE"};
  return {"the default", "the default"};
}

}  // namespace

Status ParseTcpRendezvous(std::string_view address, std::string* host, uint16_t* port) {
  if (address.rfind("tcp:", 0) != 0) {
    return Status::InvalidArgument(fmt::format("rendezvous \"{}\" is not tcp:HOST:PORT", address));
  }
  std::string hp(address.substr(4));
  size_t colon = hp.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Status::InvalidArgument(fmt::format("rendezvous \"{}\" is not tcp:HOST:PORT", address));
  }
  *host = hp.substr(0, colon);
  // An IPv6 literal is written in brackets ("tcp:[::1]:29600"); the resolver wants it bare.
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  SHOAL_ASSIGN_OR_RETURN(uint64_t p,
                         transport::ParseNumber("rendezvous port", hp.substr(colon + 1), 65535));
  if (p == 0) return Status::InvalidArgument("rendezvous port 0: choose a port");
  *port = static_cast<uint16_t>(p);
  return Status::OK();
}

Result<BootstrapPlan> PlanBootstrap(const Options& o) {
  return PlanBootstrap(o, transport::ProcessEnv());
}

Result<BootstrapPlan> PlanBootstrap(const Options& o, const transport::EnvLookup& env) {
  SHOAL_ASSIGN_OR_RETURN(transport::LaunchInfo launch, transport::LaunchInfoFromEnv(env));
  BootstrapPlan plan;
  engine::WorldOptions& w = plan.world;
  w.rank = o.rank != kFromLauncher ? o.rank : launch.rank;
  w.world_size = o.world_size != 0 ? o.world_size : launch.world_size;
  w.node = !o.node.empty() ? o.node : launch.node;
  // Options first, then the launcher's environment, then the default.
  uint32_t join_ms = o.join_timeout_ms != 0         ? o.join_timeout_ms
                     : launch.join_timeout_ms != 0 ? launch.join_timeout_ms
                                                   : kDefaultJoinTimeoutMs;
  w.timeout = std::chrono::milliseconds(join_ms);
  if (w.rank >= w.world_size) {
    auto [rank_var, size_var] = RankVariables(launch.source);
    return Status::InvalidArgument(fmt::format(
        "rank {} (from {}) is outside a world of {} ranks (from {}): set Options::rank and "
        "Options::world_size together, or neither",
        w.rank, o.rank != kFromLauncher ? "Options::rank" : rank_var, w.world_size,
        o.world_size != 0 ? "Options::world_size" : size_var));
  }
  auto store_of = [&](uint32_t local_rank) {
    return Fill(Fill(Fill(o.store_dir, "{rank}", std::to_string(w.rank)), "{local_rank}",
                     std::to_string(local_rank)),
                "{node}", w.node);
  };
  plan.store_dir = store_of(launch.local_rank);
  if (o.serve_node_stores && launch.local_world_size != 0 &&
      o.store_dir.find("{local_rank}") != std::string::npos) {
    for (uint32_t l = launch.local_rank + launch.local_world_size; l < kMaxNodeStores;
         l += launch.local_world_size) {
      std::string dir = store_of(l);
      std::error_code ec;
      if (std::filesystem::exists(engine::StorePath(dir, engine::kFormatFile), ec)) {
        plan.more_store_dirs.push_back(std::move(dir));
      }
    }
  }
  std::string rdzv = !o.rendezvous.empty() ? o.rendezvous : launch.rendezvous;
  if (w.world_size == 1 && rdzv.empty() && !o.allgather) return plan;  // alone
  plan.alone = false;

  std::string token = !o.token.empty() ? o.token : launch.token;
  if (token.empty()) {
    return Status::InvalidArgument(
        "a world of several ranks needs a job token: set Options::token or SHOAL_TOKEN to the "
        "same secret on every rank");
  }
  plan.token = token;
  auto timeout = std::chrono::milliseconds(join_ms);
  if (o.allgather) {
    AllGatherFn fn = o.allgather;
    plan.rendezvous = transport::NewCallbackRendezvous(
        [fn](const transport::Blob& mine) { return fn(mine); }, w.world_size);
    plan.rendezvous_address = "allgather";
  } else if (rdzv.rfind("file:", 0) == 0) {
    if (rdzv.size() == 5) return Status::InvalidArgument("rendezvous \"file:\" names no directory");
    plan.rendezvous =
        transport::NewFileRendezvous(rdzv.substr(5), w.rank, w.world_size, token, timeout);
    plan.rendezvous_address = rdzv;
  } else {
    transport::TcpRendezvousOptions t;
    t.rank = w.rank;
    t.world_size = w.world_size;
    t.token = token;
    t.timeout = timeout;
    if (rdzv.rfind("tcp:", 0) == 0) {
      SHOAL_RETURN_IF_ERROR(ParseTcpRendezvous(rdzv, &t.host, &t.port));
    } else if (rdzv.empty()) {
      t.host = launch.master_addr.empty() ? "127.0.0.1" : launch.master_addr;
      t.port = launch.rendezvous_port;
      if (t.port == 0) {
        return Status::InvalidArgument(
            "no rendezvous port: set SHOAL_RENDEZVOUS_PORT (or MASTER_PORT, whose next port is "
            "used), or Options::rendezvous (docs/bootstrap.md)");
      }
    } else {
      return Status::InvalidArgument(
          fmt::format("rendezvous \"{}\": expected tcp:HOST:PORT or file:DIR", rdzv));
    }
    plan.rendezvous_address = fmt::format("tcp:{}:{}", t.host, t.port);
    plan.rendezvous = transport::NewTcpRendezvous(t);
  }
  return plan;
}

}  // namespace shoal
