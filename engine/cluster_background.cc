// Cluster: background work after an Open, in one thread per member:
//   catch up the shards it owns without a current copy (below);
//   repair   (when the membership changed) below;
//   drop     the shard copies retired at Open (it neither owns nor holds them any more);
//   sweep    this member's chunk objects sealed before the Open whose world object is gone (a
//            remove or an abort with an unknown outcome while it was down or unreachable): each
//            local chunk object records its world path (its origin), whose inode must still
//            name it, else it is dropped;
//   scrub    every local chunk object read back at ClusterOptions::scrub_rate (CRC32C checked
//            per chunk); a damaged one is dropped and its object repaired from the replicas.
// Background repair. After an Open whose membership changed (a member joined, came
// back, went down or was declared lost), or whose member's last pass was cut short (its
// "repair-pending" record, MetaStore::SetRepairPending, cleared only by a whole pass), every member walks the metadata shards it is the
// primary of — so each object is visited by exactly one member — and repairs every striped
// object there (cluster_repair.cc: chunks below the object's or the world's replica count get
// copies on live members), at most ClusterOptions::repair_rate bytes of copies per second.
// Progress goes to the log every few seconds; WaitForRepair waits for the end. Readers and
// writers are served meanwhile (a repair's record update names the object's uid, so a remove
// or a new object at the path wins).
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <thread>
#include <vector>

#include "base/log.h"
#include "engine/cluster.h"
#include "engine/path.h"
#include "engine/store_layout.h"

namespace shoal::engine {

void Cluster::StartBackground(bool repair) {
  repair = repair && options_.repair_rate != 0;
  const bool catching = !catch_up_.empty() && options_.catch_up;
  const bool dropping = !retired_.empty() && options_.drop_retired;
  {
    MutexLock lk(&bg_mu_);
    bg_running_ = repair || catching || dropping;
    bg_status_ = Status::OK();
    bg_report_ = RepairReport{};
  }
  bg_thread_ = std::thread([this, repair, catching, dropping] {
    RepairReport report;
    Status status;
    if (catching) status = CatchUp(&report);
    if (repair && !bg_stop_.load()) {
      Status s = BackgroundRepair(&report);
      if (s.ok() && !bg_stop_.load()) {  // a whole pass: the next Open need not repair
        if (Status c = ring_->SetRepairPending(false); !c.ok()) {
          Log(LogLevel::kWarn, "clearing the pending background repair: {}", c.ToString());
        }
      }
      if (status.ok()) status = s;
    }
    if (dropping && !bg_stop_.load()) DropRetired();
    if (repair || catching || dropping) {
      MutexLock lk(&bg_mu_);
      bg_report_ = std::move(report);
      bg_status_ = status;
      bg_running_ = false;
      bg_cv_.notify_all();
    }
    if (!bg_stop_.load()) SweepOrphans();
    if (!bg_stop_.load() && options_.scrub_rate != 0) Scrub();
  });
}

Status Cluster::CatchUp(RepairReport* report) {
  const auto started = std::chrono::steady_clock::now();
  const uint64_t epoch = membership_.epoch;
  Status status;
  uint64_t done = 0;
  for (const auto& [shard, from] : catch_up_) {
    if (bg_stop_.load()) {
      status = Status::Unavailable("catching up stopped: the engine is closing");
      break;
    }
    // Every holder has every acknowledged write: the first reachable one is enough (the next
    // Open merges the holders' copies where they differ).
    Status merged = Status::Unavailable(
        fmt::format("metadata shard {}: no holder reachable to catch up from", shard));
    for (uint32_t src : from) {
      if (!Reachable(src)) continue;
      uint64_t pulled = 0;
      merged = MergeShard(shard, {src}, &pulled);
      report->metadata_copied += pulled;
      if (merged.ok()) break;
    }
    if (merged.ok()) merged = ring_->AddCaughtUp(epoch, shard);
    if (merged.ok()) service_->CaughtUp(shard);  // serves lookups of the shard from now on
    if (!merged.ok()) {
      // The copy stays behind: the next Open treats it as stale and this shard's holders
      // keep serving it.
      Log(LogLevel::kWarn, "catching up with metadata shard {}: {}", shard, merged.ToString());
      if (status.ok()) status = merged;
      continue;
    }
    done++;
  }
  Log(LogLevel::kInfo, "caught up with {} of {} metadata shard(s) in {:.1f} s: {} record(s) merged",
      done, catch_up_.size(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
      report->metadata_copied);
  return status;
}

void Cluster::DropRetired() {
  const auto started = std::chrono::steady_clock::now();
  uint64_t done = 0;
  for (uint32_t shard : retired_) {
    if (bg_stop_.load()) break;
    if (Status s = ring_->DropShard(shard); !s.ok()) {
      // Left to the next Open, which retires the copy again.
      Log(LogLevel::kWarn, "dropping the retired copy of metadata shard {}: {}", shard,
          s.ToString());
      continue;
    }
    service_->Dropped(shard);
    done++;
  }
  Log(LogLevel::kInfo, "dropped {} of {} retired metadata shard copies in {:.1f} s", done,
      retired_.size(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
}

void Cluster::StopBackgroundRepair() {
  {
    MutexLock lk(&bg_mu_);
    bg_stop_.store(true);
    bg_cv_.notify_all();  // wakes a rate limiter's pause
  }
  if (bg_thread_.joinable()) bg_thread_.join();
}

void Cluster::PauseBackground(std::chrono::duration<double> d) {
  MutexLock lk(&bg_mu_);
  (void)AwaitFor(bg_cv_, &bg_mu_, std::chrono::duration_cast<std::chrono::milliseconds>(d) +
                                      std::chrono::milliseconds(1),
                 [&]() REQUIRES(bg_mu_) { return bg_stop_.load(); });
}

void Cluster::ForEachLocalChunkObject(
    const std::function<void(uint64_t uid, uint64_t size)>& fn) {
  std::string after;
  for (;;) {
    auto page = store_->ListChunkObjects(after, 1000);
    if (!page.ok()) return;  // an error the next scan meets again
    for (const DirEntry& e : page->entries) {
      if (bg_stop_.load()) return;
      // The page's sizes are the sealed objects' (an object removed since the page was read
      // is met as NotFound by the caller's next step, which skips it).
      fn(std::strtoull(e.name.c_str(), nullptr, 16), e.size);
    }
    if (!page->truncated) return;
    after = page->next_start_after;
  }
}

Result<std::vector<LocalObject>> Cluster::LocalObjects(std::string_view dir) {
  return LocalObjectsOf(*store_, dir);
}

void Cluster::SweepOrphans() {
  uint64_t swept = 0, bytes = 0;
  ForEachLocalChunkObject([&](uint64_t uid, uint64_t size) {
    auto origin = store_->OriginOf(ChunkObjectName(uid));
    if (!origin.ok()) return;  // written before origins were recorded: cannot tell
    uint64_t epoch = 0;
    std::string path;
    if (!DecodeOrigin(*origin, &epoch, &path)) return;
    // Only what was committed in an earlier epoch: a seal of this epoch may not have recorded
    // its inode yet.
    if (epoch >= membership_.epoch) return;
    // An orphan only when every member serving the path's metadata says there is no such
    // object, or names another one: any other answer leaves the decision to a later sweep.
    const std::vector<uint32_t> owners = Owners(path);
    if (owners.empty()) return;
    for (uint32_t owner : owners) {
      auto inode = client_->MetaGet(owner, path);
      if (inode.ok()) {
        if (inode->is_striped && inode->uid == uid) return;
        for (const Inode::Copy& c : inode->copies) {
          if (c.uid == uid && c.member.member_id == store_->member_id()) return;
        }
      } else if (inode.status().code() != Code::kNotFound) {
        return;
      }
    }
    if (service_->ChunkDrop(uid).ok()) {
      swept++;
      bytes += size;
    }
  });
  if (swept != 0) {
    orphans_swept_->Add(swept);
    Log(LogLevel::kInfo, "swept {} orphaned chunk object(s) ({:.1f} MiB) of removed or aborted "
        "objects", swept, static_cast<double>(bytes) / (1 << 20));
  }
}

void Cluster::Scrub() {
  observer::ScrubReport report;
  ScrubPass(options_.scrub_rate, &report);
  if (report.bytes != 0) {
    Log(LogLevel::kDebug, "scrub: {:.1f} MiB of chunks verified, {} damaged",
        static_cast<double>(report.bytes) / (1 << 20), report.damaged);
  }
}

void Cluster::ScrubPass(uint64_t rate, observer::ScrubReport* out) {
  using Clock = std::chrono::steady_clock;
  const auto started = Clock::now();
  uint64_t read = 0;
  std::vector<std::byte> buf(options_.chunk_size);
  ForEachLocalChunkObject([&](uint64_t uid, uint64_t size) {
    Status s;
    out->chunk_objects++;
    for (uint64_t off = 0; off < size && s.ok() && !bg_stop_.load();) {
      const uint64_t n = std::min<uint64_t>(buf.size(), size - off);
      ReadRequest rq{ChunkObjectName(uid), off, {buf.data(), n}, {}, 0};
      (void)store_->ReadBatch({&rq, 1});
      s = rq.status;
      off += n;
      read += n;
      if (rate == 0) continue;
      const double allowed_s = static_cast<double>(read) / static_cast<double>(rate);
      const double elapsed_s = std::chrono::duration<double>(Clock::now() - started).count();
      if (allowed_s > elapsed_s) {
        PauseBackground(std::chrono::duration<double>(allowed_s - elapsed_s));
      }
    }
    if (s.code() != Code::kCorruption) return;
    // A damaged chunk: this member's copy goes, the object's repair copies it from a replica.
    // One fix at a time: another pass (the background one, a guest's) may have just fixed
    // this very object, whose damaged copy is then gone.
    MutexLock fixing(&scrub_fix_mu_);
    if (store_->Stat(ChunkObjectName(uid)).status().code() == Code::kNotFound) {
      out->damaged++;
      out->repaired++;
      return;
    }
    out->damaged++;
    scrub_bad_->Add();
    auto origin = store_->OriginOf(ChunkObjectName(uid));
    uint64_t epoch = 0;
    std::string path;
    const bool known = origin.ok() && DecodeOrigin(*origin, &epoch, &path);
    Log(LogLevel::kWarn, "scrub: {} ({}): {}", ChunkObjectName(uid),
        known ? path : std::string("origin unknown"), s.ToString());
    if (!known) {
      out->unrepaired.push_back(ChunkObjectName(uid));
      return;
    }
    // Drop this copy only when every chunk it holds has another live replica: a damaged copy
    // that is the last one is better than none (a read of its good chunks still works).
    auto inode = LookupInode(path);
    if (!inode.ok() || !inode->is_striped) {
      out->unrepaired.push_back(path);
      return;
    }
    std::unique_ptr<Placement> scratch;
    const Placement& placement = PlacementFor(*inode, &scratch);
    for (uint64_t chunk = 0; chunk < inode->NumChunks(); ++chunk) {
      if (!inode->ChunkWritten(chunk)) continue;
      bool mine = false, other = false;
      for (const Replica& r : LiveReplicas(*inode, placement, chunk)) {
        if (r.rank == world_->rank() && r.uid == uid) mine = true;
        else other = true;
      }
      if (mine && !other) {
        Log(LogLevel::kWarn, "scrub: {} holds the only live copy of chunk {} of \"{}\": kept",
            ChunkObjectName(uid), chunk, path);
        out->unrepaired.push_back(path);
        return;
      }
    }
    RepairReport report;
    Status dropped = service_->ChunkDrop(uid);
    Status repaired = dropped.ok() ? RepairObject(path, &report) : dropped;
    if (repaired.ok() && report.lost.empty()) {
      scrub_repaired_->Add();
      out->repaired++;
    } else {
      out->unrepaired.push_back(path);
    }
    Log(repaired.ok() && report.lost.empty() ? LogLevel::kInfo : LogLevel::kWarn,
        "scrub: \"{}\" repaired from its replicas ({} chunk(s) copied){}", path,
        report.chunks_copied, repaired.ok() ? std::string() : ": " + repaired.ToString());
  });
  scrubbed_bytes_->Add(read);
  out->bytes += read;
  out->ms += std::chrono::duration<double, std::milli>(Clock::now() - started).count();
}

Status Cluster::BackgroundRepair(RepairReport* out) {
  using Clock = std::chrono::steady_clock;
  const auto started = Clock::now();
  auto last_log = started;
  RepairReport& report = *out;
  Status status;
  std::vector<uint32_t> mine;
  for (uint32_t s = 0; s < membership_.shards; ++s) {
    const auto ranks = ShardRanks(s);
    if (!ranks.empty() && ranks[0] == world_->rank()) mine.push_back(s);
  }
  uint64_t done_shards = 0;
  std::atomic<uint64_t> copied{0};  // bytes copied by every worker so far
  for (uint32_t shard : mine) {
    std::string after;
    do {
      std::string next;
      auto page = ring_->ShardPage(shard, after, 256, &next);
      if (!page.ok()) {
        status = page.status().WithContext(fmt::format("background repair of shard {}", shard));
        break;
      }
      // The page's striped objects, repaired repair_parallelism at a time (their round trips
      // overlap); each worker keeps its own report, summed after the page.
      std::vector<const std::string*> paths;
      for (const MetaStore::Versioned& rec : *page) {
        if (rec.tombstone) continue;
        auto inode = DecodeInode(rec.inode, rec.path);
        if (inode.ok() && inode->is_striped) paths.push_back(&rec.path);
      }
      std::atomic<size_t> next_object{0};
      Mutex page_mu;  // status and report, from the workers
      auto work = [&] {
        RepairReport part;
        for (size_t i = next_object++; i < paths.size() && !bg_stop_.load(); i = next_object++) {
          const uint64_t before = part.bytes_copied;
          Status s = RepairObject(*paths[i], &part);
          if (!s.ok()) {
            Log(LogLevel::kWarn, "background repair of \"{}\": {}", *paths[i], s.ToString());
            MutexLock lk(&page_mu);
            if (status.ok()) status = s;
          }
          // At most repair_rate bytes per second since the start, over all workers.
          const double allowed_s =
              static_cast<double>(copied.fetch_add(part.bytes_copied - before) +
                                  (part.bytes_copied - before)) /
              static_cast<double>(options_.repair_rate);
          const double elapsed_s =
              std::chrono::duration<double>(Clock::now() - started).count();
          if (allowed_s > elapsed_s) {
            PauseBackground(std::chrono::duration<double>(allowed_s - elapsed_s));
          }
        }
        MutexLock lk(&page_mu);
        report.objects += part.objects;
        report.chunks_copied += part.chunks_copied;
        report.bytes_copied += part.bytes_copied;
        report.lost.insert(report.lost.end(), part.lost.begin(), part.lost.end());
      };
      const size_t workers =
          std::min<size_t>(std::max<uint32_t>(options_.repair_parallelism, 1), paths.size());
      std::vector<std::thread> pool;
      for (size_t w = 1; w < workers; ++w) pool.emplace_back(work);
      work();
      for (auto& t : pool) t.join();
      if (Clock::now() - last_log > std::chrono::seconds(5)) {
        last_log = Clock::now();
        Log(LogLevel::kInfo,
            "background repair: {} of {} shard(s), {} object(s), {} chunk(s) ({:.1f} MiB) "
            "copied",
            done_shards, mine.size(), report.objects, report.chunks_copied,
            static_cast<double>(report.bytes_copied) / (1 << 20));
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
  if (bg_stop_.load()) {
    // Members closing meanwhile answer with errors: what this pass found is not a finding.
    Log(LogLevel::kInfo, "background repair stopped by close after {:.1f} s ({} object(s), {} "
        "chunk(s) copied)", secs, report.objects, report.chunks_copied);
  } else if (report.chunks_copied != 0 || !report.lost.empty() || !status.ok()) {
    Log(status.ok() ? LogLevel::kInfo : LogLevel::kWarn,
        "background repair done in {:.1f} s: {} object(s), {} chunk(s) ({:.1f} MiB) copied, {} "
        "lost{}",
        secs, report.objects, report.chunks_copied,
        static_cast<double>(report.bytes_copied) / (1 << 20), report.lost.size(),
        status.ok() ? std::string() : "; " + status.ToString());
  }
  return status;
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
