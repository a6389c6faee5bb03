// OfflineWorld: the stores of a world, given together on the command line, opened in this one
// process as the world they form (one Engine per store, each on a thread of its own, over UCX
// on loopback with a fresh token and a private file rendezvous), so that the shoal commands see
// the job's names and data exactly as the job's ranks would. The first store's Engine answers
// the commands; the others serve it.
//
// Which stores: each argument is a store directory (it holds a FORMAT file) or a directory
// whose stores are found below it, two levels deep at most (`shoal run --store ROOT` makes
// ROOT/<node>/<local rank>). Each store's node is its parent directory's name under such a root
// (what shoal run named it), else "cli-<i>".
//
// What opening changes: an Open of an unchanged world records the next epoch and nothing else
// (docs/membership.md); background repair and scrub are off unless asked (`repair`). A store
// alone, without the majority of its world, does not open: the error says which stores the
// world needs. Stores in use by a running job are refused (PermissionDenied: one Engine per
// store); the error names that store, not the others' Timeout waiting for it (they give up
// after join_timeout_ms, 20 s by default).
//
// Threads: Open and the destructor from one thread; front() is used from that thread only.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "shoal/engine.h"

namespace shoal::cli {

struct OfflineOptions {
  uint32_t repair_rate_mib_s = 0;  // background repair after Open (0: none)
  uint32_t scrub_rate_mib_s = 0;   // background scrub (0: none)
  uint32_t join_timeout_ms = 20000;  // one process: the members meet in milliseconds
};

// The store directories found from `args` (sorted, each once), with their node names.
struct FoundStore {
  std::string dir;
  std::string node;
};
Result<std::vector<FoundStore>> FindStores(const std::vector<std::string>& args);

class OfflineWorld {
 public:
  static Result<std::unique_ptr<OfflineWorld>> Open(const std::vector<FoundStore>& stores,
                                                    const OfflineOptions& options);
  ~OfflineWorld();  // a barrier of every member, then every close, in parallel

  Engine& front() { return *engines_[0]; }
  Engine& member(size_t i) { return *engines_[i]; }
  size_t size() const { return engines_.size(); }
  const std::vector<FoundStore>& stores() const { return stores_; }

 private:
  OfflineWorld() = default;
  std::vector<FoundStore> stores_;
  std::vector<std::unique_ptr<Engine>> engines_;
  std::string rendezvous_dir_;
};

}  // namespace shoal::cli
