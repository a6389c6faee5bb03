#include "shoal/checkpoint.h"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "base/bytes.h"
#include "base/crc32c.h"
#include "base/log.h"
#include "engine/object_rules.h"
#include "engine/path.h"
#include "engine/protocol.h"
#include "lib/manifest.h"
#include "lib/staging_pool.h"

namespace shoal {
namespace {

namespace protocol = engine::protocol;

constexpr size_t kMaxMetadata = 64 << 10;
// async: the largest piece staged and written at once (one queue item). 8 MiB and 64 MiB
// measured the same blocked time (docs/bench.md); larger means fewer items.
constexpr uint64_t kMaxSlice = 64ull << 20;

// Collective: every rank returns rank 0's `verdict` (the others' argument is ignored).
Status Rank0Verdict(Engine& e, const Status& verdict) {
  auto told = e.AllGather(e.rank() == 0 ? protocol::Encode(protocol::Verdict{verdict})
                                        : std::vector<std::byte>{});
  if (!told.ok()) return told.status();
  if (e.rank() == 0) return verdict;
  protocol::Verdict v;
  SHOAL_RETURN_IF_ERROR(protocol::Decode((*told)[0], &v));
  return v.status;
}

// Every entry of `dir`; empty when it does not exist.
Result<std::vector<DirEntry>> ListAll(Engine& e, const std::string& dir) {
  std::vector<DirEntry> all;
  ListOptions lo;
  for (;;) {
    auto page = e.List(dir, lo);
    if (!page.ok()) {
      if (page.status().code() == Code::kNotFound) return all;
      return page.status();
    }
    all.insert(all.end(), page->entries.begin(), page->entries.end());
    if (!page->truncated) return all;
    lo.start_after = page->next_start_after;
  }
}

// The committed tags below `root`, oldest first.
Result<std::vector<TagInfo>> CommittedTags(Engine& e, std::string_view root) {
  SHOAL_ASSIGN_OR_RETURN(auto entries, ListAll(e, CommitsDir(root)));
  std::vector<TagInfo> tags;
  for (const DirEntry& d : entries) {
    if (d.is_dir) continue;
    if (auto t = ParseManifestName(d.name)) tags.push_back(std::move(*t));
  }
  std::sort(tags.begin(), tags.end(),
            [](const TagInfo& a, const TagInfo& b) { return a.sequence < b.sequence; });
  return tags;
}

// Removes every object below `dir`; returns how many.
Result<uint64_t> RemoveTree(Engine& e, const std::string& dir) {
  uint64_t n = 0;
  SHOAL_ASSIGN_OR_RETURN(auto entries, ListAll(e, dir));
  for (const DirEntry& d : entries) {
    std::string p = dir + "/" + d.name;
    if (d.is_dir) {
      SHOAL_ASSIGN_OR_RETURN(uint64_t k, RemoveTree(e, p));
      n += k;
      continue;
    }
    Status s = e.Remove(p);
    if (!s.ok() && s.code() != Code::kNotFound) return s.WithContext("removing checkpoint data");
    n++;
  }
  return n;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// SaveHandle

struct SaveHandle::State {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Status status;
  std::chrono::nanoseconds duration{0};

  void Finish(Status s, std::chrono::nanoseconds d) {
    std::lock_guard lk(mu);
    status = std::move(s);
    duration = d;
    done = true;
    cv.notify_all();
  }
};

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
// A save in progress: this rank's blobs of one tag, and (async) the background writer.

namespace {

struct SaveJob {
  struct Item {
    enum Kind { kWrite, kSeal, kCommit, kStop } kind = kWrite;
    std::string path;  // kWrite, kSeal
    std::string name;  // kSeal: the blob's name
    uint64_t offset = 0;  // kWrite; kSeal: the blob's size
    std::span<std::byte> bytes;  // kWrite: a staging pool region
    std::string metadata;        // kCommit

    static Item Stop() { return Item{}.As(kStop); }
    static Item Commit(std::string_view meta) {
      Item i = Item{}.As(kCommit);
      i.metadata = std::string(meta);
      return i;
    }
    static Item Seal(const std::string& path, std::string_view name, uint64_t size) {
      Item i = Item{}.As(kSeal);
      i.path = path;
      i.name = std::string(name);
      i.offset = size;
      return i;
    }
    static Item Write(const std::string& path, uint64_t offset, std::span<std::byte> bytes) {
      Item i = Item{}.As(kWrite);
      i.path = path;
      i.offset = offset;
      i.bytes = bytes;
      return i;
    }
    Item As(Kind k) && {
      kind = k;
      return std::move(*this);
    }
  };

  Engine* engine = nullptr;
  std::string root;
  std::string tag;
  bool async = false;
  StagingPool* pool = nullptr;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Item> queue;
  // The writer starts once the caller is done copying (Commit) or the pool is full: until then
  // it would only take CPU and memory bandwidth from the copies the caller waits for.
  bool draining = false;
  bool committed = false;  // Commit was called
  Status error;            // the first failure of this rank's saves
  std::set<std::string, std::less<>> names;
  std::vector<BlobInfo> blobs;  // sealed
  std::map<std::string, uint32_t> crc;  // async: running CRC32C of blobs being written
  std::shared_ptr<SaveHandle::State> handle = std::make_shared<SaveHandle::State>();
  std::thread worker;
  std::function<void()> after_publish;  // rank 0: retention

  std::string BlobPath(std::string_view name) const { return shoal::BlobPath(root, tag, name); }

  void Fail(const Status& s) {
    std::lock_guard lk(mu);
    if (error.ok()) error = s;
  }

  void Push(Item item) {
    std::lock_guard lk(mu);
    if (item.kind == Item::kCommit || item.kind == Item::kStop) draining = true;
    queue.push_back(std::move(item));
    cv.notify_all();
  }

  void Drain() {
    std::lock_guard lk(mu);
    draining = true;
    cv.notify_all();
  }

  void Work();
  Status Commit(std::string_view metadata);
  // This rank's sealed blobs removed, open ones aborted (an abandoned save).
  void Discard();
};

void SaveJob::Work() {
  for (;;) {
    Item item;
    {
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return !queue.empty() && draining; });
      item = std::move(queue.front());
      queue.pop_front();
    }
    switch (item.kind) {
      case Item::kWrite: {
        bool ok;
        {
          std::lock_guard lk(mu);
          ok = error.ok();
          if (ok) crc[item.path] = Crc32c(item.bytes.data(), item.bytes.size(), crc[item.path]);
        }
        if (ok) {
          Status s = engine->Write(item.path, item.offset, item.bytes);
          if (!s.ok()) Fail(s.WithContext(fmt::format("saving \"{}\"", item.path)));
        }
        pool->Release(item.bytes);
        break;
      }
      case Item::kSeal: {
        Status s;
        {
          std::lock_guard lk(mu);
          s = error;
        }
        if (s.ok()) s = engine->Seal(item.path);
        if (!s.ok()) {
          (void)engine->Abort(item.path);
          Fail(s.WithContext(fmt::format("saving \"{}\"", item.path)));
          break;
        }
        std::lock_guard lk(mu);
        blobs.push_back({item.name, item.offset, crc[item.path], engine->rank()});
        crc.erase(item.path);
        break;
      }
      case Item::kCommit: {
        Status s = Commit(item.metadata);
        handle->Finish(s, std::chrono::steady_clock::now() - start);
        return;
      }
      case Item::kStop:
        return;
    }
  }
}

Status SaveJob::Commit(std::string_view metadata) {
  Engine& e = *engine;
  // 1. Every rank's part: its blob list, or why it failed.
  Status local;
  {
    std::lock_guard lk(mu);
    local = error;
  }
  if (local.ok() && metadata.size() > kMaxMetadata) {
    local = Status::InvalidArgument(
        fmt::format("checkpoint metadata of {} bytes (at most {})", metadata.size(), kMaxMetadata));
  }
  std::vector<std::byte> mine;
  if (local.ok()) {
    mine = protocol::Encode(protocol::CommitPart{Status::OK(), blobs});
    if (mine.size() > protocol::kMaxCommitPart) {
      local = Status::InvalidArgument(fmt::format(
          "rank {}: the list of {} blobs needs {} bytes, more than a commit carries ({})",
          e.rank(), blobs.size(), mine.size(), protocol::kMaxCommitPart));
    }
  }
  if (!local.ok()) mine = protocol::Encode(protocol::CommitPart{local, {}});
  auto parts = e.AllGather(mine);
  if (!parts.ok()) return parts.status().WithContext(fmt::format("committing \"{}\"", tag));

  // 2. Rank 0 publishes the manifest when every rank succeeded.
  Status outcome;
  if (e.rank() == 0) {
    CheckpointManifest m;
    m.tag = tag;
    m.world_size = e.world_size();
    m.metadata = std::string(metadata);
    for (uint32_t r = 0; r < parts->size() && outcome.ok(); ++r) {
      protocol::CommitPart part;
      outcome = protocol::Decode((*parts)[r], r, &part);
      if (outcome.ok() && !part.status.ok()) {
        outcome = part.status.WithContext(fmt::format("rank {} could not save", r));
      }
      for (BlobInfo& blob : part.blobs) m.blobs.push_back(std::move(blob));
    }
    std::sort(m.blobs.begin(), m.blobs.end(),
              [](const BlobInfo& a, const BlobInfo& b) { return a.name < b.name; });
    for (size_t i = 1; i < m.blobs.size() && outcome.ok(); ++i) {
      if (m.blobs[i].name == m.blobs[i - 1].name) {
        outcome = Status::AlreadyExists(fmt::format("blob \"{}\" saved twice", m.blobs[i].name));
      }
    }
    if (outcome.ok()) {
      // The sequence: one past the newest committed tag.
      auto tags = CommittedTags(e, root);
      outcome = tags.status();
      for (size_t i = 0; outcome.ok() && i < tags->size(); ++i) {
        if ((*tags)[i].tag == tag) {
          outcome = Status::AlreadyExists(fmt::format("checkpoint \"{}\" is committed", tag));
        }
      }
      if (outcome.ok()) {
        m.sequence = tags->empty() ? 1 : tags->back().sequence + 1;
        m.commit_time_ns = engine::SealTimeNs();
      }
    }
    if (outcome.ok()) {
      auto json = EncodeManifest(m);
      outcome = json.status();
      // The commit point: sealing this one object publishes the tag.
      if (outcome.ok()) {
        outcome = e.Put(ManifestPath(root, m.sequence, tag), *json);
      }
    }
    if (outcome.ok()) {
      Log(LogLevel::kInfo, "checkpoint \"{}\" committed: {} blobs from {} ranks, sequence {}", tag,
          m.blobs.size(), m.world_size, m.sequence);
      if (after_publish) after_publish();
    }
    outcome = outcome.WithContext(fmt::format("committing \"{}\"", tag));
  }
  // 3. Every rank learns the outcome.
  return Rank0Verdict(e, outcome).WithContext(fmt::format("committing \"{}\"", tag));
}

void SaveJob::Discard() {
  std::vector<BlobInfo> mine;
  {
    std::lock_guard lk(mu);
    mine = blobs;
  }
  for (const BlobInfo& b : mine) (void)engine->Remove(BlobPath(b.name));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Checkpointer::Impl

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

  Result<std::vector<TagInfo>> Tags() { return CommittedTags(engine_, options_.root); }

  Status Remove(std::string_view tag) {
    SHOAL_ASSIGN_OR_RETURN(TagInfo t, Find(tag));
    // Unpublish first: from here on the tag is not listed, whatever happens to its data.
    SHOAL_RETURN_IF_ERROR(engine_.Remove(ManifestPath(options_.root, t.sequence, t.tag)));
    return RemoveTree(engine_, DataDir(options_.root) + "/" + t.tag).status();
  }

  Result<uint32_t> Retain(uint32_t keep_last) {
    SHOAL_ASSIGN_OR_RETURN(auto tags, Tags());
    uint32_t removed = 0;
    for (size_t i = 0; i + keep_last < tags.size(); ++i) {
      SHOAL_RETURN_IF_ERROR(Remove(tags[i].tag));
      removed++;
    }
    return removed;
  }

  Result<CollectReport> Collect() {
    SHOAL_ASSIGN_OR_RETURN(auto tags, Tags());
    std::set<std::string> committed;
    for (const TagInfo& t : tags) committed.insert(t.tag);
    SHOAL_ASSIGN_OR_RETURN(auto dirs, ListAll(engine_, DataDir(options_.root)));
    CollectReport report;
    for (const DirEntry& d : dirs) {
      if (committed.count(d.name) != 0) continue;
      std::string dir = DataDir(options_.root) + "/" + d.name;
      if (!d.is_dir) {
        SHOAL_RETURN_IF_ERROR(engine_.Remove(dir));
        report.objects++;
        continue;
      }
      SHOAL_ASSIGN_OR_RETURN(uint64_t n, RemoveTree(engine_, dir));
      report.objects += n;
      report.tags.push_back(d.name);
    }
    return report;
  }

  Result<TagInfo> Find(std::string_view tag) {
    SHOAL_RETURN_IF_ERROR(ValidateTag(tag));
    SHOAL_ASSIGN_OR_RETURN(auto tags, Tags());
    for (TagInfo& t : tags) {
      if (t.tag == tag) return std::move(t);
    }
    return Status::NotFound(fmt::format("no committed checkpoint \"{}\"", tag));
  }
};

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
  if (job.async) {
    job.Push(SaveJob::Item::Stop());
    if (job.worker.joinable()) job.worker.join();
    // Blobs whose seal never ran are still open: abort them.
    std::vector<std::string> open;
    {
      std::lock_guard lk(job.mu);
      for (auto& [path, c] : job.crc) open.push_back(path);
    }
    for (const std::string& p : open) (void)job.engine->Abort(p);
  }
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
  {
    std::lock_guard lk(job.mu);
    job.names.insert(std::string(name));
    job.crc[path] = 0;
  }
  // Small pieces share a staging region (one engine Write for many small tensors); a region is
  // at most one slice.
  const uint64_t slice = std::min<uint64_t>(kMaxSlice, job.pool->capacity());
  uint64_t blob_off = 0;
  size_t i = 0;
  uint64_t piece_off = 0;
  while (blob_off < size) {
    const uint64_t n = std::min<uint64_t>(slice, size - blob_off);
    if (job.pool->WouldWait(n)) job.Drain();
    std::span<std::byte> region = job.pool->Acquire(n);  // waits while the pool is full
    for (uint64_t filled = 0; filled < n;) {
      const auto& p = pieces[i];
      const uint64_t k = std::min<uint64_t>(n - filled, p.size() - piece_off);
      if (k != 0) std::memcpy(region.data() + filled, p.data() + piece_off, k);  // empty pieces: no pointer
      filled += k;
      piece_off += k;
      if (piece_off == p.size()) {
        ++i;
        piece_off = 0;
      }
    }
    job.Push(SaveJob::Item::Write(path, blob_off, region));
    blob_off += n;
  }
  job.Push(SaveJob::Item::Seal(path, name, size));
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
  Status s = job.Commit(metadata);
  job.handle->Finish(s, std::chrono::steady_clock::now() - job.start);
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
  // Rank 0 checks the tag is new and collects what crashed saves left, before anyone writes.
  Status ready;
  if (e.rank() == 0) {
    auto found = impl_->Find(tag);
    if (found.ok()) {
      ready = Status::AlreadyExists(fmt::format("checkpoint \"{}\" is committed", tag));
    } else if (found.status().code() != Code::kNotFound) {
      ready = found.status();
    } else {
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
  return std::make_unique<CheckpointSave>(std::move(impl));
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

Status Checkpointer::Remove(std::string_view tag) { return impl_->Remove(tag); }

Result<uint32_t> Checkpointer::Retain(uint32_t keep_last) { return impl_->Retain(keep_last); }

Result<CollectReport> Checkpointer::CollectAbandoned() { return impl_->Collect(); }

Result<RepairReport> Checkpointer::Repair() { return impl_->engine_.Repair(impl_->options_.root); }

}  // namespace shoal
