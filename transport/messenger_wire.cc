// The UCX messenger's messages in and out: sending (a reply's lent body without a copy),
// receiving eager and rendezvous messages, delivering requests to handlers and their replies
// back, messages of members not connected yet held, and peer failure
// (transport/messenger_impl.h).
#include <fmt/format.h>

#include <cstring>

#include "base/log.h"
#include "transport/job_token.h"
#include "transport/messenger_impl.h"
#include "transport/ucx_status.h"

namespace shoal::transport {
namespace {

Payload ErrorPayload(const Status& s) {
  const std::string& m = s.message();
  auto* p = reinterpret_cast<const std::byte*>(m.data());
  return Payload(p, p + m.size());
}

}  // namespace

void Messenger::Impl::Send(uint32_t peer, const Header* h, std::vector<std::byte> extra,
                           Payload payload, std::span<const std::byte> body,
                           std::shared_ptr<const void> keep, Transport::Released released) {
  bool is_request = h != nullptr && h->kind == Kind::kRequest;
  uint64_t request_id = h != nullptr ? h->request_id : 0;
  Peer* at = PeerAt(peer);
  if (at == nullptr || !at->up) {
    if (released) released();
    if (is_request) {
      Complete(request_id, Status::Unavailable(fmt::format("member {} is not reachable", peer)));
    }
    return;
  }
  auto* m = new OutMsg{this,       peer, {},   std::move(payload), is_request, request_id,
                       body,       std::move(keep), std::move(released)};
  if (h != nullptr) {
    m->header.resize(kHeaderBytes);
    EncodeHeader(*h, m->header.data());
    m->header.insert(m->header.end(), extra.begin(), extra.end());
  } else {
    m->header = std::move(extra);
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
  Peer& p = *at;
  ucp_ep_h ep = !m->body.empty() && p.data_ep != nullptr ? p.data_ep : p.ep;
  void* req = ucp_am_send_nbx(ep, kAmId, m->header.data(), m->header.size(), buffer, count, &rp);
  if (req != nullptr && !UCS_PTR_IS_ERR(req)) {
    sending_.insert(m);
    return;
  }
  ReleaseBody(m);
  if (req != nullptr && m->is_request) {
    Complete(m->request_id,
             UcxStatus(UCS_PTR_STATUS(req), fmt::format("sending to member {}", peer)));
  }
  if (req == nullptr && m->is_request) {
    auto it = pending_.find(m->request_id);
    if (it != pending_.end()) it->second.gathering = false;
  }
  delete m;
}

void Messenger::Impl::OnSendDone(void* request, ucs_status_t status, void* user_data) {
  auto* m = static_cast<OutMsg*>(user_data);
  ReleaseBody(m);
  if (m->is_request) {
    auto it = m->impl->pending_.find(m->request_id);
    if (it != m->impl->pending_.end()) it->second.gathering = false;
  }
  if (status != UCS_OK && m->is_request) {
    m->impl->Complete(m->request_id, UcxStatus(status, "sending request"));
  }
  m->impl->sending_.erase(m);
  delete m;
  ucp_request_free(request);
}

void Messenger::Impl::ReleaseBody(OutMsg* m) {
  m->keep.reset();  // a reply's lent body goes back to its owner
  if (!m->released) return;
  auto released = std::move(m->released);
  m->released = nullptr;
  released();
}

void Messenger::Impl::OnEpError(void* arg, ucp_ep_h, ucs_status_t status) {
  auto* p = static_cast<Peer*>(arg);
  if (!p->up) return;
  p->impl->FailPeer(*p, UcxStatus(status, fmt::format("member {} failed", p->index)),
                    ucs_status_string(status));
}

void Messenger::Impl::FailPeer(Peer& p, const Status& why, std::string_view reason) {
  p.up = false;
  if (p.guest) {
    // An observer's end is no failure of the world, whichever way it went.
    Log(LogLevel::kInfo, "observer {} {}", GuestSlot(p.index),
        p.left ? std::string("left") : fmt::format("is gone: {}", reason));
  } else if (p.left) {
    Log(LogLevel::kInfo, "member {} left", p.index);
  } else {
    counters_.peer_failures++;
    Log(LogLevel::kWarn, "member {} is unreachable: {}", p.index, reason);
  }
  std::vector<uint64_t> ids;
  for (auto& [id, pend] : pending_) {
    if (pend.peer == p.index) ids.push_back(id);
  }
  for (uint64_t id : ids) Complete(id, why);
  std::vector<void*> closing;
  ForceClose(p, &closing);
  for (void* req : closing) ucp_request_free(req);  // the close goes on without us
  // Bodies of sends to the closed endpoints are not read from here on (a force-closed endpoint
  // does not always complete its sends; one without failure handling, the data lane, never
  // does): their owners may reuse them.
  for (OutMsg* m : sending_) {
    if (m->peer == p.index) ReleaseBody(m);
  }
}

void Messenger::Impl::ReplayHeld(uint32_t peer) {
  std::deque<std::pair<Header, Payload>> keep;
  std::vector<std::pair<Header, Payload>> replay;
  for (auto& [h, p] : held_) {
    if (h.sender == peer)
      replay.emplace_back(h, std::move(p));
    else
      keep.emplace_back(h, std::move(p));
  }
  held_.swap(keep);
  for (auto& [h, p] : replay) {
    held_bytes_ -= p.size();
    Deliver(h, std::move(p));
  }
}

void Messenger::Impl::Drop(std::string_view why) {
  counters_.bad_messages++;
  Log(LogLevel::kWarn, "dropped a message: {}", why);
}

ucs_status_t Messenger::Impl::OnAm(void* arg, const void* header, size_t header_length, void* data,
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
  self->counters_.bytes_received += length + h->head_bytes;
  const bool rndv = (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0;
  auto head = std::span(static_cast<const std::byte*>(header) + kHeaderBytes, h->head_bytes);
  if (IsGuestSender(h->sender) && !head.empty()) {
    self->Drop(fmt::format("a guest's request with a head (op {})", h->op));
    return UCS_OK;
  }
  if (h->kind == Kind::kRequest && !head.empty()) {
    return self->ReceiveRequest(*h, head, data, length, rndv);
  }
  if (self->ReceiveInto(*h, head, data, length, rndv)) return rndv ? UCS_INPROGRESS : UCS_OK;
  return self->ReceiveWhole(*h, head, data, length, rndv);
}

ucs_status_t Messenger::Impl::ReceiveWhole(const Header& h, std::span<const std::byte> head,
                                           void* data, size_t length, bool rndv) {
  Payload whole(head.begin(), head.end());
  whole.resize(head.size() + length);
  if (!rndv) {
    if (length != 0) std::memcpy(whole.data() + head.size(), data, length);
    Deliver(h, std::move(whole));
    return UCS_OK;
  }
  auto* r = new RndvRecv{this, h, std::move(whole), length};
  ucp_request_param_t rp{};
  rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  rp.cb.recv_am = &Impl::OnRndvDone;
  rp.user_data = r;
  void* req =
      ucp_am_recv_data_nbx(worker_.get(), data, r->payload.data() + head.size(), length, &rp);
  if (req == nullptr) {
    Deliver(r->header, std::move(r->payload));
    delete r;
  } else if (UCS_PTR_IS_ERR(req)) {
    Drop(UcxStatus(UCS_PTR_STATUS(req), "rendezvous receive").message());
    delete r;
  }
  return UCS_INPROGRESS;
}

void Messenger::Impl::OnRndvDone(void* request, ucs_status_t status, size_t length,
                                 void* user_data) {
  auto* r = static_cast<RndvRecv*>(user_data);
  if (status != UCS_OK) {
    r->impl->Drop(UcxStatus(status, "rendezvous receive").message());
  } else if (length != r->data) {
    r->impl->Drop(fmt::format("rendezvous receive of {} bytes, {} announced", length, r->data));
  } else {
    r->impl->Deliver(r->header, std::move(r->payload));
  }
  delete r;
  ucp_request_free(request);
}

ucs_status_t Messenger::Impl::ReceiveRequest(const Header& h, std::span<const std::byte> head,
                                             void* data, size_t length, bool rndv) {
  std::shared_ptr<const BodyOp> op;
  {
    MutexLock lk(&handlers_mu_);
    auto it = body_ops_.find(h.op);
    if (it != body_ops_.end() && it->second->head_bytes == head.size()) op = it->second;
  }
  if (op == nullptr) return ReceiveWhole(h, head, data, length, rndv);  // as any request
  if (!rndv) {
    DeliverBody(h, Payload(head.begin(), head.end()),
                Transport::ReceiveBody(op->sink, {static_cast<const std::byte*>(data), length}));
    return UCS_OK;
  }
  auto* r = new BodyRecv{this, h, Payload(head.begin(), head.end()),
                         Transport::BodyMemory(op->sink, length)};
  ucp_request_param_t rp{};
  rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  rp.cb.recv_am = &Impl::OnBodyDone;
  rp.user_data = r;
  void* req = ucp_am_recv_data_nbx(worker_.get(), data, r->body.bytes.data(), length, &rp);
  if (req == nullptr) {
    DeliverBody(r->header, std::move(r->head), std::move(r->body));
    delete r;
  } else if (UCS_PTR_IS_ERR(req)) {
    Drop(UcxStatus(UCS_PTR_STATUS(req), "rendezvous receive").message());
    delete r;
  }
  return UCS_INPROGRESS;
}

void Messenger::Impl::OnBodyDone(void* request, ucs_status_t status, size_t length,
                                 void* user_data) {
  auto* r = static_cast<BodyRecv*>(user_data);
  if (status == UCS_OK && length == r->body.bytes.size()) {
    r->impl->DeliverBody(r->header, std::move(r->head), std::move(r->body));
  } else {
    r->impl->Drop(UcxStatus(status, "rendezvous receive").message());
  }
  delete r;
  ucp_request_free(request);
}

void Messenger::Impl::DeliverBody(const Header& h, Payload head, Body body) {
  std::shared_ptr<const BodyOp> op;
  {
    MutexLock lk(&handlers_mu_);
    auto it = body_ops_.find(h.op);
    if (it != body_ops_.end()) op = it->second;
  }
  if (options_.world_size == 0 || peers_[h.sender].ep == nullptr || op == nullptr) {
    // Held until the sender connects (or refused): as a whole payload, served from it later.
    head.insert(head.end(), body.bytes.begin(), body.bytes.end());
    return Deliver(h, std::move(head));
  }
  counters_.requests_served++;
  pool_.Submit([this, h, op, head = std::move(head), body = std::move(body)]() mutable {
    Reply r = op->handler(h.sender, head, std::move(body));
    Post([this, h, r = std::move(r)]() mutable { Respond(h, std::move(r)); });
  });
}

void Messenger::Impl::Deliver(const Header& h, Payload payload) {
  if (IsGuestSender(h.sender)) return DeliverFromGuest(h, std::move(payload));
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
  if (h.kind == Kind::kLeaving) {
    peers_[h.sender].left = true;
    return;
  }
  if (h.kind == Kind::kResponse) {
    auto it = pending_.find(h.request_id);
    if (it == pending_.end()) return;  // late reply to a call that already timed out
    if (it->second.peer != h.sender) {
      Drop(fmt::format("reply to request {} from member {}, sent to {}", h.request_id, h.sender,
                       it->second.peer));
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
  Serve(h, std::move(payload), false);
}

void Messenger::Impl::Serve(const Header& h, Payload payload, bool guest) {
  Handler handler;
  {
    MutexLock lk(&handlers_mu_);
    const auto& handlers = guest ? guest_handlers_ : handlers_;
    auto it = handlers.find(h.op);
    if (it != handlers.end()) handler = it->second;
  }
  if (!handler) {
    Respond(h, Reply{Status::InvalidArgument(
                         guest ? fmt::format("op {} is not open to observers", h.op)
                               : fmt::format("no handler for op {}", h.op)),
                     {}});
    return;
  }
  counters_.requests_served++;
  pool_.Submit([this, h, handler, p = std::move(payload)] {
    Reply r = handler(h.sender, p);
    Post([this, h, r = std::move(r)]() mutable { Respond(h, std::move(r)); });
  });
}

void Messenger::Impl::DeliverFromGuest(const Header& h, Payload payload) {
  if (options_.guest || options_.world_size == 0 || options_.guest_token.empty()) {
    Drop(fmt::format("a message from guest {:#x}: this messenger takes no guests", h.sender));
    return;
  }
  if (h.sender == kGuestHello) {
    if (h.kind != Kind::kRequest || h.op != kGuestHelloOp) {
      Drop(fmt::format("a guest's first message is op {}, not its hello", h.op));
      return;
    }
    return AcceptGuest(h, payload);
  }
  Peer* g = PeerAt(h.sender);
  if (h.kind == Kind::kLeaving) {
    // Its endpoint may have failed first (another connection): then it is gone already.
    if (g != nullptr) g->left = true;
    return;
  }
  if (g == nullptr || !g->up) {
    Drop(fmt::format("guest {:#x} is not connected", h.sender));
    return;
  }
  Serve(h, std::move(payload), true);
}

void Messenger::Impl::AcceptGuest(const Header& h, std::span<const std::byte> payload) {
  Mac mac;
  if (payload.size() <= mac.size() || payload.size() > mac.size() + 64 * 1024) {
    Drop(fmt::format("a guest's hello of {} bytes", payload.size()));
    return;
  }
  std::memcpy(mac.data(), payload.data(), mac.size());
  const std::vector<std::byte> address(payload.begin() + mac.size(), payload.end());
  if (!MacEqual(mac, TokenMac(options_.guest_token, kGuestLabel, {address}))) {
    Drop("a guest's hello without the job token");
    return;
  }
  uint32_t slot = kMaxGuests;
  for (uint32_t i = 0; i < kMaxGuests && slot == kMaxGuests; ++i) {
    if (guests_[i] == nullptr || (!guests_[i]->up && guests_[i]->ep == nullptr)) slot = i;
  }
  if (slot == kMaxGuests) {
    Drop(fmt::format("a guest's hello: {} guests are connected already", kMaxGuests));
    return;
  }
  if (guests_[slot] == nullptr) guests_[slot] = std::make_unique<Peer>();
  Peer& g = *guests_[slot];
  g.impl = this;
  g.index = GuestIndex(slot, guest_generation_[slot]++);
  g.guest = true;
  g.left = false;
  g.as_sender = options_.self;
  g.data_ep = nullptr;
  if (ucs_status_t st = CreateEndpoints(g, address); st != UCS_OK) {
    Drop(UcxStatus(st, "connecting to a guest").message());
    return;
  }
  Log(LogLevel::kInfo, "observer {} connected", slot);
  Header to = h;
  to.sender = g.index;  // the answer goes to the guest's new slot
  Payload index(sizeof g.index);
  std::memcpy(index.data(), &g.index, sizeof g.index);
  Respond(to, Reply{Status::OK(), std::move(index)});
}

void Messenger::Impl::Respond(const Header& req, Reply r) {
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
  if (!body.empty() && !p.empty() && p.size() <= kMaxHeadBytes) {
    // The payload goes as the head in the AM header and the body alone as the data, so the
    // receiver can take it contiguously (into a CallInto's memory) by rendezvous.
    h.head_bytes = static_cast<uint16_t>(p.size());
    h.payload_bytes = static_cast<uint32_t>(body.size());
    Send(req.sender, &h, std::move(p), {}, body, std::move(r.keep));
    return;
  }
  h.payload_bytes = static_cast<uint32_t>(p.size() + body.size());
  Send(req.sender, &h, {}, std::move(p), body, body.empty() ? nullptr : std::move(r.keep));
}

}  // namespace shoal::transport
