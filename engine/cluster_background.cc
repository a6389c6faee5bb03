// Cluster: background repair. After an Open whose membership changed (a member joined, came
// back, went down or was declared lost), every member walks the metadata shards it is the
// primary of — so each object is visited by exactly one member — and repairs every striped
// object there (cluster_repair.cc: chunks below the object's or the world's replica count get
// copies on live members), at most ClusterOptions::repair_rate bytes of copies per second.
// Progress goes to the log every few seconds; WaitForRepair waits for the end. Readers and
// writers are served meanwhile (a repair's record update names the object's uid, so a remove
// or a new object at the path wins).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "base/log.h"
#include "engine/cluster.h"

namespace shoal::engine {

void Cluster::StartBackgroundRepair() {
  if (options_.repair_rate == 0) return;
  {
    MutexLock lk(&bg_mu_);
    bg_running_ = true;
    bg_status_ = Status::OK();
    bg_report_ = RepairReport{};
  }
  bg_thread_ = std::thread([this] { BackgroundRepair(); });
}

void Cluster::StopBackgroundRepair() {
  bg_stop_.store(true);
  if (bg_thread_.joinable()) bg_thread_.join();
}

void Cluster::BackgroundRepair() {
  using Clock = std::chrono::steady_clock;
  const auto started = Clock::now();
  auto last_log = started;
  RepairReport report;
  Status status;
  std::vector<uint32_t> mine;
  for (uint32_t s = 0; s < membership_.shards; ++s) {
    const auto ranks = ShardRanks(s);
    if (!ranks.empty() && ranks[0] == world_->rank()) mine.push_back(s);
  }
  uint64_t done_shards = 0;
  for (uint32_t shard : mine) {
    std::string after;
    do {
      std::string next;
      auto page = ring_->ShardPage(shard, after, 256, &next);
      if (!page.ok()) {
        status = page.status().WithContext(fmt::format("background repair of shard {}", shard));
        break;
      }
      for (const MetaStore::Versioned& rec : *page) {
        if (bg_stop_.load()) break;
        if (rec.tombstone) continue;
        auto inode = DecodeInode(rec.inode, rec.path);
        if (!inode.ok() || !inode->is_striped) continue;
        Status s = RepairObject(rec.path, &report);
        if (!s.ok()) {
          Log(LogLevel::kWarn, "background repair of \"{}\": {}", rec.path, s.ToString());
          if (status.ok()) status = s;
        }
        // At most repair_rate bytes per second since the start.
        const double allowed_s = static_cast<double>(report.bytes_copied) /
                                 static_cast<double>(options_.repair_rate);
        const double elapsed_s = std::chrono::duration<double>(Clock::now() - started).count();
        if (allowed_s > elapsed_s) {
          std::this_thread::sleep_for(std::chrono::duration<double>(allowed_s - elapsed_s));
        }
        if (Clock::now() - last_log > std::chrono::seconds(5)) {
          last_log = Clock::now();
          Log(LogLevel::kInfo,
              "background repair: {} of {} shard(s), {} object(s), {} chunk(s) ({:.1f} MiB) "
              "copied",
              done_shards, mine.size(), report.objects, report.chunks_copied,
              static_cast<double>(report.bytes_copied) / (1 << 20));
        }
      }
      after = std::move(next);
    } while (!after.empty() && !bg_stop_.load());
    done_shards++;
    if (bg_stop_.load()) {
      status = Status::Unavailable("background repair stopped: the engine is closing");
      break;
    }
  }
  const double secs = std::chrono::duration<double>(Clock::now() - started).count();
  if (report.chunks_copied != 0 || !report.lost.empty() || !status.ok()) {
    Log(status.ok() ? LogLevel::kInfo : LogLevel::kWarn,
        "background repair done in {:.1f} s: {} object(s), {} chunk(s) ({:.1f} MiB) copied, {} "
        "lost{}",
        secs, report.objects, report.chunks_copied,
        static_cast<double>(report.bytes_copied) / (1 << 20), report.lost.size(),
        status.ok() ? std::string() : "; " + status.ToString());
  }
  MutexLock lk(&bg_mu_);
  bg_report_ = std::move(report);
  bg_status_ = status;
  bg_running_ = false;
  bg_cv_.notify_all();
}

Result<RepairReport> Cluster::WaitForRepair(std::chrono::milliseconds timeout) {
  MutexLock lk(&bg_mu_);
  if (!AwaitFor(bg_cv_, &bg_mu_, timeout, [&]() REQUIRES(bg_mu_) { return !bg_running_; })) {
    return Status::Timeout(fmt::format("background repair still running after {} ms",
                                       timeout.count()));
  }
  if (!bg_status_.ok()) return bg_status_;
  return bg_report_;
}

}  // namespace shoal::engine
