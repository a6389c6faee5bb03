// Session: the world a shoal store command runs on — the stores named on the command line
// opened together in this process (offline_world.h), or a running job observed live as a guest
// with its token (lib/observer.h) — and what `status`, `scrub` and `fsck` ask of each member.
//
// Which: `--job FILE` (a `shoal run --store ROOT` job writes ROOT/shoal-job while it runs:
// its token and rendezvous) is live; so is a store root holding a shoal-job file, unless
// `--offline`. A job file beside the stores whose launcher is gone (it was SIGKILLed and
// could not remove it) is said on stderr and the stores are opened offline. A live world is read-only to the CLI: writing commands are
// refused before anything is done (change a live world from the job, or stop it first).
//
// Threads: one thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bindings/cli/offline_world.h"
#include "engine/observer_protocol.h"
#include "shoal/engine.h"

namespace shoal::cli {

struct SessionSpec {
  std::vector<std::string> stores;  // --store
  std::string job_file;             // --job
  bool offline = false;             // --offline: never observe
};

// What a job file says (KEY=VALUE lines: SHOAL_TOKEN, SHOAL_RENDEZVOUS, SHOAL_WORLD_SIZE,
// SHOAL_LAUNCHER_PID).
struct JobFile {
  std::string token;
  std::string rendezvous;
  uint32_t ranks = 0;
  int64_t launcher_pid = 0;  // 0: not said (a job file written by hand)
};
Result<JobFile> ReadJobFile(const std::string& path);

class Session {
 public:
  static Result<std::unique_ptr<Session>> Open(const SessionSpec& spec);
  ~Session();

  Engine& engine();
  bool live() const { return live_; }
  // "offline: 4 store(s) opened by this process" or "live: job tcp:127.0.0.1:29400 (FILE)".
  const std::string& description() const { return description_; }
  uint32_t members() const;
  // Member i's store directory (offline), or "" (live).
  std::string store(uint32_t i) const;
  Result<engine::observer::MemberReport> Report(uint32_t i);
  Result<engine::observer::ScrubReport> Scrub(uint32_t i);

 private:
  Session() = default;
  bool live_ = false;
  std::string description_;
  std::unique_ptr<OfflineWorld> offline_;
  struct Live;
  std::unique_ptr<Live> observed_;
};

}  // namespace shoal::cli
