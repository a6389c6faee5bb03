// Checkpointer::Impl: what one Checkpointer holds (its engine, options, the staging pool of
// async saves, the save in flight) and its lookups and retention over the committed tags.
//
// Lookups (Tags, Find) are in checkpoint_tags.cc, retention (Remove, Retain, Collect) in
// checkpoint_retention.cc. None of them is collective. `mu_` guards `inflight_` only; `pool_`
// is used by one save at a time (Begin waits for the previous one first).
#pragma once

#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "lib/save_job.h"
#include "lib/staging_pool.h"
#include "shoal/checkpoint.h"
#include "shoal/engine.h"
#include "shoal/result.h"

namespace shoal {

class Checkpointer::Impl {
 public:
  Impl(Engine& engine, CheckpointOptions options) : engine_(engine), options_(std::move(options)) {}
  ~Impl() { WaitInflight(); }

  Engine& engine_;
  const CheckpointOptions options_;
  std::unique_ptr<StagingPool> pool_;
  std::mutex mu_;
  std::shared_ptr<SaveJob> inflight_;  // async: the job whose background writer may run

  void WaitInflight() {
    std::shared_ptr<SaveJob> job;
    {
      std::lock_guard lk(mu_);
      job = std::move(inflight_);
    }
    if (job && job->worker.joinable()) job->worker.join();
  }

  // The committed tags, oldest first.
  Result<std::vector<TagInfo>> Tags();
  // Committed `tag`; NotFound when it is not.
  Result<TagInfo> Find(std::string_view tag);

  // Unpublishes committed `tag`, then removes its data.
  Status Remove(std::string_view tag);
  // Removes all but the newest `keep_last` committed tags; returns how many went.
  Result<uint32_t> Retain(uint32_t keep_last);
  // Removes the data of every tag without a manifest.
  Result<CollectReport> Collect();
};

}  // namespace shoal
