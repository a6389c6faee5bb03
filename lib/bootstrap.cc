#include "lib/bootstrap.h"

#include <fmt/format.h>

#include <cstdlib>

#include "transport/launch_info.h"

namespace shoal {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

Result<uint16_t> Port(const std::string& text, std::string_view what) {
  char* end = nullptr;
  unsigned long v = std::strtoul(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v == 0 || v > 65535) {
    return Status::InvalidArgument(fmt::format("{} \"{}\" is not a port number", what, text));
  }
  return static_cast<uint16_t>(v);
}

}  // namespace

Result<BootstrapPlan> PlanBootstrap(const Options& o) {
  SHOAL_ASSIGN_OR_RETURN(transport::LaunchInfo launch, transport::LaunchInfoFromEnv());
  BootstrapPlan plan;
  engine::WorldOptions& w = plan.world;
  w.rank = o.rank != kFromLauncher ? o.rank : launch.rank;
  w.world_size = o.world_size != 0 ? o.world_size : launch.world_size;
  w.node = !o.node.empty() ? o.node : launch.node;
  w.timeout = std::chrono::milliseconds(o.join_timeout_ms);
  if (w.rank >= w.world_size) {
    return Status::InvalidArgument(
        fmt::format("rank {} is outside a world of {} ranks", w.rank, w.world_size));
  }
  std::string rdzv = !o.rendezvous.empty() ? o.rendezvous : Env("SHOAL_RENDEZVOUS");
  if (w.world_size == 1 && rdzv.empty() && !o.allgather) return plan;  // alone
  plan.alone = false;

  std::string token = !o.token.empty() ? o.token : Env("SHOAL_TOKEN");
  if (token.empty()) {
    return Status::InvalidArgument(
        "a world of several ranks needs a job token: set Options::token or SHOAL_TOKEN to the "
        "same secret on every rank");
  }
  auto timeout = std::chrono::milliseconds(o.join_timeout_ms);
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
      SHOAL_ASSIGN_OR_RETURN(t.port, Port(hp.substr(colon + 1), "rendezvous port"));
    } else if (rdzv.empty()) {
      t.host = launch.master_addr.empty() ? "127.0.0.1" : launch.master_addr;
      std::string port = Env("SHOAL_RENDEZVOUS_PORT");
      if (!port.empty()) {
        SHOAL_ASSIGN_OR_RETURN(t.port, Port(port, "SHOAL_RENDEZVOUS_PORT"));
      } else if (launch.master_port != 0 && launch.master_port < 65535) {
        t.port = static_cast<uint16_t>(launch.master_port + 1);
      } else {
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
