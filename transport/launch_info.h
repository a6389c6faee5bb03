// LaunchInfo: where this process sits in the job, as its launcher describes it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "shoal/result.h"

namespace shoal::transport {

struct LaunchInfo {
  uint32_t rank = 0;
  uint32_t world_size = 1;
  uint32_t local_rank = 0;
  uint32_t local_world_size = 0;  // ranks of this job on this node; 0: the launcher did not say
  std::string node;         // failure domain: SHOAL_NODE, else the host name
  std::string master_addr;  // where rank 0 hosts the rendezvous ("" when not given)
  uint16_t master_port = 0;
  std::string source;       // "torchrun", "openmpi", "shoal" or "default"
  uint16_t rendezvous_port = 0;  // SHOAL_RENDEZVOUS_PORT, else master_port + 1; 0: none
  std::string rendezvous;        // SHOAL_RENDEZVOUS ("tcp:HOST:PORT", "file:DIR" or "")
  std::string token;             // SHOAL_TOKEN
  uint32_t join_timeout_ms = 0;  // SHOAL_JOIN_TIMEOUT_MS; 0: not set
};

// Looks an environment variable up: its value, or nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;
// The process environment (std::getenv; not thread-safe against setenv, like getenv itself).
EnvLookup ProcessEnv();

// Reads, in order: torchrun (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT); Open MPI (OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK / _LOCAL_SIZE); shoal's own
// (SHOAL_RANK, SHOAL_WORLD_SIZE, SHOAL_LOCAL_RANK, SHOAL_LOCAL_WORLD_SIZE, SHOAL_MASTER_ADDR,
// SHOAL_MASTER_PORT). With none set: a world of one (local world size 1). A local rank at or
// above the local world size is InvalidArgument.
// Also SHOAL_RENDEZVOUS_PORT, SHOAL_RENDEZVOUS, SHOAL_TOKEN, SHOAL_NODE, SHOAL_JOIN_TIMEOUT_MS
// (1 .. 2^32-1 ms).
// InvalidArgument when a variable is not a number, or rank >= world size.
// The node name falls back to the host name when SHOAL_NODE is unset (or empty).
Result<LaunchInfo> LaunchInfoFromEnv();
// The same rules over any variable lookup (tests, or a launcher describing another process).
Result<LaunchInfo> LaunchInfoFromEnv(const EnvLookup& env);

// `text` as a decimal number in [0, max]; InvalidArgument naming `what` otherwise.
Result<uint64_t> ParseNumber(std::string_view what, std::string_view text, uint64_t max);

}  // namespace shoal::transport
