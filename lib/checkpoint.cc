#include "shoal/checkpoint.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <thread>

#include "base/crc32c.h"
#include "base/log.h"
#include "engine/object_rules.h"
#include "engine/path.h"
#include "lib/checkpoint_commit.h"
#include "lib/checkpoint_tags.h"
#include "lib/checkpointer_impl.h"
#include "lib/manifest.h"
#include "lib/save_job.h"
#include "lib/staging_pool.h"

namespace shoal {

// ---------------------------------------------------------------------------------------------
// SaveHandle

SaveHandle::SaveHandle() : state_(std::make_shared<State>()) {
  // Nothing will ever finish this state: it is born finished, so Wait cannot block.
  state_->Finish(Status::FailedPrecondition("no save: this SaveHandle was default-constructed, "
                                            "not returned by CheckpointSave::Commit"),
                 std::chrono::nanoseconds(0));
}
SaveHandle::SaveHandle(std::shared_ptr<State> state) : state_(std::move(state)) {}

Status SaveHandle::Wait() const {
  std::unique_lock lk(state_->mu);
  state_->cv.wait(lk, [&] { return state_->done; });
  return state_->status;
}

bool SaveHandle::done() const {
  std::lock_guard lk(state_->mu);
  return state_->done;
}

std::chrono::nanoseconds SaveHandle::duration() const {
  std::lock_guard lk(state_->mu);
  return state_->duration;
}

// ---------------------------------------------------------------------------------------------
// SaveJob: the caller's side of an abandoned save (the rest by concern: save_job.h)

void SaveJob::Discard() {
  std::vector<BlobInfo> mine;
  {
    std::lock_guard lk(mu);
    mine = blobs;
  }
  for (const BlobInfo& b : mine) (void)engine->Remove(BlobPath(b.name));
}

// ---------------------------------------------------------------------------------------------
// CheckpointSave

class CheckpointSave::Impl {
 public:
  std::shared_ptr<SaveJob> job;
};

CheckpointSave::CheckpointSave(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CheckpointSave::~CheckpointSave() {
  SaveJob& job = *impl_->job;
  {
    std::lock_guard lk(job.mu);
    if (job.committed) return;
  }
  if (job.async) job.StopWriter();
  job.Discard();
  job.handle->Finish(Status::FailedPrecondition("checkpoint save abandoned before Commit"), {});
}

const std::string& CheckpointSave::tag() const { return impl_->job->tag; }

Status CheckpointSave::Save(std::string_view name, std::span<const std::byte> data) {
  const std::span<const std::byte> one[] = {data};
  return Save(name, std::span<const std::span<const std::byte>>(one));
}

Status CheckpointSave::Save(std::string_view name,
                            std::span<const std::span<const std::byte>> pieces) {
  SaveJob& job = *impl_->job;
  {
    std::lock_guard lk(job.mu);
    if (job.committed) return Status::FailedPrecondition("checkpoint save already committed");
    if (!job.error.ok()) return job.error;
    if (job.names.count(name) != 0) {
      return Status::AlreadyExists(fmt::format("blob \"{}\" saved twice", name));
    }
  }
  if (name.empty() || !IsUtf8(name)) {
    return Status::InvalidArgument(fmt::format("blob name \"{}\" must be non-empty UTF-8", name));
  }
  const std::string path = job.BlobPath(name);
  SHOAL_RETURN_IF_ERROR(engine::ValidateObjectPath(path).WithContext("blob name"));
  uint64_t size = 0;
  for (const auto& p : pieces) size += p.size();
  CreateOptions co;
  co.size = size;
  co.local_first = true;  // a rank restores its own shard from its own disk
  if (!job.async) {
    SHOAL_RETURN_IF_ERROR(job.engine->Create(path, co));
    uint32_t crc = 0;
    uint64_t off = 0;
    Status s;
    for (const auto& p : pieces) {
      if (p.empty()) continue;
      crc = Crc32c(p.data(), p.size(), crc);
      s = job.engine->Write(path, off, p);
      if (!s.ok()) break;
      off += p.size();
    }
    if (s.ok()) s = job.engine->Seal(path);
    if (!s.ok()) {
      (void)job.engine->Abort(path);
      return s;
    }
    std::lock_guard lk(job.mu);
    job.names.insert(std::string(name));
    job.blobs.push_back({std::string(name), size, crc, job.engine->rank()});
    return Status::OK();
  }
  SHOAL_RETURN_IF_ERROR(job.engine->Create(path, co));
  job.Stage(path, name, size, pieces);
  return Status::OK();
}

SaveHandle CheckpointSave::Commit(std::string_view metadata) {
  SaveJob& job = *impl_->job;
  {
    std::lock_guard lk(job.mu);
    if (job.committed) {
      auto done = std::make_shared<SaveHandle::State>();
      done->Finish(Status::FailedPrecondition("checkpoint save already committed"), {});
      return SaveHandle(done);
    }
    job.committed = true;
  }
  if (job.async) {
    job.Push(SaveJob::Item::Commit(metadata));
    return SaveHandle(job.handle);
  }
  job.CommitAndFinish(metadata);
  return SaveHandle(job.handle);
}

// ---------------------------------------------------------------------------------------------
// Checkpointer

Checkpointer::Checkpointer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Checkpointer::~Checkpointer() = default;

Result<std::unique_ptr<Checkpointer>> Checkpointer::Open(Engine& engine,
                                                         const CheckpointOptions& options) {
  if (options.root.empty()) return Status::InvalidArgument("CheckpointOptions: empty root");
  SHOAL_RETURN_IF_ERROR(engine::ValidateDirPath(options.root).WithContext("CheckpointOptions::root"));
  if (options.async && options.staging_bytes < (1u << 20)) {
    return Status::InvalidArgument(fmt::format(
        "CheckpointOptions: staging_bytes {} is below 1 MiB", options.staging_bytes));
  }
  return std::unique_ptr<Checkpointer>(
      new Checkpointer(std::make_unique<Impl>(engine, options)));
}

Engine& Checkpointer::engine() { return impl_->engine_; }

Result<std::unique_ptr<CheckpointSave>> Checkpointer::Begin(std::string_view tag) {
  impl_->WaitInflight();  // the next save waits for the previous one
  SHOAL_RETURN_IF_ERROR(ValidateTag(tag));
  Engine& e = impl_->engine_;
  // Rank 0 checks the tag is new, applies retention and collects what crashed saves left,
  // before anyone writes.
  Status ready;
  if (e.rank() == 0) {
    auto found = impl_->Find(tag);
    if (found.ok()) {
      ready = Status::AlreadyExists(fmt::format("checkpoint \"{}\" is committed", tag));
    } else if (found.status().code() != Code::kNotFound) {
      ready = found.status();
    } else {
      // Retention first: what a previous commit's retention left (its rank 0 killed or failing
      // between publish and retention) goes before this save can publish, so at most
      // keep_last + 1 tags are ever listed (include/shoal/checkpoint.h, CheckpointOptions).
      if (impl_->options_.keep_last > 0) {
        auto removed = impl_->Retain(impl_->options_.keep_last);
        ready = removed.status();
        if (removed.ok() && *removed > 0) {
          Log(LogLevel::kInfo, "checkpoint: retention removed {} tag(s) a previous commit left",
              *removed);
        }
      }
    }
    if (ready.ok()) {  // the tag is new and retention done
      auto collected = impl_->Collect();
      ready = collected.status();
      if (collected.ok() && !collected->tags.empty()) {
        Log(LogLevel::kInfo, "checkpoint: collected {} objects of {} uncommitted tag(s)",
            collected->objects, collected->tags.size());
      }
    }
  }
  SHOAL_RETURN_IF_ERROR(Rank0Verdict(e, ready).WithContext(fmt::format("beginning \"{}\"", tag)));

  auto job = std::make_shared<SaveJob>();
  job->engine = &e;
  job->root = impl_->options_.root;
  job->tag = std::string(tag);
  job->async = impl_->options_.async;
  if (e.rank() == 0 && impl_->options_.keep_last > 0) {
    job->after_publish = [impl = impl_.get(), keep = impl_->options_.keep_last] {
      auto removed = impl->Retain(keep);
      if (!removed.ok()) {
        Log(LogLevel::kWarn, "checkpoint retention: {}", removed.status().ToString());
      }
    };
  }
  if (job->async) {
    if (!impl_->pool_) impl_->pool_ = std::make_unique<StagingPool>(impl_->options_.staging_bytes);
    job->pool = impl_->pool_.get();
    SaveJob* raw = job.get();
    job->worker = std::thread([raw] { raw->Work(); });
    std::lock_guard lk(impl_->mu_);
    impl_->inflight_ = job;
  }
  auto impl = std::make_unique<CheckpointSave::Impl>();
  impl->job = std::move(job);
  return std::unique_ptr<CheckpointSave>(new CheckpointSave(std::move(impl)));
}

Result<std::vector<TagInfo>> Checkpointer::List() { return impl_->Tags(); }

Result<std::string> Checkpointer::Latest() {
  SHOAL_ASSIGN_OR_RETURN(auto tags, impl_->Tags());
  if (tags.empty()) {
    return Status::NotFound(fmt::format("no committed checkpoint in \"{}\"", impl_->options_.root));
  }
  return tags.back().tag;
}

Result<CheckpointManifest> Checkpointer::GetManifest(std::string_view tag) {
  SHOAL_ASSIGN_OR_RETURN(TagInfo t, impl_->Find(tag));
  const std::string path = ManifestPath(impl_->options_.root, t.sequence, t.tag);
  SHOAL_ASSIGN_OR_RETURN(ObjectInfo info, impl_->engine_.Stat(path));
  std::string json(info.size, '\0');
  SHOAL_ASSIGN_OR_RETURN(uint64_t n, impl_->engine_.Read(path, 0, std::as_writable_bytes(std::span(json))));
  if (n != info.size) return Status::Corruption(fmt::format("manifest {}: short read", path));
  SHOAL_ASSIGN_OR_RETURN(CheckpointManifest m, DecodeManifest(json, path));
  if (m.tag != t.tag || m.sequence != t.sequence) {
    return Status::Corruption(fmt::format("manifest {} names tag \"{}\" sequence {}", path, m.tag,
                                          m.sequence));
  }
  return m;
}

const BlobInfo* CheckpointManifest::Find(std::string_view name) const {
  auto it = std::lower_bound(blobs.begin(), blobs.end(), name,
                             [](const BlobInfo& b, std::string_view n) { return b.name < n; });
  return it != blobs.end() && it->name == name ? &*it : nullptr;
}

namespace {

Result<const BlobInfo*> BlobOf(const CheckpointManifest& m, std::string_view name) {
  const BlobInfo* b = m.Find(name);
  if (b == nullptr) {
    return Status::NotFound(fmt::format("checkpoint \"{}\" has no blob \"{}\"", m.tag, name));
  }
  return b;
}

}  // namespace

Status Checkpointer::Load(const CheckpointManifest& m, std::string_view name,
                          std::span<std::byte> dst) {
  SHOAL_ASSIGN_OR_RETURN(const BlobInfo* b, BlobOf(m, name));
  if (dst.size() != b->size) {
    return Status::InvalidArgument(fmt::format("blob \"{}\" of \"{}\" has {} bytes, buffer {}",
                                               name, m.tag, b->size, dst.size()));
  }
  SHOAL_ASSIGN_OR_RETURN(uint64_t n, Read(m, name, 0, dst));
  if (n != b->size) {
    return Status::Corruption(fmt::format("blob \"{}\" of \"{}\": {} bytes stored, manifest says {}",
                                          name, m.tag, n, b->size));
  }
  if (impl_->options_.verify_on_load && Crc32c(dst.data(), dst.size()) != b->crc32c) {
    return Status::Corruption(
        fmt::format("blob \"{}\" of \"{}\": CRC32C differs from the manifest", name, m.tag));
  }
  return Status::OK();
}

Result<uint64_t> Checkpointer::Read(const CheckpointManifest& m, std::string_view name,
                                    uint64_t offset, std::span<std::byte> dst) {
  SHOAL_RETURN_IF_ERROR(BlobOf(m, name).status());
  return impl_->engine_.Read(BlobPath(impl_->options_.root, m.tag, name), offset, dst);
}

Status Checkpointer::ReadBatch(const CheckpointManifest& m, std::string_view name,
                               std::span<ReadRequest> requests) {
  SHOAL_RETURN_IF_ERROR(BlobOf(m, name).status());
  const std::string path = BlobPath(impl_->options_.root, m.tag, name);
  for (ReadRequest& r : requests) r.path = path;
  return impl_->engine_.ReadBatch(requests);
}

Result<RepairReport> Checkpointer::Repair() { return impl_->engine_.Repair(impl_->options_.root); }

}  // namespace shoal
