// SharedReadServer: a thread per channel serves its reader's requests by reading (through the
// engine or a registered dataset cache) straight into the channel's part of the pool. See
// include/shoal/shared_reader.h for the rules; lib/shared_ring.h for the layout.
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <thread>

#include "base/log.h"
#include "base/metrics.h"
#include "lib/engine_impl.h"
#include "lib/shared_ring.h"
#include "shoal/dataset.h"
#include "shoal/engine.h"

namespace bip = boost::interprocess;

namespace shoal {
namespace {

using shm::kPage;

std::string RandomHex(size_t bytes) {
  std::random_device rd;
  std::string out;
  static const char* kHex = "0123456789abcdef";
  for (size_t i = 0; i < bytes; ++i) {
    const unsigned v = rd() & 0xff;
    out += kHex[v >> 4];
    out += kHex[v & 15];
  }
  return out;
}

// Segments left by serving ranks that were killed (named shoal-<pid>-<hex>, their pid gone):
// removed at the next Start on the host, so /dev/shm does not fill over restarts.
void RemoveStaleSegments() {
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator("/dev/shm", ec)) {
    const std::string n = f.path().filename().string();
    if (n.rfind("shoal-", 0) != 0) continue;
    const size_t dash = n.find('-', 6);
    if (dash == std::string::npos) continue;
    char* end = nullptr;
    const long pid = std::strtol(n.c_str() + 6, &end, 10);
    if (end != n.c_str() + dash || pid <= 0) continue;
    if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      bip::shared_memory_object::remove(n.c_str());
    }
  }
}

uint64_t PageRound(uint64_t v) { return (v + kPage - 1) / kPage * kPage; }

constexpr uint64_t kNoLease = ~0ull;
// Requests of one channel held while they wait for room (a reader has one at a time; more is
// a broken or hostile reader).
constexpr size_t kMaxPending = 256;

// First-fit allocation of a channel's pool part; used by its server thread only.
class PartAllocator {
 public:
  explicit PartAllocator(uint64_t size) : size_(size) { Reset(); }
  void Reset() {
    free_.clear();
    free_[0] = size_;
    leased_.clear();
    leased_bytes_ = 0;
  }
  std::optional<uint64_t> Allocate(uint64_t bytes) {
    const uint64_t n = PageRound(bytes);
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->second < n) continue;
      const uint64_t at = it->first;
      const uint64_t left = it->second - n;
      free_.erase(it);
      if (left != 0) free_[at + n] = left;
      leased_[at] = n;
      leased_bytes_ += n;
      return at;
    }
    return std::nullopt;
  }
  // Unknown offsets (a reader's mistake or a double release) are ignored.
  void Free(uint64_t at) {
    auto l = leased_.find(at);
    if (l == leased_.end()) return;
    uint64_t n = l->second;
    leased_.erase(l);
    leased_bytes_ -= n;
    auto next = free_.lower_bound(at);
    if (next != free_.end() && next->first == at + n) {
      n += next->second;
      next = free_.erase(next);
    }
    if (next != free_.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == at) {
        prev->second += n;
        return;
      }
    }
    free_[at] = n;
  }
  uint64_t leased_bytes() const { return leased_bytes_; }

 private:
  uint64_t size_;
  std::map<uint64_t, uint64_t> free_;
  std::map<uint64_t, uint64_t> leased_;
  uint64_t leased_bytes_ = 0;
};

Status Clip(Status s) {  // a reply carries messages of at most 4 KiB
  if (s.message().size() <= 4000) return s;
  return Status(s.code(), s.message().substr(0, 4000));
}

}  // namespace

class SharedReadServer::Impl {
 public:
  Impl(Engine& engine, const SharedReadOptions& o) : engine_(engine), options_(o) {
    // Into the engine's registry (docs/metrics.md): GetStats, shoal status, Prometheus.
    metrics::Registry& reg = engine.internal().metrics();
    m_.requests = &reg.counter("shared_read.requests");
    m_.items = &reg.counter("shared_read.items");
    m_.refused = &reg.counter("shared_read.refused");
    m_.reclaimed_readers = &reg.counter("shared_read.reclaimed_readers");
    m_.reclaimed_bytes = &reg.counter("shared_read.reclaimed_bytes");
    m_.queue_depth = &reg.histogram("shared_read.queue_depth");
    m_.latency = &reg.histogram("shared_read.request.latency_ns");
    m_.leased = &reg.histogram("shared_read.leased_bytes");
  }
  ~Impl() { Stop(); }

  Status Start();
  void Stop();

  Engine& engine_;
  SharedReadOptions options_;
  std::string name_;
  std::string token_;
  bip::shared_memory_object segment_;
  bip::mapped_region region_;
  std::byte* base_ = nullptr;
  shm::Header* header_ = nullptr;
  std::atomic<bool> stop_{false};
  bool stopped_ = false;
  std::vector<std::thread> threads_;

  mutable std::shared_mutex datasets_mu_;
  std::map<uint32_t, DatasetCache*> datasets_;
  uint32_t next_dataset_ = 1;

  std::atomic<uint64_t> requests_{0}, items_{0}, reclaimed_readers_{0}, reclaimed_bytes_{0};
  std::vector<std::atomic<uint64_t>> leased_;  // per channel, for counters()
  // The registry's view: totals, and per request the channel's queue depth it found, its time
  // from arrival to reply and the channel's leased bytes after it.
  struct {
    metrics::Counter *requests, *items, *refused, *reclaimed_readers, *reclaimed_bytes;
    metrics::Histogram *queue_depth, *latency, *leased;
  } m_{};

 private:
  struct Pending {
    uint64_t id = 0;
    std::vector<ReadItem> items;
    std::vector<uint64_t> sizes;  // resolved sizes (stat / index)
    std::vector<shm::ReplyItem> replies;
    bool resolved = false;
    std::chrono::steady_clock::time_point arrived = std::chrono::steady_clock::now();
  };
  void Serve(uint32_t ch);
  void Resolve(Pending& p);
  bool TryRun(uint32_t ch, PartAllocator& alloc, Pending& p);
  bool PushReply(uint32_t ch, int pidfd, const std::vector<std::byte>& msg);
};

Status SharedReadServer::Impl::Start() {
  if (options_.channels == 0 || options_.channels > 256) {
    return Status::InvalidArgument("SharedReadOptions.channels must be 1..256, not " +
                                   std::to_string(options_.channels));
  }
  if (options_.part_bytes < kPage || options_.part_bytes > (64ull << 30)) {
    return Status::InvalidArgument("SharedReadOptions.part_bytes must be 4 KiB..64 GiB");
  }
  if (options_.ring_bytes < (64u << 10) || options_.ring_bytes > (64u << 20)) {
    return Status::InvalidArgument("SharedReadOptions.ring_bytes must be 64 KiB..64 MiB");
  }
  token_ = options_.token.empty() ? RandomHex(16) : options_.token;
  RemoveStaleSegments();
  shm::Header layout;
  shm::FillLayout(options_, &layout);
  name_ = "shoal-" + std::to_string(getpid()) + "-" + RandomHex(8);
  try {
    segment_ = bip::shared_memory_object(bip::create_only, name_.c_str(), bip::read_write,
                                         bip::permissions(0600));
    segment_.truncate(static_cast<bip::offset_t>(layout.total_bytes));
    region_ = bip::mapped_region(segment_, bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    bip::shared_memory_object::remove(name_.c_str());
    return Status::IOError("shared memory segment " + name_ + " of " +
                           std::to_string(layout.total_bytes) + " bytes: " + e.what());
  }
  base_ = static_cast<std::byte*>(region_.get_address());
  header_ = new (base_) shm::Header();
  shm::FillLayout(options_, header_);
  header_->server_pid = getpid();
  if (!shm::DigestToken(token_, header_->token_digest)) return Status::Internal("SHA-256 failed");
  for (uint32_t i = 0; i < layout.channels; ++i) new (shm::ChannelAt(base_, *header_, i)) shm::Channel();
  leased_ = std::vector<std::atomic<uint64_t>>(layout.channels);
  header_->state.store(static_cast<uint32_t>(shm::ServerState::kServing), std::memory_order_release);
  for (uint32_t i = 0; i < layout.channels; ++i) threads_.emplace_back([this, i] { Serve(i); });
  return Status::OK();
}

void SharedReadServer::Impl::Stop() {
  if (stopped_) return;
  stopped_ = true;
  stop_.store(true);
  if (header_ != nullptr) {
    header_->state.store(static_cast<uint32_t>(shm::ServerState::kStopped), std::memory_order_release);
    for (uint32_t i = 0; i < header_->channels; ++i) {
      shm::Channel* c = shm::ChannelAt(base_, *header_, i);
      c->server_bell.fetch_add(1);
      shm::FutexWakeAll(&c->server_bell);
      c->to_reader.bell.fetch_add(1);
      shm::FutexWakeAll(&c->to_reader.bell);
    }
  }
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  if (!name_.empty()) bip::shared_memory_object::remove(name_.c_str());
}

void SharedReadServer::Impl::Resolve(Pending& p) {
  p.resolved = true;
  p.sizes.assign(p.items.size(), 0);
  p.replies.assign(p.items.size(), {});
  std::vector<StatRequest> stats;
  std::vector<size_t> stat_of;
  std::shared_lock lock(datasets_mu_);
  for (size_t i = 0; i < p.items.size(); ++i) {
    const ReadItem& it = p.items[i];
    if (it.dataset != 0) {
      auto d = datasets_.find(it.dataset);
      if (d == datasets_.end()) {
        p.replies[i].status = Status::InvalidArgument("no dataset " + std::to_string(it.dataset) +
                                                      " is registered with this ring");
        continue;
      }
      Result<SampleInfo> info = d->second->info(it.index);
      if (!info.ok()) {
        p.replies[i].status = info.status();
      } else if (info->size > header_->part_bytes) {
        p.replies[i].status = Status::InvalidArgument(
            "sample \"" + info->name + "\" (" + std::to_string(info->size) +
            " bytes) is larger than a channel's part of the shared pool (" +
            std::to_string(header_->part_bytes) + " bytes): raise part_bytes");
      } else {
        p.sizes[i] = info->size;
      }
    } else if (it.size > header_->part_bytes) {
      p.replies[i].status = Status::InvalidArgument(
          "a read of " + std::to_string(it.size) + " bytes of \"" + it.path +
          "\" is larger than a channel's part of the shared pool (" +
          std::to_string(header_->part_bytes) + " bytes): raise part_bytes");
    } else if (it.size != 0) {
      p.sizes[i] = it.size;
    } else {
      stats.emplace_back();
      stats.back().path = it.path;
      stat_of.push_back(i);
    }
  }
  if (stats.empty()) return;
  Status s = engine_.StatBatch(stats);
  for (size_t k = 0; k < stats.size(); ++k) {
    const size_t i = stat_of[k];
    if (!s.ok()) p.replies[i].status = s;
    else if (!stats[k].status.ok()) p.replies[i].status = stats[k].status;
    else if (p.items[i].offset > stats[k].info.size) {
      p.replies[i].status = Status::InvalidArgument(
          "offset " + std::to_string(p.items[i].offset) + " is past the end of \"" +
          p.items[i].path + "\" (" + std::to_string(stats[k].info.size) + " bytes)");
    } else if (stats[k].info.size - p.items[i].offset > header_->part_bytes) {
      p.replies[i].status = Status::InvalidArgument(
          "\"" + p.items[i].path + "\" (" + std::to_string(stats[k].info.size) +
          " bytes) is larger than a channel's part of the shared pool (" +
          std::to_string(header_->part_bytes) + " bytes): raise part_bytes");
    } else {
      p.sizes[i] = stats[k].info.size - p.items[i].offset;
    }
  }
}

// Reads `p` into the part when all of it fits now (true), else leaves it (false).
bool SharedReadServer::Impl::TryRun(uint32_t ch, PartAllocator& alloc, Pending& p) {
  if (!p.resolved) Resolve(p);
  std::vector<uint64_t> got;
  uint64_t total = 0;
  for (size_t i = 0; i < p.items.size(); ++i) {
    if (p.replies[i].status.ok()) total += PageRound(p.sizes[i]);
  }
  if (total > header_->part_bytes) {
    Status s = Status::InvalidArgument(
        "a read of " + std::to_string(p.items.size()) + " items needs " + std::to_string(total) +
        " bytes of the shared pool, more than a channel's part (" +
        std::to_string(header_->part_bytes) + "): read fewer at once or raise part_bytes");
    for (auto& r : p.replies) r.status = s;
    return true;
  }
  for (size_t i = 0; i < p.items.size(); ++i) {
    p.replies[i].offset = kNoLease;
    if (!p.replies[i].status.ok() || p.sizes[i] == 0) continue;
    std::optional<uint64_t> at = alloc.Allocate(p.sizes[i]);
    if (!at) {
      for (uint64_t a : got) alloc.Free(a);
      return false;
    }
    got.push_back(*at);
    p.replies[i].offset = *at;
  }
  std::byte* part = base_ + header_->pool_offset + ch * header_->part_bytes;
  std::vector<ReadRequest> objects;
  std::vector<size_t> object_of;
  std::map<uint32_t, std::pair<std::vector<SampleRead>, std::vector<size_t>>> samples;
  for (size_t i = 0; i < p.items.size(); ++i) {
    const ReadItem& it = p.items[i];
    if (!p.replies[i].status.ok() || p.replies[i].offset == kNoLease) continue;
    std::span<std::byte> dst(part + p.replies[i].offset, p.sizes[i]);
    if (it.dataset != 0) {
      SampleRead r;
      r.index = it.index;
      r.dst = dst;
      samples[it.dataset].first.push_back(r);
      samples[it.dataset].second.push_back(i);
    } else {
      objects.emplace_back();
      objects.back().path = it.path;
      objects.back().offset = it.offset;
      objects.back().dst = dst;
      object_of.push_back(i);
    }
  }
  if (!objects.empty()) {
    Status s = engine_.ReadBatch(objects);
    for (size_t k = 0; k < objects.size(); ++k) {
      shm::ReplyItem& r = p.replies[object_of[k]];
      r.status = s.ok() ? objects[k].status : s;
      r.bytes = objects[k].bytes_read;
    }
  }
  if (!samples.empty()) {
    std::shared_lock lock(datasets_mu_);
    for (auto& [id, reads] : samples) {
      auto d = datasets_.find(id);
      Status s = d == datasets_.end()
                     ? Status::InvalidArgument("dataset " + std::to_string(id) + " was unregistered")
                     : d->second->ReadBatch(reads.first);
      for (size_t k = 0; k < reads.first.size(); ++k) {
        shm::ReplyItem& r = p.replies[reads.second[k]];
        r.status = s.ok() ? reads.first[k].status : s;
        r.bytes = reads.first[k].bytes;
      }
    }
  }
  for (shm::ReplyItem& r : p.replies) {
    if (!r.status.ok()) {
      if (r.offset != kNoLease) alloc.Free(r.offset);
      r.offset = kNoLease;
      r.bytes = 0;
      r.status = Clip(r.status);
    }
  }
  requests_++;
  items_ += p.items.size();
  m_.requests->Add();
  m_.items->Add(p.items.size());
  return true;
}

// Pushes a reply, waiting while the reader's ring is full; false when the reader exited or the
// server stops meanwhile.
bool SharedReadServer::Impl::PushReply(uint32_t ch, int pidfd, const std::vector<std::byte>& msg) {
  shm::Ring out = shm::ToReader(base_, *header_, ch);
  while (!out.TryPush(shm::kReply, msg)) {
    pollfd pfd{pidfd, POLLIN, 0};
    if (stop_.load() || (pidfd >= 0 && poll(&pfd, 1, 1) > 0)) return false;
  }
  shm::FutexWakeAll(&out.control()->bell);
  return true;
}

void SharedReadServer::Impl::Serve(uint32_t ch) {
  shm::Channel* c = shm::ChannelAt(base_, *header_, ch);
  shm::Ring in = shm::ToServer(base_, *header_, ch);
  shm::Ring out = shm::ToReader(base_, *header_, ch);
  PartAllocator alloc(header_->part_bytes);
  std::deque<Pending> pending;
  int32_t pid = 0;
  int pidfd = -1;
  auto reclaim = [&](bool died) {
    if (died) {
      reclaimed_readers_++;
      reclaimed_bytes_ += alloc.leased_bytes();
      m_.reclaimed_readers->Add();
      m_.reclaimed_bytes->Add(alloc.leased_bytes());
      Log(LogLevel::kDebug, "shared reads: reader pid {} of channel {} exited; {} leased bytes reclaimed",
                     pid, ch, alloc.leased_bytes());
    }
    alloc.Reset();
    pending.clear();
    in.Reset();
    out.Reset();
    if (pidfd >= 0) close(pidfd);
    pidfd = -1;
    pid = 0;
    leased_[ch].store(0);
    c->owner_pid.store(0, std::memory_order_release);
  };
  std::vector<uint64_t> offsets;
  while (!stop_.load(std::memory_order_relaxed)) {
    const uint32_t bell = c->server_bell.load(std::memory_order_acquire);
    const int32_t owner = c->owner_pid.load(std::memory_order_acquire);
    if (owner != 0 && owner != pid) {
      pid = owner;
      pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
      if (pidfd < 0) {  // exited before we saw it
        reclaim(true);
        continue;
      }
    }
    if (pid == 0) {
      shm::FutexWait(&c->server_bell, bell, 200);
      continue;
    }
    bool worked = false;
    bool bye = false;
    bool broken = false;
    while (auto rec = in.Peek()) {
      worked = true;
      if (rec->corrupt) {
        broken = true;
        break;
      }
      if (rec->type == shm::kRequest) {
        Pending p;
        Status s = shm::DecodeRequest(rec->payload, &p.id, &p.items);
        if (!s.ok()) {  // answered under id 0, which no reader uses
          in.Pop(*rec);
          if (!PushReply(ch, pidfd, shm::EncodeReply(0, s, {}))) break;
          continue;
        }
        m_.queue_depth->Record(pending.size());
        if (pending.size() >= kMaxPending) {  // a reader that floods: refuse, keep draining
          m_.refused->Add();
          in.Pop(*rec);
          Status busy = Status::Unavailable("more than " + std::to_string(kMaxPending) +
                                            " shared-read requests of one reader are waiting");
          if (!PushReply(ch, pidfd, shm::EncodeReply(p.id, busy, {}))) break;
          continue;
        }
        pending.push_back(std::move(p));
      } else if (rec->type == shm::kRelease) {
        if (shm::DecodeRelease(rec->payload, &offsets).ok()) {
          for (uint64_t o : offsets) alloc.Free(o);
        }
      } else if (rec->type == shm::kBye) {
        bye = true;
      }
      in.Pop(*rec);
      if (bye) break;
    }
    if (broken) {
      // The ring holds what no reader of this version writes. Drop what was published (the
      // consumer's side only), fail the reader's requests, and take its leases back: its
      // buffers may be handed out again, so say so loudly.
      Log(LogLevel::kWarn, "shared reads: channel {} of reader pid {} has an undecodable ring; "
          "its requests fail and its {} leased bytes are taken back", ch, pid,
          alloc.leased_bytes());
      reclaimed_bytes_ += alloc.leased_bytes();
      m_.reclaimed_bytes->Add(alloc.leased_bytes());
      in.control()->tail.store(in.control()->head.load(std::memory_order_acquire),
                               std::memory_order_release);
      alloc.Reset();
      pending.clear();
      leased_[ch].store(0);
      (void)PushReply(ch, pidfd, shm::EncodeReply(shm::kChannelReset,
                                                  Status::Internal("the shared-reads channel was "
                                                                   "reset: its ring was damaged"),
                                                  {}));
      continue;
    }
    if (bye) {
      reclaim(false);
      continue;
    }
    while (!pending.empty() && TryRun(ch, alloc, pending.front())) {
      Pending& p = pending.front();
      // Counted before the reply, so a reader that got it sees its leases in counters().
      leased_[ch].store(alloc.leased_bytes(), std::memory_order_relaxed);
      if (!PushReply(ch, pidfd, shm::EncodeReply(p.id, Status::OK(), p.replies))) break;
      m_.latency->RecordDuration(std::chrono::steady_clock::now() - p.arrived);
      m_.leased->Record(alloc.leased_bytes());
      pending.pop_front();
      worked = true;
    }
    leased_[ch].store(alloc.leased_bytes(), std::memory_order_relaxed);
    pollfd pfd{pidfd, POLLIN, 0};
    if (poll(&pfd, 1, 0) > 0) {
      reclaim(true);
      continue;
    }
    if (!worked) shm::FutexWait(&c->server_bell, bell, 100);
  }
  if (pidfd >= 0) close(pidfd);
}

SharedReadServer::SharedReadServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SharedReadServer::~SharedReadServer() = default;

Result<std::unique_ptr<SharedReadServer>> SharedReadServer::Start(Engine& engine,
                                                                  const SharedReadOptions& o) {
  auto impl = std::make_unique<Impl>(engine, o);
  SHOAL_RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<SharedReadServer>(new SharedReadServer(std::move(impl)));
}

const std::string& SharedReadServer::name() const { return impl_->name_; }
const std::string& SharedReadServer::token() const { return impl_->token_; }

uint32_t SharedReadServer::Register(DatasetCache* cache) {
  std::unique_lock lock(impl_->datasets_mu_);
  const uint32_t id = impl_->next_dataset_++;
  impl_->datasets_[id] = cache;
  return id;
}

void SharedReadServer::Unregister(uint32_t id) {
  std::unique_lock lock(impl_->datasets_mu_);
  impl_->datasets_.erase(id);
}

SharedReadServer::Counters SharedReadServer::counters() const {
  Counters c;
  for (uint32_t i = 0; i < impl_->header_->channels; ++i) {
    if (shm::ChannelAt(impl_->base_, *impl_->header_, i)->owner_pid.load() != 0) c.attached++;
    c.leased_bytes += impl_->leased_[i].load();
  }
  c.requests = impl_->requests_.load();
  c.items = impl_->items_.load();
  c.reclaimed_readers = impl_->reclaimed_readers_.load();
  c.reclaimed_bytes = impl_->reclaimed_bytes_.load();
  return c;
}

void SharedReadServer::Stop() { impl_->Stop(); }

}  // namespace shoal
