// DatasetCache: the index in use, reads through the cache, the one source read per miss, warm-up.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <thread>

#include <fmt/format.h>

#include "base/bytes.h"
#include "base/log.h"
#include "base/status_codec.h"
#include "base/metrics.h"
#include "lib/dataset_index.h"
#include "lib/dataset_disk_budget.h"
#include "lib/dataset_memory_tier.h"
#include "lib/engine_impl.h"

namespace shoal {

using dataset::Index;

// A count of this cache (DatasetCache::stats) that is also added to the engine's metrics
// registry as "dataset.<name>" (summed over the caches open on one engine: Engine::GetStats,
// the Prometheus endpoint).
class Tally {
 public:
  void Bind(metrics::Counter* shared) { shared_ = shared; }
  void operator++(int) { Add(1); }
  Tally& operator+=(uint64_t n) {
    Add(n);
    return *this;
  }
  operator uint64_t() const { return mine_.load(std::memory_order_relaxed); }

 private:
  void Add(uint64_t n) {
    mine_.fetch_add(n, std::memory_order_relaxed);
    if (shared_ != nullptr) shared_->Add(n);
  }
  std::atomic<uint64_t> mine_{0};
  metrics::Counter* shared_ = nullptr;
};

class DatasetCache::Impl {
 public:
  Impl(Engine& e, std::shared_ptr<DatasetSource> source, DatasetOptions options)
      : e_(e), source_(std::move(source)), options_(std::move(options)),
        memory_(options_.memory_bytes) {
    metrics::Registry& reg = e_.internal().metrics();
    for (auto [tally, name] : std::initializer_list<std::pair<Tally*, const char*>>{
             {&hits_, "hits"}, {&memory_hits_, "memory_hits"}, {&misses_, "misses"},
             {&source_reads_, "source_reads"}, {&source_bytes_, "source_bytes"},
             {&waited_, "waited"}, {&version_changes_, "version_changes"},
             {&refetched_, "refetched"}, {&uncached_, "uncached"},
             {&not_admitted_, "not_admitted"}}) {
      tally->Bind(&reg.counter(std::string("dataset.") + name));
    }
    source_latency_ = &reg.histogram("dataset.source_read.latency_ns");
  }

  // Collective: rank 0 picks the generation (the newest complete one, or a new one to build)
  // and every rank follows it.
  Status OpenIndex(bool refresh) {
    uint64_t gen = 0;
    uint8_t build = 0;
    Status mine;
    if (e_.rank() == 0) {
      auto latest = dataset::LatestGeneration(e_, options_.root);
      if (!latest.ok()) {
        mine = latest.status();
      } else {
        build = (refresh || !latest->has_value()) ? 1 : 0;
        gen = latest->has_value() ? **latest + build : 1;
      }
    }
    ByteWriter say;  // rank 0's word: its status, then whether to build, and which generation
    EncodeStatus(mine, &say);
    say.Put(build);
    say.Put(gen);
    SHOAL_ASSIGN_OR_RETURN(auto all, e_.AllGather(say.Take()));
    ByteReader heard(all[0]);
    Status rank0;
    if (!DecodeStatus(&heard, 4096, &rank0) || !heard.Get(&build) || !heard.Get(&gen)) {
      return Status::Corruption("dataset open: rank 0's word does not decode");
    }
    SHOAL_RETURN_IF_ERROR(rank0.WithContext("dataset open (rank 0)"));
    if (build != 0) SHOAL_RETURN_IF_ERROR(dataset::BuildGeneration(e_, *source_, options_.root, gen));
    SHOAL_ASSIGN_OR_RETURN(Index index, dataset::LoadGeneration(e_, options_.root, gen));
    std::unique_lock lk(index_mu_);
    index_ = std::move(index);
    return Status::OK();
  }

  // This member's budget: its limits, and the samples it holds already (from an earlier job,
  // possibly with another world size), trimmed to the capacity when that shrank.
  Status OpenBudget() {
    SHOAL_ASSIGN_OR_RETURN(LocalSpace space, e_.GetLocalSpace());
    const uint64_t reserve = options_.reserve_bytes != 0
                                 ? options_.reserve_bytes
                                 : std::min<uint64_t>(space.total_bytes / 20, 1ull << 30);
    budget_ = std::make_unique<dataset::DiskBudget>(options_.capacity_bytes, reserve);
    SHOAL_ASSIGN_OR_RETURN(auto held, e_.LocalObjects(options_.root + "/s"));
    for (const LocalObject& o : held) budget_->Adopt(o.path, o.bytes);
    std::vector<std::string> evict;
    if (budget_->Admit("", 0, space.free_bytes, &evict)) Evict(evict);
    return Status::OK();
  }

  std::vector<uint32_t> LoaderRanks() const {
    std::shared_lock lk(index_mu_);
    std::vector<uint32_t> out;
    out.reserve(index_.samples.size());
    for (const SampleInfo& s : index_.samples) out.push_back(dataset::OwnerRank(s.name, e_.world_size()));
    return out;
  }

  std::vector<uint64_t> HeldHere() const {
    std::vector<uint64_t> out;
    std::shared_lock lk(index_mu_);
    for (uint64_t i = 0; i < index_.samples.size(); ++i) {
      const SampleInfo& s = index_.samples[i];
      if (budget_->Holds(dataset::SamplePath(options_.root, s.name, s.version))) out.push_back(i);
    }
    return out;
  }

  Status Pin(std::span<const uint64_t> indices, bool pin) {
    for (uint64_t i : indices) {
      SHOAL_ASSIGN_OR_RETURN(SampleInfo s, Info(i));
      budget_->Pin(dataset::SamplePath(options_.root, s.name, s.version), pin);
    }
    return Status::OK();
  }

  uint64_t size() const {
    std::shared_lock lk(index_mu_);
    return index_.samples.size();
  }
  uint64_t generation() const {
    std::shared_lock lk(index_mu_);
    return index_.generation;
  }
  Result<SampleInfo> Info(uint64_t i) const {
    std::shared_lock lk(index_mu_);
    if (i >= index_.samples.size()) {
      return Status::InvalidArgument(
          fmt::format("sample index {} past the dataset's {} samples", i, index_.samples.size()));
    }
    return index_.samples[i];
  }
  Result<uint64_t> Find(std::string_view name) const {
    std::shared_lock lk(index_mu_);
    auto it = index_.by_name.find(name);
    if (it == index_.by_name.end()) {
      return Status::NotFound(fmt::format("dataset sample \"{}\" is not in the index", name));
    }
    return it->second;
  }

  Result<uint64_t> Read(uint64_t i, std::span<std::byte> dst) {
    SHOAL_ASSIGN_OR_RETURN(SampleInfo s, Info(i));
    if (options_.verify_on_hit) SHOAL_RETURN_IF_ERROR(Verify(i, &s));
    SHOAL_RETURN_IF_ERROR(Fits(s, dst));
    const std::string path = dataset::SamplePath(options_.root, s.name, s.version);
    if (memory_.Get(path, dst) == static_cast<int64_t>(s.size)) {
      hits_++;
      memory_hits_++;
      return s.size;
    }
    auto got = e_.Read(path, 0, dst.first(s.size));
    if (got.ok() && *got == s.size) {
      hits_++;
      budget_->Touch(path);
      memory_.Put(path, dst.first(s.size));
      return s.size;
    }
    return Miss(i, std::move(s), dst, got.ok() ? Status::Corruption("short cached copy") : got.status());
  }

  Status ReadBatch(std::span<SampleRead> reads) {
    std::vector<ReadRequest> reqs(reads.size());
    std::vector<SampleInfo> infos(reads.size());
    std::vector<uint64_t> idx(reads.size());
    std::vector<bool> in_memory(reads.size(), false);
    for (size_t k = 0; k < reads.size(); ++k) {
      SampleRead& r = reads[k];
      r.bytes = 0;
      auto i = r.name.empty() ? Result<uint64_t>(r.index) : Find(r.name);
      auto s = i.ok() ? Info(*i) : Result<SampleInfo>(i.status());
      r.status = s.status();
      if (r.status.ok() && options_.verify_on_hit) r.status = Verify(*i, &*s);  // may grow it
      if (r.status.ok()) r.status = Fits(*s, r.dst);
      if (!r.status.ok()) continue;
      idx[k] = *i;
      infos[k] = std::move(s).value();
      reqs[k].path = dataset::SamplePath(options_.root, infos[k].name, infos[k].version);
      reqs[k].dst = r.dst.first(infos[k].size);
      if (memory_.Get(reqs[k].path, reqs[k].dst) == static_cast<int64_t>(infos[k].size)) {
        hits_++;
        memory_hits_++;
        r.bytes = infos[k].size;
        in_memory[k] = true;
      }
    }
    std::vector<ReadRequest> batch;
    std::vector<size_t> at;
    for (size_t k = 0; k < reads.size(); ++k) {
      if (!reads[k].status.ok() || in_memory[k]) continue;
      batch.push_back(std::move(reqs[k]));
      at.push_back(k);
    }
    if (!batch.empty()) SHOAL_RETURN_IF_ERROR(e_.ReadBatch(batch));
    std::vector<size_t> missed;
    std::vector<Status> why(reads.size());
    for (size_t j = 0; j < batch.size(); ++j) {
      const size_t k = at[j];
      if (batch[j].status.ok() && batch[j].bytes_read == infos[k].size) {
        hits_++;
        reads[k].bytes = infos[k].size;
        budget_->Touch(batch[j].path);
        memory_.Put(batch[j].path, reads[k].dst.first(infos[k].size));
      } else {
        why[k] = batch[j].status.ok() ? Status::Corruption("short cached copy") : batch[j].status;
        missed.push_back(k);
      }
    }
    // Misses in parallel (each is a source read, or a wait for another reader's).
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t m; (m = next.fetch_add(1)) < missed.size();) {
        const size_t k = missed[m];
        auto n = Miss(idx[k], infos[k], reads[k].dst, why[k]);
        reads[k].status = n.status();
        if (n.ok()) reads[k].bytes = *n;
      }
    };
    const size_t threads = std::min<size_t>(missed.size(), std::max<uint32_t>(1, options_.warm_threads));
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    return Status::OK();
  }

  Status Warm(std::span<const uint64_t> indices,
              const std::function<void(uint64_t, uint64_t)>& progress) {
    std::vector<uint64_t> mine;
    std::vector<SampleInfo> infos;
    {
      std::shared_lock lk(index_mu_);
      auto consider = [&](uint64_t i) {
        if (i >= index_.samples.size()) return;
        const SampleInfo& s = index_.samples[i];
        if (dataset::OwnerRank(s.name, e_.world_size()) != e_.rank()) return;
        mine.push_back(i);
        infos.push_back(s);
      };
      if (indices.empty()) {
        for (uint64_t i = 0; i < index_.samples.size(); ++i) consider(i);
      } else {
        for (uint64_t i : indices) consider(i);
      }
    }
    // What is cached already is skipped (one batched stat).
    std::vector<StatRequest> stats(mine.size());
    for (size_t k = 0; k < mine.size(); ++k) {
      stats[k].path = dataset::SamplePath(options_.root, infos[k].name, infos[k].version);
    }
    Status first = e_.StatBatch(stats);
    std::vector<size_t> todo;
    for (size_t k = 0; first.ok() && k < mine.size(); ++k) {
      if (!stats[k].status.ok()) todo.push_back(k);
    }
    const uint64_t total = todo.size();
    std::atomic<uint64_t> done{0};
    std::atomic<size_t> next{0};
    std::mutex err_mu;
    // warm_threads readers read the source; one writer caches what they read in PutBatch calls
    // of up to kWarmBatch samples or kWarmBatchBytes (one transaction per member each, not one
    // commit per sample), so the source is read on while a batch commits. At most
    // kWarmQueueBytes wait for the writer. The rank owns these samples (a hash of the name), so
    // no claim is taken: a reader of another rank missing one of them meanwhile may read it
    // from the source too.
    struct Loaded {
      std::string path;
      std::vector<std::byte> bytes;
    };
    std::mutex qmu;
    std::condition_variable qcv;
    std::deque<Loaded> queue;
    uint64_t queued = 0;
    size_t readers_left = 0;
    auto finish = [&] {
      const uint64_t d = ++done;
      if (progress) progress(d, total);
    };
    auto writer = [&] {
      for (;;) {
        std::vector<Loaded> taken;
        {
          std::unique_lock lk(qmu);
          qcv.wait(lk, [&] {
            return readers_left == 0 || queue.size() >= kWarmBatch || queued >= kWarmBatchBytes;
          });
          if (queue.empty()) return;
          uint64_t bytes = 0;
          while (!queue.empty() && taken.size() < kWarmBatch && bytes < kWarmBatchBytes) {
            bytes += queue.front().bytes.size();
            taken.push_back(std::move(queue.front()));
            queue.pop_front();
          }
          queued -= bytes;
        }
        qcv.notify_all();
        std::vector<PutRequest> batch;
        batch.reserve(taken.size());
        for (const Loaded& l : taken) batch.push_back(PutRequest{l.path, l.bytes, {}});
        Status s = e_.PutBatch(batch, SampleCreateOptions());
        for (const PutRequest& r : batch) {
          Status rs = s.ok() ? r.status : s;
          // A sample larger than a chunk is put on its own.
          if (rs.code() == Code::kInvalidArgument) rs = e_.Put(r.path, r.data, SampleCreateOptions());
          if (rs.ok()) budget_->Added(r.path, r.data.size());
          if (!rs.ok() && rs.code() != Code::kAlreadyExists) {
            uncached_++;
            Log(LogLevel::kInfo, "dataset warm-up: \"{}\" not cached ({})", r.path, rs.ToString());
          }
          finish();
        }
      }
    };
    auto read = [&] {
      for (size_t m; (m = next.fetch_add(1)) < todo.size();) {
        const size_t k = todo[m];
        SampleInfo s = infos[k];
        misses_++;
        std::vector<std::byte> buf;
        Status st = Verify(mine[k], &s);
        if (st.ok()) {
          buf.resize(s.size);
          auto n = FromSource(s, buf, true);
          st = n.status();
          if (n.ok()) buf.resize(*n);
        }
        if (!st.ok()) {
          {
            std::lock_guard lk(err_mu);
            if (first.ok()) first = st;
          }
          finish();
          continue;
        }
        std::string path = dataset::SamplePath(options_.root, s.name, s.version);
        if (!Admit(path, buf.size())) {  // read, not kept: the budget has no room
          uncached_++;
          finish();
          continue;
        }
        std::unique_lock lk(qmu);
        qcv.wait(lk, [&] { return queued < kWarmQueueBytes; });
        queued += buf.size();
        queue.push_back(Loaded{std::move(path), std::move(buf)});
        if (queue.size() >= kWarmBatch || queued >= kWarmBatchBytes) qcv.notify_all();
      }
      {
        std::lock_guard lk(qmu);
        readers_left--;
      }
      qcv.notify_all();
    };
    const size_t threads = std::min<size_t>(todo.size(), std::max<uint32_t>(1, options_.warm_threads));
    readers_left = threads;
    std::thread write_thread;
    if (!todo.empty()) write_thread = std::thread(writer);
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(read);
    if (!todo.empty()) read();
    for (auto& t : pool) t.join();
    if (write_thread.joinable()) write_thread.join();
    Status barrier = e_.Barrier();
    return first.ok() ? barrier : first;
  }

  DatasetStats Stats() const {
    DatasetStats s;
    s.hits = hits_;
    s.memory_hits = memory_hits_;
    s.memory_bytes = memory_.used();
    s.misses = misses_;
    s.source_reads = source_reads_;
    s.source_bytes = source_bytes_;
    s.source_seconds = static_cast<double>(source_ns_) / 1e9;
    s.waited = waited_;
    s.version_changes = version_changes_;
    s.refetched = refetched_;
    s.uncached = uncached_;
    s.not_admitted = not_admitted_;
    s.evictions = budget_->evictions();
    s.disk_bytes = budget_->used();
    s.disk_samples = budget_->held();
    s.capacity_bytes = budget_->capacity();
    s.reserve_bytes = budget_->reserve();
    return s;
  }

 private:
  static Status Fits(const SampleInfo& s, std::span<std::byte> dst) {
    if (dst.size() >= s.size) return Status::OK();
    return Status::InvalidArgument(fmt::format(
        "dataset sample \"{}\" has {} bytes, the buffer {}", s.name, s.size, dst.size()));
  }

  // Asks the source for sample i's version; a change is taken into the index (and `s`).
  Status Verify(uint64_t i, SampleInfo* s) {
    auto now = source_->Stat(s->name);
    if (!now.ok()) return now.status().WithContext(fmt::format("dataset sample \"{}\"", s->name));
    if (now->version == s->version && now->size == s->size) return Status::OK();
    version_changes_++;
    Log(LogLevel::kInfo,
        "dataset sample \"{}\" changed at the source ({} bytes, version {} -> {} bytes, "
        "version {})",
        s->name, s->size, s->version, now->size, now->version);
    s->size = now->size;
    s->version = now->version;
    std::unique_lock lk(index_mu_);
    if (i < index_.samples.size() && index_.samples[i].name == s->name) {
      index_.samples[i].size = s->size;
      index_.samples[i].version = s->version;
    }
    return Status::OK();
  }

  // One process-wide flight per cache object: threads of this rank that miss the same sample
  // wait for the first one's fetch, then read the cache.
  struct Flight {
    bool done = false;
  };

  // Sample i was not read from the cache (`why`): read it from the source once (or wait for the
  // reader that is), cache it, and fill dst; a read's sample also goes to the memory tier, under
  // the version it was loaded at (Warm's loads do not: `for_read` false).
  Result<uint64_t> Miss(uint64_t i, SampleInfo s, std::span<std::byte> dst, const Status& why,
                        bool for_read = true) {
    std::string path;
    auto n = Load(i, std::move(s), dst, why, &path);
    if (n.ok() && for_read) memory_.Put(path, dst.first(*n));
    return n;
  }

  Result<uint64_t> Load(uint64_t i, SampleInfo s, std::span<std::byte> dst, const Status& why,
                        std::string* loaded_as) {
    misses_++;
    if (why.code() != Code::kNotFound) {
      // A copy that cannot be read (its holder down, damage): drop it and load it again.
      Log(LogLevel::kInfo, "dataset sample \"{}\": cached copy unreadable ({}); reading it again",
          s.name, why.ToString());
      refetched_++;
    }
    const std::string seen = dataset::SamplePath(options_.root, s.name, s.version);
    // The source's current version first: a changed sample is cached under its new one.
    SHOAL_RETURN_IF_ERROR(Verify(i, &s));
    SHOAL_RETURN_IF_ERROR(Fits(s, dst));
    const std::string path = dataset::SamplePath(options_.root, s.name, s.version);
    *loaded_as = path;
    if (why.code() != Code::kNotFound && seen != path) {
      // The unreadable copy is of a version the source no longer has: it goes. (A copy of the
      // current version is removed only under the sample's claim, by Lead: another rank may
      // have replaced it with a good one meanwhile, which must not go.)
      (void)e_.Remove(seen);
      budget_->Forget(seen);
    }
    // The caller found this very path absent just now: the first leader claims before it looks
    // again (a lookup less per miss; a copy sealed meanwhile is found by FinishFetch's Create).
    bool absent = why.code() == Code::kNotFound && seen == path;
    const auto give_up = std::chrono::steady_clock::now() + options_.fetch_wait;
    auto wait_step = std::chrono::milliseconds(1);
    for (;;) {
      std::shared_ptr<Flight> flight;
      bool leader = false;
      {
        std::unique_lock lk(flight_mu_);
        auto it = flights_.find(path);
        if (it == flights_.end()) {
          flight = std::make_shared<Flight>();
          flights_.emplace(path, flight);
          leader = true;
        } else {
          flight = it->second;
          flight_cv_.wait(lk, [&] { return flight->done; });
        }
      }
      if (!leader) {  // another thread of this rank fetched it: the cache has it, or not
        auto got = e_.Read(path, 0, dst.first(s.size));
        if (got.ok() && *got == s.size) {
          waited_++;
          return s.size;
        }
        if (std::chrono::steady_clock::now() >= give_up) return FromSource(s, dst, false);
        continue;
      }
      auto result = Lead(s, path, dst, give_up, &wait_step, absent);
      absent = false;
      {
        std::lock_guard lk(flight_mu_);
        flight->done = true;
        flights_.erase(path);
      }
      flight_cv_.notify_all();
      if (result.has_value()) return std::move(*result);
    }
  }

  // This thread fetches for the rank. Across ranks a lease on the sample's claim name decides
  // (Engine::TryLease: in the memory of the name's metadata owner, one round trip, nothing on
  // disk; in a world Create alone does not make a name exclusive: two ranks may both create
  // it, the second Seal fails). The holder reads the source and seals the sample, then
  // releases the lease; the others wait for the seal. A lease runs out fetch_wait after it was
  // taken (its holder died): it is then taken anew. nullopt: try again.
  std::optional<Result<uint64_t>> Lead(const SampleInfo& s, const std::string& path,
                                       std::span<std::byte> dst,
                                       std::chrono::steady_clock::time_point give_up,
                                       std::chrono::milliseconds* wait_step, bool absent) {
    const std::string claim = dataset::ClaimPath(options_.root, s.name, s.version);
    for (bool look = !absent;; look = true) {
      bool unreadable = false;
      if (look) {
        auto got = e_.Read(path, 0, dst.first(s.size));
        if (got.ok() && *got == s.size) {
          waited_++;
          return Result<uint64_t>(s.size);
        }
        if (got.ok()) return FromSource(s, dst, false);  // a copy of another size: the source
        unreadable = got.status().code() != Code::kNotFound;  // its holders down, or damage
      }
      auto lease = e_.TryLease(claim, holder_, options_.fetch_wait);
      if (lease.ok() && lease->granted) {
        if (unreadable) {
          // Under the claim, look once more: a rank that held it before may have just sealed
          // a good copy in place of the unreadable one, which must not be removed.
          auto again = e_.Read(path, 0, dst.first(s.size));
          if (again.ok() && *again == s.size) {
            (void)e_.ReleaseLease(claim, holder_);
            waited_++;
            return Result<uint64_t>(s.size);
          }
          if (!again.ok() && again.status().code() != Code::kNotFound) {
            (void)e_.Remove(path);
            budget_->Forget(path);
          }
        }
        auto r = FinishFetch(s, path, dst);
        (void)e_.ReleaseLease(claim, holder_);
        return r;
      }
      if (!lease.ok()) {
        Log(LogLevel::kInfo, "dataset sample \"{}\": not cached ({})", s.name,
            lease.status().ToString());
        return FromSource(s, dst, false);
      }
      // Leased elsewhere: wait for the sample. A holder that died leaves a lease that runs
      // out fetch_wait after it was taken; this rank then takes it.
      if (std::chrono::steady_clock::now() >= give_up) {
        Log(LogLevel::kWarn, "dataset sample \"{}\": no copy sealed after {} ms; reading the source",
            s.name, options_.fetch_wait.count());
        return FromSource(s, dst, false);
      }
      std::this_thread::sleep_for(*wait_step);
      *wait_step = std::min(*wait_step * 2, std::chrono::milliseconds(50));
    }
  }

  // How a cached sample is made: its own replica count (DatasetOptions::replicas), its first
  // copy on the member of the rank that loaded it (no remote write on a miss; Warm's loader is
  // the sample's owner).
  CreateOptions SampleCreateOptions() const {
    CreateOptions co;
    co.replicas = options_.replicas;
    co.local_first = true;
    return co;
  }
  // Room on this member for a sample about to be cached (DiskBudget::Admit), evicting what the
  // budget names; false: serve it without caching.
  bool Admit(const std::string& path, uint64_t bytes) {
    auto space = e_.GetLocalSpace();
    std::vector<std::string> evict;
    const bool room = space.ok() && budget_->Admit(path, bytes, space->free_bytes, &evict);
    Evict(evict);
    if (!room) not_admitted_++;
    return room;
  }
  void Evict(const std::vector<std::string>& paths) {
    for (const std::string& p : paths) {
      Status s = e_.Remove(p);
      if (!s.ok() && s.code() != Code::kNotFound) {
        Log(LogLevel::kInfo, "dataset cache: evicting \"{}\": {}", p, s.ToString());
      }
    }
  }
  static constexpr size_t kWarmBatch = 4096;
  static constexpr uint64_t kWarmBatchBytes = 16ull << 20;
  static constexpr uint64_t kWarmQueueBytes = 64ull << 20;

  // Under the claim: creates the sample's object, reads the source into dst, seals.
  Result<uint64_t> FinishFetch(const SampleInfo& s, const std::string& path,
                               std::span<std::byte> dst) {
    CreateOptions co = SampleCreateOptions();
    co.size = s.size;
    if (!Admit(path, s.size)) return FromSource(s, dst, false);
    Status created = e_.Create(path, co);
    if (created.code() == Code::kAlreadyExists) {  // sealed since this rank looked
      auto got = e_.Read(path, 0, dst.first(s.size));
      if (got.ok() && *got == s.size) {
        waited_++;
        return s.size;
      }
    }
    if (!created.ok()) return FromSource(s, dst, false);
    auto n = FromSource(s, dst, true);
    if (!n.ok()) {
      (void)e_.Abort(path);
      return n;
    }
    Status st = *n == 0 ? Status::OK() : e_.Write(path, 0, dst.first(*n));
    if (st.ok()) st = e_.Seal(path);
    if (st.ok()) budget_->Added(path, *n);
    if (!st.ok()) {
      (void)e_.Abort(path);
      uncached_++;
      Log(LogLevel::kInfo, "dataset sample \"{}\": served, not cached ({})", s.name, st.ToString());
    }
    return n;
  }

  // Reads the sample from the source into dst. `caching`: its bytes are about to be cached.
  Result<uint64_t> FromSource(const SampleInfo& s, std::span<std::byte> dst, bool caching) {
    const auto t0 = std::chrono::steady_clock::now();
    auto n = source_->Read(s.name, dst.first(s.size));
    const auto took = std::chrono::steady_clock::now() - t0;
    source_ns_ += static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(took).count());
    source_latency_->RecordDuration(took);
    if (!n.ok()) return n.status().WithContext(fmt::format("dataset sample \"{}\"", s.name));
    source_reads_++;
    source_bytes_ += *n;
    if (!caching) uncached_++;
    if (*n != s.size) {
      return Status::Unavailable(fmt::format(
          "dataset sample \"{}\" changed while read ({} bytes, {} listed); read it again", s.name,
          *n, s.size));
    }
    return n;
  }

  Engine& e_;
  std::shared_ptr<DatasetSource> source_;
  const DatasetOptions options_;
  mutable std::shared_mutex index_mu_;
  Index index_;
  std::mutex flight_mu_;
  std::condition_variable flight_cv_;
  std::map<std::string, std::shared_ptr<Flight>, std::less<>> flights_;
  dataset::MemoryTier memory_;
  Tally hits_, memory_hits_, misses_, source_reads_, source_bytes_, waited_, version_changes_,
      refetched_, uncached_, not_admitted_;
  std::atomic<uint64_t> source_ns_{0};
  metrics::Histogram* source_latency_ = nullptr;
  std::unique_ptr<dataset::DiskBudget> budget_;  // set by OpenBudget, before any read
  // This cache's id as a lease holder: its rank and a random number (two caches of one rank
  // are two holders).
  const uint64_t holder_ = (static_cast<uint64_t>(e_.rank()) + 1) << 32 |
                           (std::random_device{}() | 1u);
};

Result<std::unique_ptr<DatasetCache>> DatasetCache::Open(Engine& engine,
                                                         std::shared_ptr<DatasetSource> source,
                                                         const DatasetOptions& options) {
  if (source == nullptr) return Status::InvalidArgument("dataset cache: no source");
  if (options.root.empty()) return Status::InvalidArgument("dataset cache: empty root");
  if (options.replicas > 16) {
    return Status::InvalidArgument(
        fmt::format("dataset cache: replicas {} not in 0..16", options.replicas));
  }
  auto impl = std::make_unique<Impl>(engine, std::move(source), options);
  SHOAL_RETURN_IF_ERROR(impl->OpenIndex(options.refresh));
  SHOAL_RETURN_IF_ERROR(impl->OpenBudget());
  return std::unique_ptr<DatasetCache>(new DatasetCache(std::move(impl)));
}

DatasetCache::DatasetCache(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DatasetCache::~DatasetCache() = default;

uint64_t DatasetCache::size() const { return impl_->size(); }
Result<SampleInfo> DatasetCache::info(uint64_t index) const { return impl_->Info(index); }
Result<uint64_t> DatasetCache::Find(std::string_view name) const { return impl_->Find(name); }
uint64_t DatasetCache::generation() const { return impl_->generation(); }

Result<uint64_t> DatasetCache::Read(uint64_t index, std::span<std::byte> dst) {
  return impl_->Read(index, dst);
}

Result<uint64_t> DatasetCache::Read(std::string_view name, std::span<std::byte> dst) {
  SHOAL_ASSIGN_OR_RETURN(uint64_t i, impl_->Find(name));
  return impl_->Read(i, dst);
}

Status DatasetCache::ReadBatch(std::span<SampleRead> reads) { return impl_->ReadBatch(reads); }

Status DatasetCache::Warm(std::span<const uint64_t> indices,
                          std::function<void(uint64_t, uint64_t)> progress) {
  return impl_->Warm(indices, progress);
}

Status DatasetCache::Refresh() { return impl_->OpenIndex(true); }

std::vector<uint64_t> DatasetCache::HeldHere() const { return impl_->HeldHere(); }
std::vector<uint32_t> DatasetCache::LoaderRanks() const { return impl_->LoaderRanks(); }

Status DatasetCache::Pin(std::span<const uint64_t> indices, bool pin) {
  return impl_->Pin(indices, pin);
}

DatasetStats DatasetCache::stats() const { return impl_->Stats(); }

}  // namespace shoal
