#include "transport/launch_info.h"

#include <fmt/format.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <optional>

namespace shoal::transport {
namespace {

// nullopt when unset; InvalidArgument when set but not a number in [0, max].
Result<std::optional<uint64_t>> Number(const EnvLookup& env, const char* name, uint64_t max) {
  std::optional<std::string> v = env(name);
  if (!v) return std::optional<uint64_t>();
  SHOAL_ASSIGN_OR_RETURN(uint64_t n, ParseNumber(name, *v, max));
  return std::optional<uint64_t>(n);
}

std::string Str(const EnvLookup& env, const char* name) { return env(name).value_or(""); }

}  // namespace

Result<uint64_t> ParseNumber(std::string_view what, std::string_view s, uint64_t max) {
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || n > max) {
    return Status::InvalidArgument(fmt::format("{}=\"{}\" is not a number in 0..{}", what, s, max));
  }
  return n;
}

EnvLookup ProcessEnv() {
  return [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Result<LaunchInfo> LaunchInfoFromEnv() { return LaunchInfoFromEnv(ProcessEnv()); }

Result<LaunchInfo> LaunchInfoFromEnv(const EnvLookup& env) {
  struct Scheme {
    const char* source;
    const char* rank;
    const char* size;
    const char* local;
    const char* local_size;
    const char* addr;
    const char* port;
  };
  const Scheme schemes[] = {
      {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
       "MASTER_PORT"},
      {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
       "OMPI_COMM_WORLD_LOCAL_SIZE", "SHOAL_MASTER_ADDR", "SHOAL_MASTER_PORT"},
      {"shoal", "SHOAL_RANK", "SHOAL_WORLD_SIZE", "SHOAL_LOCAL_RANK", "SHOAL_LOCAL_WORLD_SIZE",
       "SHOAL_MASTER_ADDR", "SHOAL_MASTER_PORT"},
  };
  LaunchInfo info;
  info.source = "default";
  info.local_world_size = 1;
  for (const Scheme& s : schemes) {
    SHOAL_ASSIGN_OR_RETURN(auto rank, Number(env, s.rank, UINT32_MAX));
    SHOAL_ASSIGN_OR_RETURN(auto size, Number(env, s.size, 1u << 20));
    if (!rank && !size) continue;
    if (!rank || !size) {
      return Status::InvalidArgument(
          fmt::format("{} and {} must be set together", s.rank, s.size));
    }
    if (*size == 0 || *rank >= *size) {
      return Status::InvalidArgument(
          fmt::format("{}={} is not below {}={}", s.rank, *rank, s.size, *size));
    }
    SHOAL_ASSIGN_OR_RETURN(auto local, Number(env, s.local, UINT32_MAX));
    SHOAL_ASSIGN_OR_RETURN(auto local_size, Number(env, s.local_size, 1u << 20));
    if (local_size && (*local_size == 0 || local.value_or(0) >= *local_size)) {
      return Status::InvalidArgument(fmt::format("{}={} is not below {}={}", s.local,
                                                 local.value_or(0), s.local_size, *local_size));
    }
    SHOAL_ASSIGN_OR_RETURN(auto port, Number(env, s.port, 65535));
    info.rank = static_cast<uint32_t>(*rank);
    info.world_size = static_cast<uint32_t>(*size);
    info.local_rank = static_cast<uint32_t>(local.value_or(0));
    info.local_world_size = static_cast<uint32_t>(local_size.value_or(0));
    info.master_addr = Str(env, s.addr);
    info.master_port = static_cast<uint16_t>(port.value_or(0));
    info.source = s.source;
    break;
  }
  // The rendezvous: SHOAL_RENDEZVOUS_PORT, else the port after MASTER_PORT (torch's store owns
  // MASTER_PORT itself).
  SHOAL_ASSIGN_OR_RETURN(auto rport, Number(env, "SHOAL_RENDEZVOUS_PORT", 65535));
  if (rport) {
    info.rendezvous_port = static_cast<uint16_t>(*rport);
  } else if (info.master_port != 0 && info.master_port < 65535) {
    info.rendezvous_port = static_cast<uint16_t>(info.master_port + 1);
  }
  SHOAL_ASSIGN_OR_RETURN(auto join_ms, Number(env, "SHOAL_JOIN_TIMEOUT_MS", UINT32_MAX));
  if (join_ms && *join_ms == 0) {
    return Status::InvalidArgument("SHOAL_JOIN_TIMEOUT_MS=0: the join timeout must be positive");
  }
  info.join_timeout_ms = static_cast<uint32_t>(join_ms.value_or(0));
  info.rendezvous = Str(env, "SHOAL_RENDEZVOUS");
  info.token = Str(env, "SHOAL_TOKEN");
  info.node = Str(env, "SHOAL_NODE");
  if (info.node.empty()) {
    char host[256] = {};
    if (::gethostname(host, sizeof(host) - 1) == 0) info.node = host;
    if (info.node.empty()) info.node = "localhost";
  }
  return info;
}

}  // namespace shoal::transport
