#include "lib/bootstrap.h"

#include <fmt/format.h>

#include "transport/launch_info.h"

namespace shoal {

namespace {

std::string Fill(std::string s, std::string_view key, std::string_view value) {
  for (size_t at = s.find(key); at != std::string::npos; at = s.find(key, at + value.size())) {
    s.replace(at, key.size(), value);
  }
  return s;
}

}  // namespace

Result<BootstrapPlan> PlanBootstrap(const Options& o) {
  SHOAL_ASSIGN_OR_RETURN(transport::LaunchInfo launch, transport::LaunchInfoFromEnv());
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
    return Status::InvalidArgument(
        fmt::format("rank {} is outside a world of {} ranks", w.rank, w.world_size));
  }
  plan.store_dir = Fill(Fill(Fill(o.store_dir, "{rank}", std::to_string(w.rank)), "{local_rank}",
                             std::to_string(launch.local_rank)),
                        "{node}", w.node);
  std::string rdzv = !o.rendezvous.empty() ? o.rendezvous : launch.rendezvous;
  if (w.world_size == 1 && rdzv.empty() && !o.allgather) return plan;  // alone
  plan.alone = false;

  std::string token = !o.token.empty() ? o.token : launch.token;
  if (token.empty()) {
    return Status::InvalidArgument(
        "a world of several ranks needs a job token: set Options::token or SHOAL_TOKEN to the "
        "same secret on every rank");
  }
  auto timeout = std::chrono::milliseconds(join_ms);
  if (o.allgather) {
    AllGatherFn fn = o.allgather;
    plan.rendezvous = transport::NewCallbackRendezvous(
        [fn](const transport::Blob& mine) { return fn(mine); }, w.world_size);
  } else if (rdzv.rfind("file:", 0) == 0) {
    if (rdzv.size() == 5) return Status::InvalidArgument("rendezvous \"file:\" names no directory");
    plan.rendezvous =
        transport::NewFileRendezvous(rdzv.substr(5), w.rank, w.world_size, token, timeout);
  } else {
    transport::TcpRendezvousOptions t;
    t.rank = w.rank;
    t.world_size = w.world_size;
    t.token = token;
    t.timeout = timeout;
    if (rdzv.rfind("tcp:", 0) == 0) {
      std::string hp = rdzv.substr(4);
      size_t colon = hp.rfind(':');
      if (colon == std::string::npos || colon == 0) {
        return Status::InvalidArgument(
            fmt::format("rendezvous \"{}\" is not tcp:HOST:PORT", rdzv));
      }
      t.host = hp.substr(0, colon);
      SHOAL_ASSIGN_OR_RETURN(uint64_t port,
                             transport::ParseNumber("rendezvous port", hp.substr(colon + 1), 65535));
      if (port == 0) return Status::InvalidArgument("rendezvous port 0: choose a port");
      t.port = static_cast<uint16_t>(port);
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
    plan.rendezvous = transport::NewTcpRendezvous(t);
  }
  return plan;
}

}  // namespace shoal
