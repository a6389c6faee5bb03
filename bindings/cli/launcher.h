// Launcher: starts the N ranks of a job on this machine, as `shoal run` does (docs/cli.md).
//
// Each rank is the same program, exec'd with the launcher variables every front end reads
// (transport/launch_info.h, the Python module, torch.distributed's env:// init):
//   SHOAL_RANK, SHOAL_WORLD_SIZE, SHOAL_LOCAL_RANK, SHOAL_LOCAL_WORLD_SIZE and torchrun's RANK,
//   WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE; SHOAL_NODE (ranks are dealt to `nodes` node names
//   in contiguous blocks, as torchrun numbers local ranks); SHOAL_TOKEN (a fresh 128-bit secret
//   per start); SHOAL_RENDEZVOUS (tcp:127.0.0.1:a free port; rank 0 hosts it, and it answers
//   observers there once the world formed); MASTER_ADDR / MASTER_PORT (127.0.0.1 and another
//   free port, for torch.distributed); SHOAL_STORE when a store root is given:
//   ROOT/<node>/{local_rank}, so a later run with fewer ranks per node serves every store
//   (Options::serve_node_stores).
// SHOAL_METRICS_LISTEN=HOST:PORT in the launcher's environment: rank r serves its metrics on
// PORT + r (the engine adds the local rank; the launcher's nodes share one host).
// Job file: with a store root, ROOT/shoal-job (0600) holds SHOAL_TOKEN, SHOAL_RENDEZVOUS and
// SHOAL_WORLD_SIZE lines while the job runs (the `shoal` commands read it to find the live
// world); it is removed when the launcher ends.
//
// Output: every line a rank writes to stdout or stderr is written to the launcher's own, whole,
// prefixed "[rank R] " when `prefix_output` (off: bytes pass through untouched).
// Signals: SIGINT, SIGTERM, SIGHUP and SIGQUIT received by the launcher are forwarded to every
// rank (ranks run in their own process groups, so a terminal's Ctrl-C reaches them once). When
// a rank fails (nonzero exit or a signal) the others get SIGTERM, then SIGKILL after
// `grace`. A rank dies with the launcher (PR_SET_PDEATHSIG), so a killed launcher leaves none.
// Result: 0 when every rank exited 0; else the exit code of the first rank that failed (128 + n
// for a signal n), not those of the ranks stopped because of it. Errors (the launcher could
// not start): InvalidArgument for bad counts or an empty program, or the errno of a failed
// pipe/fork; a program that cannot be exec'd makes its ranks exit 127 with the reason on
// stderr.
// Threads: RunRanks blocks the calling thread until every rank has exited; it installs signal
// handlers for its duration and restores the previous ones. Not for use in a multithreaded
// process that forks meanwhile (the launcher is a process of its own: `shoal run`, shoal-bench).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "shoal/result.h"

namespace shoal::cli {

struct LaunchSpec {
  uint32_t ranks = 1;                 // 1 .. 4096
  uint32_t nodes = 0;                 // node names to deal the ranks to; 0: one per rank
  std::string node_prefix = "node";   // node k is named node_prefix + k
  std::string store;                  // store root; empty: SHOAL_STORE is not set
  std::vector<std::string> argv;      // program (looked up on PATH) and its arguments
  bool prefix_output = true;
  std::chrono::milliseconds grace{10000};  // SIGTERM -> SIGKILL of the other ranks
  std::vector<std::pair<std::string, std::string>> env;  // more variables, every rank
};

// ROOT/shoal-job.
std::string JobFilePath(const std::string& store);

// What RunRanks sets for rank `rank`, in order (exposed for tests and --dry-run).
std::vector<std::pair<std::string, std::string>> RankEnvironment(const LaunchSpec& spec,
                                                                 uint32_t rank,
                                                                 const std::string& token,
                                                                 const std::string& rendezvous,
                                                                 uint16_t master_port);

Result<int> RunRanks(const LaunchSpec& spec);

}  // namespace shoal::cli
