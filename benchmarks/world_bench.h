// The multi-rank modes of shoal-bench: a world of ranks on this machine (--ranks N starts them
// as child processes, each with its own store directory and node name, joined through the
// users' bootstrap), or the ranks of a job when launched by torchrun / mpirun.
//
// Figures are aggregates over all ranks (total bytes / slowest rank's time, every phase started
// by a barrier), each beside a baseline measured in the same run:
//   write        every rank writes size/N bytes        vs every rank writing a raw O_DIRECT file
//   read         every rank reads its object back       vs every rank reading its raw file
//   remote-read  rank 1 reads the chunks of rank 0's object that rank 0 alone holds, vs rank 0
//                reading its raw file and raw UCX: one-sided gets of the same sizes between
//                registered buffers, the window in flight (benchmarks/raw_ucx.h); ratio
//                against the lesser
//   create/stat-cold/stat-warm/list  metadata ops/s: Puts of small objects into one directory
//                from every rank; every rank's first stat of stats/N names in StatBatch calls
//                (cold), then a Stat of each again (warm: within Options::stat_lease_ms);
//                one rank listing the whole directory with sizes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace shoal::bench {

struct WorldConfig {
  std::string mode;  // write, read, remote-read, meta, all
  uint32_t ranks = 0;
  uint64_t size = 2ull << 30;  // total over all ranks (remote-read: the object rank 0 writes)
  std::string dir;
  uint32_t chunk_size = 4u << 20;
  uint32_t queue_depth = 16;
  uint32_t replicas = 1;
  uint32_t window = 16;
  uint32_t threads = 8;           // metadata clients per rank
  uint64_t files = 100000;        // objects created in the metadata phase (all ranks)
  uint64_t stats = 400000;        // stats in the metadata phase (all ranks)
  int repeat = 3;
  bool json = false;
  std::string raw_shape = "best";
  std::optional<uint32_t> stat_lease_ms;  // Options::stat_lease_ms; none: the engine's default  // the raw-disk baseline's shape: "best" (a sweep) or "engine"
};

// Starts cfg.ranks copies of this program (argv, with `--dir cfg.dir` added when it has no
// --dir) as one world and waits for them. Returns the exit code (the first failing rank's).
int SpawnWorld(const WorldConfig& cfg, int argc, char** argv);

// Runs this process as one rank of the world; rank 0 prints the table or JSON lines.
int RunWorldMember(const WorldConfig& cfg);

// True when this process is a rank of a multi-rank world (spawned, or launched by a launcher).
bool InWorld();

}  // namespace shoal::bench
