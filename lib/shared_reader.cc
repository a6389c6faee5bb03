// SharedReader: the reader's end of a channel of a SharedReadServer's segment. See
// include/shoal/shared_reader.h.
#include <openssl/crypto.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <chrono>
#include <mutex>
#include <thread>

#include "lib/shared_ring.h"

namespace bip = boost::interprocess;

namespace shoal {

class SharedReader::Impl {
 public:
  ~Impl();
  Status Attach(const std::string& name, const std::string& token);
  Result<std::vector<PoolBuffer>> ReadBatch(std::span<const ReadItem> items);
  void Release(std::span<const uint64_t> offsets);

  std::string name_;
  bip::mapped_region region_;
  std::byte* base_ = nullptr;
  shm::Header* header_ = nullptr;
  uint32_t channel_ = 0;
  bool claimed_ = false;
  pid_t pid_ = 0;
  int server_fd_ = -1;
  std::mutex push_mu_;  // the producer end of to_server (requests, releases)
  std::mutex call_mu_;  // one request and its reply at a time
  uint64_t next_id_ = 1;
  // Releases not yet pushed (under push_mu_): sent with the next request, when 256 gather, on
  // Flush, or at once while a request waits (its room may be what they free).
  std::vector<uint64_t> unsent_;
  std::atomic<bool> waiting_{false};

  void Flush();

 private:
  Status Gone() const;
  Status Push(uint32_t type, const std::vector<std::byte>& msg);
  std::byte* part() const {
    return base_ + header_->pool_offset + uint64_t{channel_} * header_->part_bytes;
  }
};

Status SharedReader::Impl::Gone() const {
  if (header_->state.load(std::memory_order_acquire) != static_cast<uint32_t>(shm::ServerState::kServing)) {
    return Status::Unavailable("the shoal rank serving shared reads (" + name_ + ") stopped");
  }
  pollfd pfd{server_fd_, POLLIN, 0};
  if (poll(&pfd, 1, 0) > 0) {
    return Status::Unavailable("the shoal rank serving shared reads (" + name_ + ", pid " +
                               std::to_string(header_->server_pid) + ") exited");
  }
  return Status::OK();
}

Status SharedReader::Impl::Attach(const std::string& name, const std::string& token) {
  name_ = name;
  pid_ = getpid();
  try {
    bip::shared_memory_object seg(bip::open_only, name.c_str(), bip::read_write);
    bip::offset_t size = 0;
    if (!seg.get_size(size) || static_cast<uint64_t>(size) < sizeof(shm::Header)) {
      return Status::PermissionDenied("shared memory " + name + " is not a shoal ring");
    }
    region_ = bip::mapped_region(seg, bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::not_found_error) {
      return Status::NotFound("no shared reads ring " + name + " (the rank that served it exited?)");
    }
    return Status::PermissionDenied("shared reads ring " + name + ": " + e.what());
  }
  base_ = static_cast<std::byte*>(region_.get_address());
  header_ = reinterpret_cast<shm::Header*>(base_);
  if (header_->magic != shm::kMagic || header_->version != shm::kVersion ||
      header_->total_bytes != region_.get_size()) {
    return Status::PermissionDenied("shared memory " + name + " is not a shoal ring of version " +
                                    std::to_string(shm::kVersion));
  }
  unsigned char digest[32];
  if (!shm::DigestToken(token, digest) || CRYPTO_memcmp(digest, header_->token_digest, 32) != 0) {
    return Status::PermissionDenied("shared reads ring " + name + ": wrong job token");
  }
  server_fd_ = static_cast<int>(syscall(SYS_pidfd_open, header_->server_pid, 0));
  if (server_fd_ < 0) {
    return Status::Unavailable("the shoal rank serving " + name + " (pid " +
                               std::to_string(header_->server_pid) + ") exited");
  }
  SHOAL_RETURN_IF_ERROR(Gone());
  for (uint32_t i = 0; i < header_->channels; ++i) {
    int32_t free_pid = 0;
    shm::Channel* c = shm::ChannelAt(base_, *header_, i);
    if (c->owner_pid.compare_exchange_strong(free_pid, pid_, std::memory_order_acq_rel)) {
      channel_ = i;
      claimed_ = true;
      c->server_bell.fetch_add(1, std::memory_order_release);
      shm::FutexWakeAll(&c->server_bell);
      return Status::OK();
    }
  }
  return Status::Unavailable("every one of the " + std::to_string(header_->channels) +
                             " channels of shared reads ring " + name +
                             " is taken: start the server with more channels");
}

SharedReader::Impl::~Impl() {
  if (claimed_ && getpid() == pid_) {
    Flush();
    (void)Push(shm::kBye, {});
  }
  if (server_fd_ >= 0) close(server_fd_);
}

Status SharedReader::Impl::Push(uint32_t type, const std::vector<std::byte>& msg) {
  std::lock_guard lock(push_mu_);
  shm::Channel* c = shm::ChannelAt(base_, *header_, channel_);
  shm::Ring ring = shm::ToServer(base_, *header_, channel_);
  if (msg.size() > ring.max_payload()) {
    return Status::InvalidArgument("a shared-reads request of " + std::to_string(msg.size()) +
                                   " bytes is larger than the ring allows (" +
                                   std::to_string(ring.max_payload()) + "): read fewer at once");
  }
  while (!ring.TryPush(type, msg)) {
    SHOAL_RETURN_IF_ERROR(Gone());
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  c->server_bell.fetch_add(1, std::memory_order_release);
  shm::FutexWakeAll(&c->server_bell);
  return Status::OK();
}

Result<std::vector<PoolBuffer>> SharedReader::Impl::ReadBatch(std::span<const ReadItem> items) {
  if (getpid() != pid_) {
    return Status::FailedPrecondition(
        "this shared reader was attached by process " + std::to_string(pid_) +
        "; a forked process must attach again");
  }
  if (items.size() > shm::kMaxItems) {
    return Status::InvalidArgument("a shared read of " + std::to_string(items.size()) +
                                   " items: at most " + std::to_string(shm::kMaxItems));
  }
  std::lock_guard call(call_mu_);
  SHOAL_RETURN_IF_ERROR(Gone());
  Flush();
  const uint64_t id = next_id_++;
  SHOAL_RETURN_IF_ERROR(Push(shm::kRequest, shm::EncodeRequest(id, items)));
  waiting_.store(true);
  struct Done {
    std::atomic<bool>& w;
    ~Done() { w.store(false); }
  } done{waiting_};
  Flush();  // what another thread released before it saw waiting_
  shm::Ring in = shm::ToReader(base_, *header_, channel_);
  for (;;) {
    const uint32_t bell = in.control()->bell.load(std::memory_order_acquire);
    if (auto rec = in.Peek()) {
      if (rec->corrupt) return Status::Internal("the shared-reads reply ring of " + name_ + " is damaged");
      uint64_t got_id = 0;
      Status s;
      std::vector<shm::ReplyItem> replies;
      Status d = shm::DecodeReply(rec->payload, &got_id, &s, &replies);
      in.Pop(*rec);
      SHOAL_RETURN_IF_ERROR(d);
      if (got_id == shm::kChannelReset) return s;
      if (got_id != id) {  // a reply to a request abandoned earlier: return its leases
        std::vector<uint64_t> stale;
        for (const shm::ReplyItem& r : replies) stale.push_back(r.offset);
        Release(stale);
        continue;
      }
      SHOAL_RETURN_IF_ERROR(s);
      if (replies.size() != items.size()) {
        return Status::Internal("a shared-reads reply with " + std::to_string(replies.size()) +
                                " items for " + std::to_string(items.size()));
      }
      std::vector<PoolBuffer> out(items.size());
      for (size_t i = 0; i < items.size(); ++i) {
        out[i].status = std::move(replies[i].status);
        out[i].pool_offset = replies[i].offset;
        if (replies[i].offset != ~0ull &&
            replies[i].offset + replies[i].bytes <= header_->part_bytes) {
          out[i].bytes = {part() + replies[i].offset, replies[i].bytes};
        } else if (out[i].status.ok() && replies[i].bytes != 0) {
          out[i].status = Status::Internal("a shared-reads reply outside the channel's part");
        }
      }
      return out;
    }
    SHOAL_RETURN_IF_ERROR(Gone());
    shm::FutexWait(&in.control()->bell, bell, 100);
  }
}

void SharedReader::Impl::Release(std::span<const uint64_t> offsets) {
  if (getpid() != pid_ || offsets.empty()) return;
  size_t unsent;
  {
    std::lock_guard lock(push_mu_);
    for (uint64_t o : offsets) {
      if (o != ~0ull) unsent_.push_back(o);
    }
    unsent = unsent_.size();
  }
  if (unsent >= 256 || waiting_.load()) Flush();
}

void SharedReader::Impl::Flush() {
  if (getpid() != pid_) return;
  std::vector<uint64_t> out;
  {
    std::lock_guard lock(push_mu_);
    out.swap(unsent_);
  }
  if (out.empty()) return;
  if (header_->state.load() != static_cast<uint32_t>(shm::ServerState::kServing)) return;
  // A release message holds at most what the ring takes at once.
  const size_t per = 16384;
  for (size_t i = 0; i < out.size(); i += per) {
    const size_t n = std::min(per, out.size() - i);
    (void)Push(shm::kRelease, shm::EncodeRelease(std::span(out).subspan(i, n)));
  }
}

SharedReader::SharedReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SharedReader::~SharedReader() = default;

Result<std::shared_ptr<SharedReader>> SharedReader::Attach(const std::string& name,
                                                           const std::string& token) {
  auto impl = std::make_unique<Impl>();
  SHOAL_RETURN_IF_ERROR(impl->Attach(name, token));
  return std::shared_ptr<SharedReader>(new SharedReader(std::move(impl)));
}

Result<std::vector<PoolBuffer>> SharedReader::ReadBatch(std::span<const ReadItem> items) {
  return impl_->ReadBatch(items);
}

void SharedReader::Release(std::span<const uint64_t> pool_offsets) { impl_->Release(pool_offsets); }
void SharedReader::Flush() { impl_->Flush(); }

uint32_t SharedReader::channel() const { return impl_->channel_; }

std::span<std::byte> SharedReader::pool() const {
  return {impl_->base_ + impl_->header_->pool_offset,
          impl_->header_->part_bytes * impl_->header_->channels};
}

}  // namespace shoal
