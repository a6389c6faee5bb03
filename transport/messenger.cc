// The UCX messenger's life: Init, Bind, Connect, the progress loop and shutdown, and the
// public Messenger facade. The class and the other two files: transport/messenger_impl.h.
#include "transport/messenger.h"

#include <fmt/format.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <future>

#include "base/errno_status.h"
#include "transport/job_token.h"
#include "transport/messenger_impl.h"
#include "transport/ucx_status.h"

namespace shoal::transport {

Messenger::Impl::Impl(const MessengerOptions& o)
    : options_(o), peers_(o.world_size), pool_(o.handler_threads) {
  for (uint32_t i = 0; i < o.world_size; ++i) {
    peers_[i].impl = this;
    peers_[i].index = i;
    peers_[i].as_sender = o.guest ? kGuestHello : o.self;
  }
}

Status Messenger::Impl::Bind(uint32_t self, uint32_t world_size) {
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
          fresh[i].as_sender = self;
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

Status Messenger::Impl::Init(std::vector<std::byte>* address) {
  if (options_.guest && (options_.world_size == 0 || options_.guest_token.empty())) {
    return Status::InvalidArgument("a guest messenger needs the world's size and the job token");
  }
  if (!options_.guest && options_.world_size != 0 && options_.self >= options_.world_size) {
    return Status::InvalidArgument(
        fmt::format("member {} outside a world of {}", options_.self, options_.world_size));
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
  own_address_ = *address;
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

Messenger::Impl::~Impl() {
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
  // Sends a force-closed endpoint never completed (UCX called no callback): nothing refers to
  // their memory once the worker is destroyed.
  for (OutMsg* m : sending_) {
    ReleaseBody(m);
    delete m;
  }
  sending_.clear();
}

Status Messenger::Impl::Connect(uint32_t peer, std::span<const std::byte> address) {
  if (peer >= options_.world_size) {
    return Status::InvalidArgument(
        fmt::format("member {} outside a world of {}", peer, options_.world_size));
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
        ucs_status_t st = CreateEndpoints(p, addr);
        done.set_value(UcxStatus(st, fmt::format("connecting to member {}", peer)));
        if (st == UCS_OK) ReplayHeld(peer);
      })) {
    return Status::Unavailable("messenger is shut down");
  }
  return fut.get();
}

ucs_status_t Messenger::Impl::CreateEndpoints(Peer& p, const std::vector<std::byte>& address) {
  ucp_ep_params_t ep{};
  ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                  UCP_EP_PARAM_FIELD_ERR_HANDLER;
  ep.address = reinterpret_cast<const ucp_address_t*>(address.data());
  ep.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  ep.err_handler.cb = &Impl::OnEpError;
  ep.err_handler.arg = &p;
  ucs_status_t st = ucp_ep_create(worker_.get(), &ep, &p.ep);
  if (st != UCS_OK) {
    p.ep = nullptr;
    return st;
  }
  // The data lane: a second endpoint without peer-failure handling, which is what lets UCX use
  // shared memory and CMA between members on one host (it refuses both on an endpoint that
  // must report a peer's failure, leaving TCP loopback). Failures are still seen on the first
  // endpoint (with its keepalive), which closes both.
  ucp_ep_params_t dp = ep;
  dp.err_mode = UCP_ERR_HANDLING_MODE_NONE;
  if (ucp_ep_create(worker_.get(), &dp, &p.data_ep) != UCS_OK) p.data_ep = nullptr;
  p.up = true;
  p.up_once = true;
  return UCS_OK;
}

Messenger::Impl::Peer* Messenger::Impl::PeerAt(uint32_t index) {
  if (index < peers_.size()) return &peers_[index];
  if (index == kGuestHello || !IsGuestSender(index)) return nullptr;
  Peer* g = guests_[GuestSlot(index)].get();
  // Another generation of the slot is another guest: none of its messages go to this one.
  return g != nullptr && g->index == index ? g : nullptr;
}

Status Messenger::Impl::Greet(uint32_t peer) {
  const auto& address = own_address_;
  const Mac mac = TokenMac(options_.guest_token, kGuestLabel, {address});
  Payload hello(mac.begin(), mac.end());
  hello.insert(hello.end(), address.begin(), address.end());
  std::promise<Result<Payload>> answered;
  auto fut = answered.get_future();
  CallAsync(peer, kGuestHelloOp, std::move(hello), std::chrono::milliseconds(0),
            [&answered](Result<Payload> r) { answered.set_value(std::move(r)); });
  Result<Payload> r = fut.get();
  if (!r.ok()) return r.status().WithContext(fmt::format("observing member {}", peer));
  uint32_t index = 0;
  if (r->size() != sizeof index) {
    return Status::InvalidArgument(
        fmt::format("member {} answered the hello with {} bytes", peer, r->size()));
  }
  std::memcpy(&index, r->data(), sizeof index);
  if (!IsGuestSender(index) || index == kGuestHello) {
    return Status::InvalidArgument(fmt::format("member {} gave guest index {:#x}", peer, index));
  }
  std::promise<void> set;
  if (!Post([&] {
        peers_[peer].as_sender = index;
        set.set_value();
      })) {
    return Status::Unavailable("messenger is shut down");
  }
  set.get_future().wait();
  return Status::OK();
}

void Messenger::Impl::SetGuestHandler(uint16_t op, Handler h) {
  MutexLock lk(&handlers_mu_);
  guest_handlers_[op] = std::move(h);
}

void Messenger::Impl::SetHandler(uint16_t op, Handler h) {
  MutexLock lk(&handlers_mu_);
  handlers_[op] = std::move(h);
  body_ops_.erase(op);
}

void Messenger::Impl::SetBodyHandler(uint16_t op, size_t head_bytes, BodySink sink,
                                     BodyHandler handler) {
  auto body_op = std::make_shared<const BodyOp>(BodyOp{head_bytes, sink, handler});
  MutexLock lk(&handlers_mu_);
  // A request sent whole (CallAsync) reaches the same handler through a copy.
  handlers_[op] = [body_op](uint32_t sender, std::span<const std::byte> payload) {
    return Transport::ServeBody(body_op->head_bytes, body_op->sink, body_op->handler, sender,
                                payload);
  };
  body_ops_[op] = std::move(body_op);
}

bool Messenger::Impl::peer_up(uint32_t peer) const {
  return peer < peers_.size() && peers_[peer].up_flag.load();
}

MessengerCounters Messenger::Impl::counters() const {
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

void Messenger::Impl::SendRaw(uint32_t peer, std::vector<std::byte> header, Payload payload) {
  Post([this, peer, hdr = std::move(header), p = std::move(payload)]() mutable {
    Send(peer, nullptr, std::move(hdr), std::move(p));
  });
}

bool Messenger::Impl::Post(std::function<void()> fn) {
  {
    MutexLock lk(&post_mu_);
    if (loop_exited_) return false;
    posted_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
  return true;
}

void Messenger::Impl::Publish() {
  for (auto& p : peers_) p.up_flag.store(p.up);
}

void Messenger::Impl::Loop() {
  while (true) {
    std::deque<std::function<void()>> work;
    {
      MutexLock lk(&post_mu_);
      work.swap(posted_);
    }
    for (auto& fn : work) fn();
    while (ucp_worker_progress(worker_.get()) != 0) {
    }
    Expire();
    Publish();
    if (stop_) break;
    {
      MutexLock lk(&post_mu_);
      if (!posted_.empty()) continue;
    }
    ucs_status_t st = ucp_worker_arm(worker_.get());
    if (st == UCS_ERR_BUSY) continue;
    int timeout_ms = 1000;
    if (!deadlines_.empty()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadlines_.begin()->first -
                                                                        Clock::now());
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
  SayLeaving();
  CloseEndpoints();
  // No progress from here on: no send reads its body any more.
  for (OutMsg* m : sending_) ReleaseBody(m);
  // A CallInto whose receive the closed endpoints did not end: it ends now (no progress
  // from here on, so nothing writes into its memory any more).
  while (!pending_.empty()) {
    Pending p = Take(pending_.begin());
    Finish(p, p.failed ? *p.failed : Status::Unavailable("messenger shutting down"));
  }
  MutexLock lk(&post_mu_);
  loop_exited_ = true;
  for (auto& fn : posted_) fn();  // tasks posted while stopping still run (they fail fast)
  posted_.clear();
}

void Messenger::Impl::ForceClose(Peer& p, std::vector<void*>* closing) {
  for (ucp_ep_h* ep : {&p.ep, &p.data_ep}) {
    if (*ep == nullptr) continue;
    ucp_request_param_t rp{};
    rp.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    rp.flags = UCP_EP_CLOSE_FLAG_FORCE;
    void* req = ucp_ep_close_nbx(*ep, &rp);
    if (req != nullptr && !UCS_PTR_IS_ERR(req)) closing->push_back(req);
    *ep = nullptr;
  }
}

void Messenger::Impl::SayLeaving() {
  for (auto& p : peers_) {
    // (A guest the member never took, its hello unanswered, has nothing to say there.)
    if (!p.up || p.ep == nullptr || p.as_sender == kGuestHello) continue;
    Header h;
    h.kind = Kind::kLeaving;
    h.sender = p.as_sender;
    h.epoch = options_.epoch;
    Send(p.index, &h, {}, {});
  }
  // A peer that stopped reading (frozen, its link gone) holds the send: bounded wait.
  auto until = Clock::now() + std::chrono::milliseconds(500);
  while (!sending_.empty() && Clock::now() < until) ucp_worker_progress(worker_.get());
}

void Messenger::Impl::CloseEndpoints() {
  std::vector<void*> closing;
  for (auto& p : peers_) {
    ForceClose(p, &closing);
    p.up = false;
  }
  for (auto& g : guests_) {
    if (g == nullptr) continue;
    ForceClose(*g, &closing);
    g->up = false;
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

Result<std::unique_ptr<Messenger>> Messenger::Create(const MessengerOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  std::vector<std::byte> address;
  SHOAL_RETURN_IF_ERROR(impl->Init(&address));
  std::unique_ptr<Messenger> m(new Messenger(std::move(impl)));
  m->address_ = std::move(address);
  m->self_ = options.guest ? kGuestHello : options.self;
  m->world_size_ = options.world_size;
  m->guest_ = options.guest;
  return m;
}

Messenger::Messenger(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Messenger::~Messenger() = default;

Status Messenger::Connect(uint32_t peer, std::span<const std::byte> address) {
  SHOAL_RETURN_IF_ERROR(impl_->Connect(peer, address));
  if (guest_) return impl_->Greet(peer);
  return Status::OK();
}

void Messenger::SetGuestHandler(uint16_t op, Handler handler) {
  impl_->SetGuestHandler(op, std::move(handler));
}

void Messenger::SetHandler(uint16_t op, Handler handler) {
  impl_->SetHandler(op, std::move(handler));
}

void Messenger::SetBodyHandler(uint16_t op, size_t head_bytes, BodySink sink,
                               BodyHandler handler) {
  impl_->SetBodyHandler(op, head_bytes, std::move(sink), std::move(handler));
}

void Messenger::CallGather(uint32_t peer, uint16_t op, Payload head,
                           std::span<const std::byte> body, std::chrono::milliseconds deadline,
                           Done done, Released released) {
  impl_->CallGather(peer, op, std::move(head), body, deadline, std::move(done),
                    std::move(released));
}

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
