// The UCX messenger's caller side: calls in flight with their deadlines, their ends, and
// replies received straight into a CallInto's memory (transport/messenger_impl.h).
#include <fmt/format.h>

#include <cstring>

#include "transport/messenger_impl.h"
#include "transport/ucx_status.h"

namespace shoal::transport {

void Messenger::Impl::CallAsync(uint32_t peer, uint16_t op, Payload payload,
                                std::chrono::milliseconds deadline,
                                std::function<void(Result<Payload>)> done) {
  Pending p;
  p.done = std::move(done);
  Start(peer, op, std::move(payload), deadline, std::move(p));
}

void Messenger::Impl::CallInto(uint32_t peer, uint16_t op, Payload payload, size_t skip,
                               std::span<std::byte> into, std::chrono::milliseconds deadline,
                               Transport::DoneInto done) {
  Pending p;
  p.skip = skip;
  p.into = into;
  p.into_done = std::move(done);
  Start(peer, op, std::move(payload), deadline, std::move(p));
}

void Messenger::Impl::CallGather(uint32_t peer, uint16_t op, Payload head,
                                 std::span<const std::byte> body,
                                 std::chrono::milliseconds deadline,
                                 std::function<void(Result<Payload>)> done,
                                 Transport::Released released) {
  Pending p;
  p.done = std::move(done);
  if (!released) released = [] {};  // Start tells a gathered call by its `released`
  if (head.size() > kMaxHeadBytes || head.empty()) {
    released();
    return Finish(p, Status::InvalidArgument(fmt::format(
                         "request head of {} bytes (1 to {} travel with a body)", head.size(),
                         kMaxHeadBytes)));
  }
  Start(peer, op, std::move(head), deadline, std::move(p), body, std::move(released));
}

void Messenger::Impl::Start(uint32_t peer, uint16_t op, Payload payload,
                            std::chrono::milliseconds deadline, Pending&& proto,
                            std::span<const std::byte> body, Transport::Released released) {
  const bool gather = static_cast<bool>(released);
  auto refuse = [&](Status s) {
    if (gather) released();
    Finish(proto, std::move(s));
  };
  if (peer >= options_.world_size) {
    return refuse(Status::InvalidArgument(
        fmt::format("member {} outside a world of {}", peer, options_.world_size)));
  }
  if ((gather ? body.size() : payload.size()) > kMaxPayloadBytes) {
    return refuse(Status::InvalidArgument(fmt::format(
        "payload of {} bytes above the 1 GiB limit", gather ? body.size() : payload.size())));
  }
  if (deadline.count() <= 0) deadline = options_.default_deadline;
  auto when = Clock::now() + deadline;
  proto.peer = peer;
  proto.deadline = when;
  proto.gathering = gather;
  auto shared = std::make_shared<Pending>(std::move(proto));
  auto rel = std::make_shared<Transport::Released>(std::move(released));
  bool posted = Post([this, peer, op, when, shared, rel, body, p = std::move(payload)]() mutable {
    if (stopping_) {
      if (*rel) (*rel)();
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
    h.sender = peers_[peer].as_sender;
    h.epoch = options_.epoch;
    if (*rel) {  // CallGather: the head in the AM header, the body as the data
      h.head_bytes = static_cast<uint16_t>(p.size());
      h.payload_bytes = static_cast<uint32_t>(body.size());
      Send(peer, &h, std::move(p), {}, body, nullptr, std::move(*rel));
    } else {
      h.payload_bytes = static_cast<uint32_t>(p.size());
      Send(peer, &h, {}, std::move(p));
    }
  });
  if (!posted) {
    if (*rel) (*rel)();
    Finish(*shared, Status::Unavailable("messenger is shut down"));
  }
}

void Messenger::Impl::Complete(uint64_t id, Result<Payload> r) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  if (it->second.receiving) {  // UCX still writes into `into`: end when it is done
    if (!it->second.failed)
      it->second.failed = r.ok() ? Status::Internal("reply twice") : r.status();
    deadlines_.erase({it->second.deadline, id});
    return;
  }
  Pending p = Take(it);
  Finish(p, std::move(r));
}

void Messenger::Impl::Finish(Pending& p, Result<Payload> r) {
  if (!p.into_done) return p.done(std::move(r));
  Transport::EndIntoFromWhole(std::move(r), p.skip, p.into, p.into_done);
}

Messenger::Impl::Pending Messenger::Impl::Take(std::map<uint64_t, Pending>::iterator it) {
  Pending p = std::move(it->second);
  deadlines_.erase({p.deadline, it->first});
  pending_.erase(it);
  return p;
}

bool Messenger::Impl::ReceiveInto(const Header& h, std::span<const std::byte> head, void* data,
                                  size_t length, bool rndv) {
  if (h.kind != Kind::kResponse || h.status != Code::kOk) return false;
  auto it = pending_.find(h.request_id);
  if (it == pending_.end() || !it->second.into_done || it->second.receiving ||
      it->second.peer != h.sender || h.sender >= peers_.size() || peers_[h.sender].ep == nullptr) {
    return false;
  }
  Pending& p = it->second;
  // A head other than the call's (none, from a handler that replied with one payload) is
  // joined with the data and split by Finish.
  if (!head.empty() && head.size() != p.skip) return false;
  const size_t skip = head.empty() ? p.skip : 0;  // of the data, still to be split off
  if (Status fits = Transport::CheckFitsInto(head.size() + length, p.skip, p.into.size());
      !fits.ok()) {
    if (rndv) ucp_am_data_release(worker_.get(), data);
    Complete(h.request_id, std::move(fits));
    return true;
  }
  const size_t body = length - skip;
  if (!rndv) {
    auto* d = static_cast<const std::byte*>(data);
    Payload got = head.empty() ? Payload(d, d + skip) : Payload(head.begin(), head.end());
    if (body != 0) std::memcpy(p.into.data(), d + skip, body);
    Take(it).into_done(std::move(got), body);
    return true;
  }
  auto* r = new IntoRecv{this, h.request_id, Payload(head.begin(), head.end()), {}, body, length};
  if (head.empty()) r->head.resize(skip);
  ucp_request_param_t rp{};
  rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  rp.cb.recv_am = &Impl::OnIntoDone;
  rp.user_data = r;
  void* buffer = p.into.data();
  size_t count = body;
  if (skip != 0) {  // the head is the data's start: an iov (UCX takes it in fragments)
    size_t n = 0;
    r->iov[n++] = {r->head.data(), skip};
    if (body != 0) r->iov[n++] = {p.into.data(), body};
    rp.op_attr_mask |= UCP_OP_ATTR_FIELD_DATATYPE;
    rp.datatype = ucp_dt_make_iov();
    buffer = r->iov;
    count = n;
  }
  p.receiving = true;
  void* req = ucp_am_recv_data_nbx(worker_.get(), data, buffer, count, &rp);
  if (req == nullptr) {
    EndInto(r, Status::OK());
  } else if (UCS_PTR_IS_ERR(req)) {
    EndInto(r, UcxStatus(UCS_PTR_STATUS(req), "rendezvous receive"));
  }
  return true;
}

void Messenger::Impl::OnIntoDone(void* request, ucs_status_t status, size_t length,
                                 void* user_data) {
  auto* r = static_cast<IntoRecv*>(user_data);
  Status s = UcxStatus(status, "rendezvous receive");
  if (s.ok() && length != r->data) {
    s = Status::Corruption("rendezvous receive: length differs from the announced one");
  }
  r->impl->EndInto(r, std::move(s));
  ucp_request_free(request);
}

void Messenger::Impl::EndInto(IntoRecv* r, Status s) {
  auto it = pending_.find(r->id);
  if (it != pending_.end()) {
    Pending p = Take(it);
    if (p.failed) s = *p.failed;
    if (s.ok())
      p.into_done(std::move(r->head), r->body);
    else
      p.into_done(std::move(s), 0);
  }
  delete r;
}

void Messenger::Impl::FailAll(const Status& s) {
  std::vector<uint64_t> ids;
  for (auto& [id, p] : pending_) ids.push_back(id);
  for (uint64_t id : ids) Complete(id, s);
}

void Messenger::Impl::Expire() {
  auto now = Clock::now();
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    uint64_t id = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    auto it = pending_.find(id);
    if (it == pending_.end()) continue;
    counters_.timeouts++;
    const uint32_t peer = it->second.peer;
    const bool receiving = it->second.receiving;
    const bool gathering = it->second.gathering;
    Complete(id, Status::Timeout(fmt::format("request to member {} passed its deadline", peer)));
    if (gathering && peers_[peer].up && peers_[peer].ep != nullptr) {
      // The peer has not taken the request's body past the deadline: taken for failed, which
      // releases the body, rather than holding the caller's memory.
      FailPeer(peers_[peer],
               Status::Unavailable(fmt::format("member {} stalled taking a request's body", peer)),
               "stalled taking a request's body past its deadline");
    }
    if (receiving && peers_[peer].up && peers_[peer].ep != nullptr) {
      // The reply started to arrive into the caller's memory and stalled past the deadline
      // (a peer stopped mid-transfer): the call can end only when the receive does, so the
      // peer is taken for failed, which ends it, rather than leaving the caller waiting.
      FailPeer(peers_[peer],
               Status::Unavailable(fmt::format("member {} stalled in the middle of a reply", peer)),
               "stalled in the middle of a reply past its deadline");
    }
  }
}

}  // namespace shoal::transport
