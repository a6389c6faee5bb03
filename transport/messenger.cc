#include "transport/messenger.h"

#include <fmt/format.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <ucp/api/ucp.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <type_traits>

#include "base/errno_status.h"
#include "base/task_pool.h"
#include "base/log.h"
#include "transport/message.h"
#include "transport/ucx_status.h"

namespace shoal::transport {
namespace {

constexpr unsigned kAmId = 17;
using Clock = std::chrono::steady_clock;

struct ContextDeleter {
  void operator()(ucp_context_h c) const { ucp_cleanup(c); }
};
struct WorkerDeleter {
  void operator()(ucp_worker_h w) const { ucp_worker_destroy(w); }
};
using ContextPtr = std::unique_ptr<std::remove_pointer_t<ucp_context_h>, ContextDeleter>;
using WorkerPtr = std::unique_ptr<std::remove_pointer_t<ucp_worker_h>, WorkerDeleter>;

Payload ErrorPayload(const Status& s) {
  const std::string& m = s.message();
  auto* p = reinterpret_cast<const std::byte*>(m.data());
  return Payload(p, p + m.size());
}

}  // namespace

class Messenger::Impl {
  struct Pending;

 public:
  explicit Impl(const MessengerOptions& o)
      : options_(o), peers_(o.world_size), pool_(o.handler_threads) {
    for (uint32_t i = 0; i < o.world_size; ++i) {
      peers_[i].impl = this;
      peers_[i].index = i;
    }
  }

  // Sets the index and world size of a messenger created without them (world_size 0).
  Status Bind(uint32_t self, uint32_t world_size) {
    if (world_size == 0 || world_size > kMaxBoundWorld || self >= world_size) {
      return Status::InvalidArgument(
          fmt::format("member {} outside a world of {}", self, world_size));
    }
    std::promise<Status> done;
    auto fut = done.get_future();
    if (!Post([&] {
          if (options_.world_size != 0) {
            done.set_value(Status::FailedPrecondition(fmt::format(
                "messenger already is member {} of {}", options_.self, options_.world_size)));
            return;
          }
          std::vector<Peer> fresh(world_size);
          for (uint32_t i = 0; i < world_size; ++i) {
            fresh[i].impl = this;
            fresh[i].index = i;
          }
          peers_.swap(fresh);
          options_.self = self;
          options_.world_size = world_size;
          done.set_value(Status::OK());
        })) {
      return Status::Unavailable("messenger is shut down");
    }
    return fut.get();
  }

  Status Init(std::vector<std::byte>* address) {
    if (options_.world_size != 0 && options_.self >= options_.world_size) {
      return Status::InvalidArgument(fmt::format("member {} outside a world of {}",
                                                 options_.self, options_.world_size));
    }
    ucp_config_t* config = nullptr;
    ucs_status_t st = ucp_config_read(nullptr, nullptr, &config);
    if (st != UCS_OK) return UcxStatus(st, "ucp_config_read");
    ucp_params_t params{};
    params.field_mask = UCP_PARAM_FIELD_FEATURES;
    params.features = UCP_FEATURE_AM | UCP_FEATURE_WAKEUP;
    ucp_context_h ctx = nullptr;
    st = ucp_init(&params, config, &ctx);
    ucp_config_release(config);
    if (st != UCS_OK) return UcxStatus(st, "ucp_init");
    context_.reset(ctx);

    ucp_worker_params_t wp{};
    wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    wp.thread_mode = UCS_THREAD_MODE_SINGLE;  // only the progress thread touches it
    ucp_worker_h worker = nullptr;
    st = ucp_worker_create(context_.get(), &wp, &worker);
    if (st != UCS_OK) return UcxStatus(st, "ucp_worker_create");
    worker_.reset(worker);

    ucp_address_t* addr = nullptr;
    size_t addr_len = 0;
    st = ucp_worker_get_address(worker_.get(), &addr, &addr_len);
    if (st != UCS_OK) return UcxStatus(st, "ucp_worker_get_address");
    auto* a = reinterpret_cast<const std::byte*>(addr);
    address->assign(a, a + addr_len);
    ucp_worker_release_address(worker_.get(), addr);

    ucp_am_handler_param_t hp{};
    hp.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB |
                    UCP_AM_HANDLER_PARAM_FIELD_ARG | UCP_AM_HANDLER_PARAM_FIELD_FLAGS;
    hp.id = kAmId;
    hp.cb = &Impl::OnAm;
    hp.arg = this;
    hp.flags = UCP_AM_FLAG_WHOLE_MSG;
    st = ucp_worker_set_am_recv_handler(worker_.get(), &hp);
    if (st != UCS_OK) return UcxStatus(st, "ucp_worker_set_am_recv_handler");

    int efd = -1;
    st = ucp_worker_get_efd(worker_.get(), &efd);
    if (st != UCS_OK) return UcxStatus(st, "ucp_worker_get_efd");
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (wake_fd_ < 0 || epoll_fd_ < 0) return ErrnoStatus(errno, "eventfd/epoll");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = efd;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, efd, &ev) != 0) return ErrnoStatus(errno, "epoll");
    ev.data.fd = wake_fd_;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
      return ErrnoStatus(errno, "epoll");
    }
    thread_ = std::thread([this] { Loop(); });
    return Status::OK();
  }

  ~Impl() {
    if (thread_.joinable()) {
      // Fail pending calls first: handlers blocked in nested calls return, the pool drains.
      Post([this] {
        stopping_ = true;
        FailAll(Status::Unavailable("messenger shutting down"));
      });
      pool_.Stop();
      Post([this] { stop_ = true; });
      thread_.join();
    }
    if (wake_fd_ >= 0) ::close(wake_fd_);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    worker_.reset();
    context_.reset();
  }

  Status Connect(uint32_t peer, std::span<const std::byte> address) {
    if (peer >= options_.world_size) {
      return Status::InvalidArgument(fmt::format("member {} outside a world of {}", peer,
                                                 options_.world_size));
    }
    std::vector<std::byte> addr(address.begin(), address.end());
    std::promise<Status> done;
    auto fut = done.get_future();
    if (!Post([&, peer] {
          Peer& p = peers_[peer];
          if (stopping_) {
            done.set_value(Status::Unavailable("messenger shutting down"));
            return;
          }
          if (p.ep != nullptr) {
            done.set_value(Status::AlreadyExists(fmt::format("member {} already connected", peer)));
            return;
          }
          ucp_ep_params_t ep{};
          ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                          UCP_EP_PARAM_FIELD_ERR_HANDLER;
          ep.address = reinterpret_cast<const ucp_address_t*>(addr.data());
          ep.err_mode = UCP_ERR_HANDLING_MODE_PEER;
          ep.err_handler.cb = &Impl::OnEpError;
          ep.err_handler.arg = &p;
          ucs_status_t st = ucp_ep_create(worker_.get(), &ep, &p.ep);
          if (st == UCS_OK) {
            p.up = true;
            p.up_once = true;
          }
          done.set_value(UcxStatus(st, fmt::format("connecting to member {}", peer)));
          if (st == UCS_OK) ReplayHeld(peer);
        })) {
      return Status::Unavailable("messenger is shut down");
    }
    return fut.get();
  }

  void SetHandler(uint16_t op, Handler h) {
    std::lock_guard lk(handlers_mu_);
    handlers_[op] = std::move(h);
  }

  void CallAsync(uint32_t peer, uint16_t op, Payload payload, std::chrono::milliseconds deadline,
                 std::function<void(Result<Payload>)> done) {
    Pending p;
    p.done = std::move(done);
    Start(peer, op, std::move(payload), deadline, std::move(p));
  }

  void CallInto(uint32_t peer, uint16_t op, Payload payload, size_t skip,
                std::span<std::byte> into, std::chrono::milliseconds deadline,
                Transport::DoneInto done) {
    Pending p;
    p.skip = skip;
    p.into = into;
    p.into_done = std::move(done);
    Start(peer, op, std::move(payload), deadline, std::move(p));
  }

  // CallAsync and CallInto: `proto` holds the call's way of ending (done, or into_done).
  void Start(uint32_t peer, uint16_t op, Payload payload, std::chrono::milliseconds deadline,
             Pending&& proto) {
    if (peer >= options_.world_size) {
      return Finish(proto, Status::InvalidArgument(fmt::format(
                               "member {} outside a world of {}", peer, options_.world_size)));
    }
    if (payload.size() > kMaxPayloadBytes) {
      return Finish(proto, Status::InvalidArgument(fmt::format(
                               "payload of {} bytes above the 1 GiB limit", payload.size())));
    }
    if (deadline.count() <= 0) deadline = options_.default_deadline;
    auto when = Clock::now() + deadline;
    proto.peer = peer;
    proto.deadline = when;
    auto shared = std::make_shared<Pending>(std::move(proto));
    bool posted = Post([this, peer, op, when, shared, p = std::move(payload)]() mutable {
      if (stopping_) {
        Finish(*shared, Status::Unavailable("messenger shutting down"));
        return;
      }
      uint64_t id = next_id_++;
      pending_[id] = std::move(*shared);
      deadlines_.emplace(when, id);
      counters_.requests_sent++;
      Header h;
      h.kind = Kind::kRequest;
      h.op = op;
      h.request_id = id;
      h.sender = options_.self;
      h.epoch = options_.epoch;
      h.payload_bytes = static_cast<uint32_t>(p.size());
      Send(peer, &h, {}, std::move(p));
    });
    if (!posted) Finish(*shared, Status::Unavailable("messenger is shut down"));
  }

  bool peer_up(uint32_t peer) const {
    return peer < peers_.size() && peers_[peer].up_flag.load();
  }

  MessengerCounters counters() const {
    MessengerCounters c;
    c.requests_sent = counters_.requests_sent.load();
    c.requests_served = counters_.requests_served.load();
    c.bytes_sent = counters_.bytes_sent.load();
    c.bytes_received = counters_.bytes_received.load();
    c.bad_messages = counters_.bad_messages.load();
    c.timeouts = counters_.timeouts.load();
    c.peer_failures = counters_.peer_failures.load();
    return c;
  }

  void SendRaw(uint32_t peer, std::vector<std::byte> header, Payload payload) {
    Post([this, peer, hdr = std::move(header), p = std::move(payload)]() mutable {
      Send(peer, nullptr, std::move(hdr), std::move(p));
    });
  }

 private:
  struct Peer {
    Impl* impl = nullptr;
    uint32_t index = 0;
    ucp_ep_h ep = nullptr;
    bool up = false;
    bool up_once = false;  // was connected: after a failure its messages are not held
    std::atomic<bool> up_flag{false};
  };
  struct Pending {
    uint32_t peer = 0;
    Clock::time_point deadline;
    std::function<void(Result<Payload>)> done;  // CallAsync
    // CallInto (set when into_done is): the reply from byte `skip` on goes to `into`;
    // into_done gets the head.
    size_t skip = 0;
    std::span<std::byte> into;
    Transport::DoneInto into_done;
    // A rendezvous receive into `into` is in flight: the call ends when it does, with
    // `failed` if the deadline or a failure came meanwhile.
    bool receiving = false;
    std::optional<Status> failed;
  };
  struct IntoRecv {  // a rendezvous reply received into a CallInto's memory
    Impl* impl;
    uint64_t id;
    Payload head;
    ucp_dt_iov_t iov[2];
    size_t body = 0;
  };
  struct OutMsg {
    Impl* impl;
    std::vector<std::byte> header;
    Payload payload;
    bool is_request;
    uint64_t request_id;
    // A reply's lent body, sent after the payload as a second iov (no copy); `keep` owns it.
    std::span<const std::byte> body = {};
    std::shared_ptr<const void> keep = {};
    ucp_dt_iov_t iov[2] = {};
  };
  struct RndvRecv {
    Impl* impl;
    Header header;
    Payload payload;
  };

  // Queues fn for the progress thread; false once it has stopped.
  bool Post(std::function<void()> fn) {
    {
      std::lock_guard lk(post_mu_);
      if (loop_exited_) return false;
      posted_.push_back(std::move(fn));
    }
    uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof(one));
    return true;
  }

  void Publish() {
    for (auto& p : peers_) p.up_flag.store(p.up);
  }

  void Loop() {
    while (true) {
      std::deque<std::function<void()>> work;
      {
        std::lock_guard lk(post_mu_);
        work.swap(posted_);
      }
      for (auto& fn : work) fn();
      while (ucp_worker_progress(worker_.get()) != 0) {
      }
      Expire();
      Publish();
      if (stop_) break;
      {
        std::lock_guard lk(post_mu_);
        if (!posted_.empty()) continue;
      }
      ucs_status_t st = ucp_worker_arm(worker_.get());
      if (st == UCS_ERR_BUSY) continue;
      int timeout_ms = 1000;
      if (!deadlines_.empty()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadlines_.begin()->first - Clock::now());
        timeout_ms = static_cast<int>(std::clamp<int64_t>(left.count() + 1, 0, 1000));
      }
      epoll_event evs[2];
      int n = ::epoll_wait(epoll_fd_, evs, 2, timeout_ms);
      for (int i = 0; i < n; ++i) {
        if (evs[i].data.fd == wake_fd_) {
          uint64_t v;
          (void)!::read(wake_fd_, &v, sizeof(v));
        }
      }
    }
    CloseEndpoints();
    // A CallInto whose receive the closed endpoints did not end: it ends now (no progress
    // from here on, so nothing writes into its memory any more).
    while (!pending_.empty()) {
      Pending p = Take(pending_.begin());
      Finish(p, p.failed ? *p.failed : Status::Unavailable("messenger shutting down"));
    }
    std::lock_guard lk(post_mu_);
    loop_exited_ = true;
    for (auto& fn : posted_) fn();  // tasks posted while stopping still run (they fail fast)
    posted_.clear();
  }

  void CloseEndpoints() {
    std::vector<void*> closing;
    for (auto& p : peers_) {
      if (p.ep == nullptr) continue;
      ucp_request_param_t rp{};
      rp.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
      rp.flags = UCP_EP_CLOSE_FLAG_FORCE;
      void* req = ucp_ep_close_nbx(p.ep, &rp);
      if (req != nullptr && !UCS_PTR_IS_ERR(req)) closing.push_back(req);
      p.ep = nullptr;
      p.up = false;
    }
    auto until = Clock::now() + std::chrono::seconds(5);
    for (void* req : closing) {
      while (ucp_request_check_status(req) == UCS_INPROGRESS && Clock::now() < until) {
        ucp_worker_progress(worker_.get());
      }
      ucp_request_free(req);
    }
    Publish();
  }

  // Ends call `id` with `r` (a whole reply, or an error).
  void Complete(uint64_t id, Result<Payload> r) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    if (it->second.receiving) {  // UCX still writes into `into`: end when it is done
      if (!it->second.failed) it->second.failed = r.ok() ? Status::Internal("reply twice") : r.status();
      deadlines_.erase({it->second.deadline, id});
      return;
    }
    Pending p = Take(it);
    Finish(p, std::move(r));
  }

  // Runs a call's end: a CallInto's whole reply is split into its head and `into` here.
  static void Finish(Pending& p, Result<Payload> r) {
    if (!p.into_done) return p.done(std::move(r));
    Transport::EndIntoFromWhole(std::move(r), p.skip, p.into, p.into_done);
  }

  // Removes call `id` (at `it`) with its deadline and returns it, to be ended by the caller.
  Pending Take(std::map<uint64_t, Pending>::iterator it) {
    Pending p = std::move(it->second);
    deadlines_.erase({p.deadline, it->first});
    pending_.erase(it);
    return p;
  }

  // A response for a CallInto: received into its memory. Returns false when the response is
  // not one (the caller delivers it as any other).
  bool ReceiveInto(const Header& h, void* data, size_t length, bool rndv) {
    if (h.kind != Kind::kResponse || h.status != Code::kOk) return false;
    auto it = pending_.find(h.request_id);
    if (it == pending_.end() || !it->second.into_done || it->second.receiving ||
        it->second.peer != h.sender || h.sender >= peers_.size() ||
        peers_[h.sender].ep == nullptr) {
      return false;
    }
    Pending& p = it->second;
    if (Status fits = Transport::CheckFitsInto(length, p.skip, p.into.size()); !fits.ok()) {
      if (rndv) ucp_am_data_release(worker_.get(), data);
      Complete(h.request_id, std::move(fits));
      return true;
    }
    const size_t body = length - p.skip;
    if (!rndv) {
      auto* d = static_cast<const std::byte*>(data);
      Payload head(d, d + p.skip);
      if (body != 0) std::memcpy(p.into.data(), d + p.skip, body);
      Take(it).into_done(std::move(head), body);
      return true;
    }
    auto* r = new IntoRecv{this, h.request_id, Payload(p.skip), {}, body};
    size_t n = 0;
    if (p.skip != 0) r->iov[n++] = {r->head.data(), p.skip};
    if (body != 0) r->iov[n++] = {p.into.data(), body};
    ucp_request_param_t rp{};
    rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
                      UCP_OP_ATTR_FIELD_DATATYPE;
    rp.cb.recv_am = &Impl::OnIntoDone;
    rp.user_data = r;
    rp.datatype = ucp_dt_make_iov();
    p.receiving = true;
    void* req = ucp_am_recv_data_nbx(worker_.get(), data, r->iov, n, &rp);
    if (req == nullptr) {
      EndInto(r, Status::OK());
    } else if (UCS_PTR_IS_ERR(req)) {
      EndInto(r, UcxStatus(UCS_PTR_STATUS(req), "rendezvous receive"));
    }
    return true;
  }

  static void OnIntoDone(void* request, ucs_status_t status, size_t length, void* user_data) {
    auto* r = static_cast<IntoRecv*>(user_data);
    Status s = UcxStatus(status, "rendezvous receive");
    if (s.ok() && length != r->head.size() + r->body) {
      s = Status::Corruption("rendezvous receive: length differs from the announced one");
    }
    r->impl->EndInto(r, std::move(s));
    ucp_request_free(request);
  }

  // The receive of a CallInto's reply ended: the call ends now (its deadline or a failure
  // that came meanwhile wins over the bytes).
  void EndInto(IntoRecv* r, Status s) {
    auto it = pending_.find(r->id);
    if (it != pending_.end()) {
      Pending p = Take(it);
      if (p.failed) s = *p.failed;
      if (s.ok()) p.into_done(std::move(r->head), r->body);
      else p.into_done(std::move(s), 0);
    }
    delete r;
  }

  void FailAll(const Status& s) {
    std::vector<uint64_t> ids;
    for (auto& [id, p] : pending_) ids.push_back(id);
    for (uint64_t id : ids) Complete(id, s);
  }

  void Expire() {
    auto now = Clock::now();
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      uint64_t id = deadlines_.begin()->second;
      deadlines_.erase(deadlines_.begin());
      auto it = pending_.find(id);
      if (it == pending_.end()) continue;
      counters_.timeouts++;
      const uint32_t peer = it->second.peer;
      const bool receiving = it->second.receiving;
      Complete(id, Status::Timeout(fmt::format("request to member {} passed its deadline", peer)));
      if (receiving && peers_[peer].up && peers_[peer].ep != nullptr) {
        // The reply started to arrive into the caller's memory and stalled past the deadline
        // (a peer stopped mid-transfer): the call can end only when the receive does, so the
        // peer is taken for failed, which ends it, rather than leaving the caller waiting.
        FailPeer(peers_[peer], peers_[peer].ep,
                 Status::Unavailable(fmt::format("member {} stalled in the middle of a reply", peer)),
                 "stalled in the middle of a reply past its deadline");
      }
    }
  }

  // Sends a message with header `h`, or, when h is null (tests), `raw_header` as it is; a
  // reply's lent `body` follows the payload without being copied.
  void Send(uint32_t peer, const Header* h, std::vector<std::byte> raw_header, Payload payload,
            std::span<const std::byte> body = {}, std::shared_ptr<const void> keep = {}) {
    bool is_request = h != nullptr && h->kind == Kind::kRequest;
    uint64_t request_id = h != nullptr ? h->request_id : 0;
    Peer& p = peers_[peer];
    if (!p.up) {
      if (is_request) {
        Complete(request_id, Status::Unavailable(fmt::format("member {} is not reachable", peer)));
      }
      return;
    }
    auto* m = new OutMsg{this, std::move(raw_header), std::move(payload), is_request, request_id,
                         body, std::move(keep)};
    if (h != nullptr) {
      m->header.resize(kHeaderBytes);
      EncodeHeader(*h, m->header.data());
    }
    counters_.bytes_sent += m->payload.size() + m->body.size();
    ucp_request_param_t rp{};
    rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    rp.cb.send = &Impl::OnSendDone;
    rp.user_data = m;
    const void* buffer = m->payload.data();
    size_t count = m->payload.size();
    if (!m->body.empty() && m->payload.empty()) {
      // Contiguous: UCX sends it by rendezvous, zero-copy where it can (an iov is sent in
      // fragments through bounce buffers: remote-read ran at 0.6-0.7x of this).
      buffer = m->body.data();
      count = m->body.size();
    } else if (!m->body.empty()) {
      size_t n = 0;
      m->iov[n++] = {m->payload.data(), m->payload.size()};
      m->iov[n++] = {const_cast<std::byte*>(m->body.data()), m->body.size()};
      rp.op_attr_mask |= UCP_OP_ATTR_FIELD_DATATYPE;
      rp.datatype = ucp_dt_make_iov();
      buffer = m->iov;
      count = n;
    }
    void* req = ucp_am_send_nbx(p.ep, kAmId, m->header.data(), m->header.size(), buffer, count,
                                &rp);
    if (req == nullptr) {
      delete m;
    } else if (UCS_PTR_IS_ERR(req)) {
      if (m->is_request) {
        Complete(m->request_id, UcxStatus(UCS_PTR_STATUS(req),
                                          fmt::format("sending to member {}", peer)));
      }
      delete m;
    }
  }

  static void OnSendDone(void* request, ucs_status_t status, void* user_data) {
    auto* m = static_cast<OutMsg*>(user_data);
    if (status != UCS_OK && m->is_request) {
      m->impl->Complete(m->request_id, UcxStatus(status, "sending request"));
    }
    delete m;
    ucp_request_free(request);
  }

  static void OnEpError(void* arg, ucp_ep_h ep, ucs_status_t status) {
    auto* p = static_cast<Peer*>(arg);
    if (!p->up) return;
    p->impl->FailPeer(*p, ep, UcxStatus(status, fmt::format("member {} failed", p->index)),
                      ucs_status_string(status));
  }

  // The peer is down from here on: its calls fail with `why`, its endpoint is closed (which
  // also ends a rendezvous receive from it that is still in flight).
  void FailPeer(Peer& p, ucp_ep_h ep, const Status& why, std::string_view reason) {
    p.up = false;
    counters_.peer_failures++;
    Log(LogLevel::kWarn, "member {} is unreachable: {}", p.index, reason);
    std::vector<uint64_t> ids;
    for (auto& [id, pend] : pending_) {
      if (pend.peer == p.index) ids.push_back(id);
    }
    for (uint64_t id : ids) Complete(id, why);
    ucp_request_param_t rp{};
    rp.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    rp.flags = UCP_EP_CLOSE_FLAG_FORCE;
    void* req = ucp_ep_close_nbx(ep, &rp);
    if (req != nullptr && !UCS_PTR_IS_ERR(req)) ucp_request_free(req);
    p.ep = nullptr;
  }

  void ReplayHeld(uint32_t peer) {
    std::deque<std::pair<Header, Payload>> keep;
    std::vector<std::pair<Header, Payload>> replay;
    for (auto& [h, p] : held_) {
      if (h.sender == peer) replay.emplace_back(h, std::move(p));
      else keep.emplace_back(h, std::move(p));
    }
    held_.swap(keep);
    for (auto& [h, p] : replay) {
      held_bytes_ -= p.size();
      Deliver(h, std::move(p));
    }
  }

  void Drop(std::string_view why) {
    counters_.bad_messages++;
    Log(LogLevel::kWarn, "dropped a message: {}", why);
  }

  static ucs_status_t OnAm(void* arg, const void* header, size_t header_length, void* data,
                           size_t length, const ucp_am_recv_param_t* param) {
    auto* self = static_cast<Impl*>(arg);
    const uint32_t world = self->options_.world_size;  // 0 until Bind: hold every sender
    auto h = DecodeHeader({static_cast<const std::byte*>(header), header_length}, length,
                          world != 0 ? world : kMaxBoundWorld);
    if (!h.ok()) {
      self->Drop(h.status().message());
      return UCS_OK;
    }
    if (h->epoch != self->options_.epoch) {
      self->Drop(fmt::format("message of epoch {} from member {}; this member is in epoch {}",
                             h->epoch, h->sender, self->options_.epoch));
      return UCS_OK;
    }
    self->counters_.bytes_received += length;
    const bool rndv = (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0;
    if (self->ReceiveInto(*h, data, length, rndv)) return rndv ? UCS_INPROGRESS : UCS_OK;
    if (rndv) {
      auto* r = new RndvRecv{self, *h, Payload(length)};
      ucp_request_param_t rp{};
      rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
      rp.cb.recv_am = &Impl::OnRndvDone;
      rp.user_data = r;
      void* req = ucp_am_recv_data_nbx(self->worker_.get(), data, r->payload.data(), length, &rp);
      if (req == nullptr) {
        self->Deliver(r->header, std::move(r->payload));
        delete r;
      } else if (UCS_PTR_IS_ERR(req)) {
        self->Drop(UcxStatus(UCS_PTR_STATUS(req), "rendezvous receive").message());
        delete r;
      }
      return UCS_INPROGRESS;
    }
    auto* d = static_cast<const std::byte*>(data);
    self->Deliver(*h, Payload(d, d + length));
    return UCS_OK;
  }

  static void OnRndvDone(void* request, ucs_status_t status, size_t length, void* user_data) {
    auto* r = static_cast<RndvRecv*>(user_data);
    if (status == UCS_OK && length == r->payload.size()) {
      r->impl->Deliver(r->header, std::move(r->payload));
    } else {
      r->impl->Drop(UcxStatus(status, "rendezvous receive").message());
    }
    delete r;
    ucp_request_free(request);
  }

  void Deliver(const Header& h, Payload payload) {
    const bool unbound = options_.world_size == 0;
    if (unbound || peers_[h.sender].ep == nullptr) {
      // A member may write before this side has created its endpoint back (it is still
      // reading the rendezvous table). Hold a bounded amount until Connect, then replay.
      if ((!unbound && peers_[h.sender].up_once) || held_.size() >= kMaxHeld ||
          held_bytes_ + payload.size() > kMaxHeldBytes) {
        Drop(fmt::format("sender {} is not a connected member", h.sender));
        return;
      }
      held_bytes_ += payload.size();
      held_.emplace_back(h, std::move(payload));
      return;
    }
    if (h.kind == Kind::kResponse) {
      auto it = pending_.find(h.request_id);
      if (it == pending_.end()) return;  // late reply to a call that already timed out
      if (it->second.peer != h.sender) {
        Drop(fmt::format("reply to request {} from member {}, sent to {}", h.request_id,
                         h.sender, it->second.peer));
        return;
      }
      if (h.status == Code::kOk) {
        Complete(h.request_id, std::move(payload));
      } else {
        std::string msg(reinterpret_cast<const char*>(payload.data()), payload.size());
        Complete(h.request_id, Status(h.status, msg));
      }
      return;
    }
    Handler handler;
    {
      std::lock_guard lk(handlers_mu_);
      auto it = handlers_.find(h.op);
      if (it != handlers_.end()) handler = it->second;
    }
    if (!handler) {
      Respond(h, Reply{Status::InvalidArgument(fmt::format("no handler for op {}", h.op)), {}});
      return;
    }
    counters_.requests_served++;
    pool_.Submit([this, h, handler, p = std::move(payload)] {
      Reply r = handler(h.sender, p);
      Post([this, h, r = std::move(r)]() mutable { Respond(h, std::move(r)); });
    });
  }

  void Respond(const Header& req, Reply r) {
    Header h;
    h.kind = Kind::kResponse;
    h.op = req.op;
    h.request_id = req.request_id;
    h.sender = options_.self;
    h.epoch = options_.epoch;
    h.status = r.status.code();
    Payload p = r.status.ok() ? std::move(r.payload) : ErrorPayload(r.status);
    std::span<const std::byte> body = r.status.ok() ? r.body : std::span<const std::byte>{};
    if (p.size() + body.size() > kMaxPayloadBytes) {
      h.status = Code::kInternal;
      p = ErrorPayload(Status::Internal("reply above the 1 GiB limit"));
      body = {};
    }
    h.payload_bytes = static_cast<uint32_t>(p.size() + body.size());
    Send(req.sender, &h, {}, std::move(p), body, body.empty() ? nullptr : std::move(r.keep));
  }

  MessengerOptions options_;  // self and world_size change once, by Bind, on the progress thread
  ContextPtr context_;
  WorkerPtr worker_;
  int wake_fd_ = -1;
  int epoll_fd_ = -1;
  std::thread thread_;

  // Progress-thread state.
  std::vector<Peer> peers_;
  std::map<uint64_t, Pending> pending_;
  std::set<std::pair<Clock::time_point, uint64_t>> deadlines_;
  uint64_t next_id_ = 1;
  static constexpr size_t kMaxHeld = 256;
  static constexpr uint32_t kMaxBoundWorld = 1u << 16;  // engine/protocol.h: kMaxWorldSize
  static constexpr size_t kMaxHeldBytes = 64u << 20;
  std::deque<std::pair<Header, Payload>> held_;  // from members not connected yet
  size_t held_bytes_ = 0;
  bool stopping_ = false;
  bool stop_ = false;
  // Written by the progress thread, read by any.
  struct {
    std::atomic<uint64_t> requests_sent{0}, requests_served{0}, bytes_sent{0}, bytes_received{0},
        bad_messages{0}, timeouts{0}, peer_failures{0};
  } counters_;

  std::mutex post_mu_;
  std::deque<std::function<void()>> posted_;
  bool loop_exited_ = false;

  std::mutex handlers_mu_;
  std::map<uint16_t, Handler> handlers_;

  TaskPool pool_;
};

Result<std::unique_ptr<Messenger>> Messenger::Create(const MessengerOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  std::vector<std::byte> address;
  SHOAL_RETURN_IF_ERROR(impl->Init(&address));
  std::unique_ptr<Messenger> m(new Messenger(std::move(impl)));
  m->address_ = std::move(address);
  m->self_ = options.self;
  m->world_size_ = options.world_size;
  return m;
}

Messenger::Messenger(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Messenger::~Messenger() = default;

Status Messenger::Connect(uint32_t peer, std::span<const std::byte> address) {
  return impl_->Connect(peer, address);
}

void Messenger::SetHandler(uint16_t op, Handler handler) { impl_->SetHandler(op, std::move(handler)); }

void Messenger::CallAsync(uint32_t peer, uint16_t op, Payload payload,
                          std::chrono::milliseconds deadline, Done done) {
  impl_->CallAsync(peer, op, std::move(payload), deadline, std::move(done));
}

void Messenger::CallInto(uint32_t peer, uint16_t op, Payload payload, size_t skip,
                        std::span<std::byte> into, std::chrono::milliseconds deadline,
                        DoneInto done) {
  impl_->CallInto(peer, op, std::move(payload), skip, into, deadline, std::move(done));
}

bool Messenger::peer_up(uint32_t peer) const { return impl_->peer_up(peer); }

Status Messenger::Bind(uint32_t self, uint32_t world_size) {
  if (world_size_ != 0) return Transport::Bind(self, world_size);
  SHOAL_RETURN_IF_ERROR(impl_->Bind(self, world_size));
  self_ = self;
  world_size_ = world_size;
  return Status::OK();
}
MessengerCounters Messenger::counters() const { return impl_->counters(); }

void Messenger::SendRawForTest(uint32_t peer, std::vector<std::byte> header, Payload payload) {
  impl_->SendRaw(peer, std::move(header), std::move(payload));
}

}  // namespace shoal::transport
