#include "bindings/cli/session.h"

#include <fmt/format.h>

#include <signal.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

#include "engine/cluster_group.h"
#include "lib/engine_impl.h"
#include "lib/observer.h"

namespace shoal::cli {
namespace {

namespace fs = std::filesystem;
constexpr std::chrono::hours kScrubDeadline{24};

}  // namespace

struct Session::Live {
  ObservedWorld world;
};

Result<JobFile> ReadJobFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound(fmt::format("job file {}: cannot be read", path));
  JobFile job;
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "SHOAL_TOKEN") job.token = value;
    if (key == "SHOAL_RENDEZVOUS") job.rendezvous = value;
    if (key == "SHOAL_WORLD_SIZE") job.ranks = static_cast<uint32_t>(std::strtoul(value.c_str(), nullptr, 10));
    if (key == "SHOAL_LAUNCHER_PID") job.launcher_pid = std::strtoll(value.c_str(), nullptr, 10);
  }
  if (job.token.empty() || job.rendezvous.empty()) {
    return Status::InvalidArgument(
        fmt::format("job file {}: no SHOAL_TOKEN or SHOAL_RENDEZVOUS line", path));
  }
  return job;
}

Result<std::unique_ptr<Session>> Session::Open(const SessionSpec& spec) {
  std::unique_ptr<Session> s(new Session());
  std::string job_file = spec.job_file;
  bool found_beside_stores = false;
  if (job_file.empty() && !spec.offline) {
    for (const std::string& root : spec.stores) {
      std::error_code ec;
      if (fs::is_regular_file(fs::path(root) / "shoal-job", ec)) {
        job_file = (fs::path(root) / "shoal-job").string();
        found_beside_stores = true;
        break;
      }
    }
  }
  if (!job_file.empty()) {
    SHOAL_ASSIGN_OR_RETURN(JobFile job, ReadJobFile(job_file));
    // A job file beside the stores whose launcher is gone is stale (the launcher was killed
    // before it could remove it): the stores are free.
    const bool stale = found_beside_stores && job.launcher_pid > 0 &&
                       ::kill(static_cast<pid_t>(job.launcher_pid), 0) != 0 && errno == ESRCH;
    if (!stale) {
      ObserveOptions o;
      o.rendezvous = job.rendezvous;
      o.token = job.token;
      auto observed = ObserveWorld(o);
      if (!observed.ok()) {
        return observed.status().WithContext(
            "observing the job of " + job_file +
            (found_beside_stores ? " (if that job ended, --offline opens the stores)" : ""));
      }
      s->live_ = true;
      s->observed_ = std::make_unique<Live>(Live{std::move(observed).value()});
      s->description_ = fmt::format("live: the job at {} ({}), observed", job.rendezvous, job_file);
      for (size_t i = 0; i < s->observed_->world.reached.size(); ++i) {
        const Status& r = s->observed_->world.reached[i];
        if (!r.ok()) std::fprintf(stderr, "shoal: member %zu: %s\n", i, r.ToString().c_str());
      }
      return s;
    }
    std::fprintf(stderr, "shoal: %s is stale (its launcher, pid %lld, is gone); opening the "
                 "stores offline\n", job_file.c_str(), static_cast<long long>(job.launcher_pid));
  }
  if (spec.stores.empty()) {
    return Status::InvalidArgument("name the world: --store DIR (its stores) or --job FILE");
  }
  SHOAL_ASSIGN_OR_RETURN(std::vector<FoundStore> found, FindStores(spec.stores));
  SHOAL_ASSIGN_OR_RETURN(s->offline_, OfflineWorld::Open(found, OfflineOptions{}));
  s->description_ =
      fmt::format("offline: {} store(s) opened by this process", s->offline_->size());
  return s;
}

Session::~Session() = default;

Engine& Session::engine() { return live_ ? *observed_->world.engine : offline_->front(); }

uint32_t Session::members() const {
  return live_ ? static_cast<uint32_t>(observed_->world.client->members().size())
               : static_cast<uint32_t>(offline_->size());
}

std::string Session::store(uint32_t i) const {
  return live_ || i >= offline_->size() ? std::string() : offline_->stores()[i].dir;
}

Result<engine::observer::MemberReport> Session::Report(uint32_t i) {
  if (live_) return observed_->world.client->Report(i);
  auto* group = dynamic_cast<engine::ClusterGroup*>(&offline_->member(i).internal().api());
  if (group == nullptr) return Status::Internal("an offline member is not a cluster");
  return group->member(0).Report();
}

Result<engine::observer::ScrubReport> Session::Scrub(uint32_t i) {
  if (live_) {
    return observed_->world.client->Scrub(
        i, std::chrono::duration_cast<std::chrono::milliseconds>(kScrubDeadline));
  }
  auto* group = dynamic_cast<engine::ClusterGroup*>(&offline_->member(i).internal().api());
  if (group == nullptr) return Status::Internal("an offline member is not a cluster");
  return group->member(0).ScrubNow();
}

}  // namespace shoal::cli
