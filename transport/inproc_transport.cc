#include "transport/inproc_transport.h"

#include <fmt/format.h>

#include <cstring>
#include <optional>

#include "base/log.h"
#include "base/task_pool.h"

namespace shoal::transport {

using Clock = std::chrono::steady_clock;

namespace {

// A delivered request's reply is awaited without a deadline, but every kWatch the network
// logs a call still waiting (what it waits for), and after kWatches of them it ends the call
// Timeout: a hang becomes a warning naming it, then an error.
constexpr Clock::duration kWatch = std::chrono::seconds(60);
constexpr uint32_t kWatches = 10;

// SplitMix64: the fault decisions' random numbers, from (seed, link, message number).
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

struct InProcNetwork::Call {
  uint32_t from = 0;
  uint32_t to = 0;
  uint16_t op = 0;
  Done done;
  Timers::iterator deadline;  // in timers_ while the call is pending
  enum class Stage : uint8_t { kSent, kQueued, kHandling } stage = Stage::kSent;
  uint32_t watches = 0;       // kWatch periods it has waited (delivered calls)
};

std::shared_ptr<InProcNetwork::Call> InProcNetwork::Take(uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return nullptr;
  std::shared_ptr<Call> c = std::move(it->second);
  pending_.erase(it);
  timers_.erase(c->deadline);
  return c;
}

class InProcNetwork::Member {
 public:
  Member(uint32_t rank, uint32_t threads, std::chrono::milliseconds deadline, uint32_t size)
      : rank_(rank), deadline_(deadline), connected_(size, false), pool_(threads) {
    connected_[rank] = true;
  }
  Handler handler(uint16_t op) EXCLUDES(mu_) {
    MutexLock lk(&mu_);
    auto it = handlers_.find(op);
    return it == handlers_.end() ? Handler() : it->second;
  }
  void SetHandler(uint16_t op, Handler h) EXCLUDES(mu_) {
    MutexLock lk(&mu_);
    handlers_[op] = std::move(h);
  }
  void SetConnected(uint32_t peer) EXCLUDES(mu_) {
    MutexLock lk(&mu_);
    connected_[peer] = true;
  }
  bool connected(uint32_t peer) EXCLUDES(mu_) {
    MutexLock lk(&mu_);
    return connected_[peer];
  }
  TaskPool& pool() { return pool_; }
  uint32_t rank() const { return rank_; }
  std::chrono::milliseconds deadline() const { return deadline_; }

 private:
  const uint32_t rank_;
  const std::chrono::milliseconds deadline_;
  Mutex mu_;
  std::map<uint16_t, Handler> handlers_ GUARDED_BY(mu_);
  std::vector<bool> connected_ GUARDED_BY(mu_);
  TaskPool pool_;
};

// One member's Transport over the network.
class InProcEndpoint final : public Transport {
 public:
  InProcEndpoint(InProcNetwork* net, std::unique_ptr<InProcNetwork::Member> m)
      : net_(net), m_(std::move(m)) {
    uint32_t r = m_->rank();
    address_.resize(4);
    std::memcpy(address_.data(), &r, 4);
  }
  ~InProcEndpoint() override {
    {
      MutexLock lk(&net_->mu_);
      net_->members_[m_->rank()] = nullptr;
    }
    m_->pool().Stop();  // handlers already queued run; none is added after this
    net_->Closed(m_->rank());
  }
  uint32_t self() const override { return m_->rank(); }
  uint32_t world_size() const override { return net_->size(); }
  const std::vector<std::byte>& address() const override { return address_; }
  Status Connect(uint32_t peer, std::span<const std::byte> address) override {
    uint32_t r = 0;
    if (peer >= net_->size() || address.size() != 4) {
      return Status::InvalidArgument(fmt::format("in-process member {}: bad address", peer));
    }
    std::memcpy(&r, address.data(), 4);
    if (r != peer) {
      return Status::InvalidArgument(fmt::format("address of member {} names member {}", peer, r));
    }
    m_->SetConnected(peer);
    return Status::OK();
  }
  void SetHandler(uint16_t op, Handler handler) override {
    m_->SetHandler(op, std::move(handler));
  }
  void CallAsync(uint32_t peer, uint16_t op, Payload payload, std::chrono::milliseconds deadline,
                 Done done) override {
    if (peer >= net_->size() || !m_->connected(peer)) {
      return done(Status::Unavailable(fmt::format("member {} is not reachable", peer)));
    }
    net_->Send(m_->rank(), peer, op, std::move(payload),
               deadline.count() == 0 ? m_->deadline() : deadline, std::move(done));
  }
  bool peer_up(uint32_t peer) const override {
    if (peer >= net_->size() || !m_->connected(peer)) return false;
    MutexLock lk(&net_->mu_);
    return !net_->dead_[peer] && !net_->dead_[m_->rank()] && net_->members_[peer] != nullptr;
  }

 private:
  InProcNetwork* const net_;
  std::unique_ptr<InProcNetwork::Member> m_;
  std::vector<std::byte> address_;
};

InProcNetwork::InProcNetwork(uint32_t world_size, uint64_t seed)
    : size_(world_size), seed_(seed) {
  MutexLock lk(&mu_);
  members_.assign(world_size, nullptr);
  dead_.assign(world_size, false);
  timer_thread_ = std::thread([this] { TimerLoop(); });
}

InProcNetwork::~InProcNetwork() {
  std::map<uint64_t, std::shared_ptr<Call>> left;
  {
    MutexLock lk(&mu_);
    stop_ = true;
    left.swap(pending_);
  }
  timer_cv_.notify_all();
  timer_thread_.join();
  for (auto& [id, c] : left) c->done(Status::Unavailable("in-process network shut down"));
}

std::unique_ptr<Transport> InProcNetwork::Endpoint(uint32_t rank, uint32_t handler_threads,
                                                   std::chrono::milliseconds default_deadline) {
  auto m = std::make_unique<Member>(rank, handler_threads, default_deadline, size_);
  Member* raw = m.get();
  auto ep = std::make_unique<InProcEndpoint>(this, std::move(m));
  MutexLock lk(&mu_);
  members_.at(rank) = raw;
  return ep;
}

void InProcNetwork::Note(std::string what) { trace_.push_back(std::move(what)); }

std::vector<std::string> InProcNetwork::trace() const {
  MutexLock lk(&mu_);
  return trace_;
}

std::map<uint16_t, uint64_t> InProcNetwork::delivered() const {
  MutexLock lk(&mu_);
  return delivered_;
}

uint64_t InProcNetwork::delivered_to(uint32_t rank, uint16_t op) const {
  MutexLock lk(&mu_);
  auto it = delivered_to_.find({rank, op});
  return it == delivered_to_.end() ? 0 : it->second;
}

uint64_t InProcNetwork::handled_by(uint32_t rank, uint16_t op) const {
  MutexLock lk(&mu_);
  auto it = handled_by_.find({rank, op});
  return it == handled_by_.end() ? 0 : it->second;
}

bool InProcNetwork::WaitHandled(uint32_t rank, uint16_t op, uint64_t count,
                                std::chrono::milliseconds timeout) {
  MutexLock lk(&mu_);
  return AwaitFor(held_cv_, &mu_, timeout, [&]() NO_THREAD_SAFETY_ANALYSIS {
    auto it = handled_by_.find({rank, op});
    return it != handled_by_.end() && it->second >= count;
  });
}

bool InProcNetwork::WaitHeld(const FaultRule& rule, std::chrono::milliseconds timeout) {
  const HoldKey key{rule.target, rule.op, rule.nth};
  MutexLock lk(&mu_);
  return AwaitFor(held_cv_, &mu_, timeout,
                  [&]() NO_THREAD_SAFETY_ANALYSIS { return held_.count(key) != 0; });
}

void InProcNetwork::Release(const FaultRule& rule) {
  const HoldKey key{rule.target, rule.op, rule.nth};
  std::function<void()> deliver;
  {
    MutexLock lk(&mu_);
    auto it = held_.find(key);
    if (it == held_.end()) {
      released_.insert(key);  // delivered at once when it comes
      return;
    }
    deliver = std::move(it->second);
    held_.erase(it);
    released_.insert(key);  // the hold limit's timer finds it released
    Note(fmt::format("release: op {} #{}", rule.op, rule.nth));
  }
  deliver();
}

uint32_t InProcNetwork::held_target(const FaultRule& rule) const {
  MutexLock lk(&mu_);
  auto it = held_to_.find({rule.target, rule.op, rule.nth});
  return it == held_to_.end() ? kAnyMember : it->second;
}

bool InProcNetwork::killed(uint32_t rank) const {
  MutexLock lk(&mu_);
  return dead_.at(rank);
}

void InProcNetwork::Kill(uint32_t rank) {
  std::vector<std::shared_ptr<Call>> failed;
  {
    MutexLock lk(&mu_);
    if (dead_.at(rank)) return;
    dead_[rank] = true;
    Note(fmt::format("kill {}", rank));
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second->from == rank || it->second->to == rank) {
        timers_.erase(it->second->deadline);
        failed.push_back(it->second);
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& c : failed) {
    c->done(Status::Unavailable(fmt::format("member {} failed", c->to)));
  }
}

void InProcNetwork::Closed(uint32_t rank) {
  // Calls still waiting for a reply from the closed member end now, as a UCX endpoint's error
  // ends them when a process exits, instead of at their deadline.
  std::vector<std::shared_ptr<Call>> failed;
  {
    MutexLock lk(&mu_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second->to == rank) {
        timers_.erase(it->second->deadline);
        failed.push_back(it->second);
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& c : failed) c->done(Status::Unavailable(fmt::format("member {} closed", c->to)));
}

void InProcNetwork::Partition(uint32_t a, uint32_t b, bool cut) {
  MutexLock lk(&mu_);
  cut_[{a, b}] = cut;
  cut_[{b, a}] = cut;
  Note(fmt::format("{} {}-{}", cut ? "partition" : "heal", a, b));
}

void InProcNetwork::SetLink(uint32_t from, uint32_t to, const LinkFaults& faults) {
  MutexLock lk(&mu_);
  links_[{from, to}] = faults;
}

void InProcNetwork::AddRule(const FaultRule& rule) {
  MutexLock lk(&mu_);
  rules_.push_back(rule);
}

void InProcNetwork::After(Clock::duration d, std::function<void()> fn) {
  MutexLock lk(&mu_);
  auto when = Clock::now() + d;
  timers_.emplace(when, Timer{when, timer_seq_++, std::move(fn), 0, false, {}});
  timer_cv_.notify_all();
}

void InProcNetwork::TimerLoop() {
  MutexLock lk(&mu_);
  while (!stop_) {
    if (timers_.empty()) {
      Await(timer_cv_, &mu_, [&]() REQUIRES(mu_) { return stop_ || !timers_.empty(); });
      continue;
    }
    auto first = timers_.begin();
    if (first->first > Clock::now()) {
      std::unique_lock<std::mutex> ul(mu_.native(), std::adopt_lock);
      // A copy: while the lock is released, Take may erase this timer.
      const Clock::time_point until = first->first;
      timer_cv_.wait_until(ul, until);
      ul.release();
      continue;
    }
    Timer t = std::move(first->second);
    timers_.erase(first);
    // A call's deadline ends it under the lock that Take holds: one of them ends each call.
    std::shared_ptr<Call> expired;
    if (t.call != 0) {
      if (auto it = pending_.find(t.call); it != pending_.end()) {
        Call& c = *it->second;
        if (t.watch && ++c.watches < kWatches) {
          Log(LogLevel::kWarn, "in-process network: op {} from member {} to member {}: no "
              "reply after {} s ({})", c.op, c.from, c.to,
              std::chrono::duration_cast<std::chrono::seconds>(kWatch).count() * c.watches,
              c.stage == Call::Stage::kSent     ? "not delivered yet"
              : c.stage == Call::Stage::kQueued ? "queued for a handler thread"
                                                : "its handler is running");
          const auto when = Clock::now() + kWatch;
          t.when = when;
          c.deadline = timers_.emplace(when, std::move(t));
          continue;
        }
        expired = std::move(it->second);
        pending_.erase(it);
      }
    }
    mu_.Unlock();
    if (t.call == 0) t.fn();
    else if (expired != nullptr) expired->done(t.why());
    mu_.Lock();
  }
}

void InProcNetwork::Send(uint32_t from, uint32_t to, uint16_t op, Payload payload,
                         std::chrono::milliseconds deadline, Done done) {
  auto call = std::make_shared<Call>();
  call->from = from;
  call->to = to;
  call->op = op;
  call->done = std::move(done);
  uint64_t id = 0;
  std::optional<FaultAction> action;
  std::optional<HoldKey> hold;
  Clock::duration delay{0};
  // One lock from the check to the registration: a member closing in between would find no
  // call to end (Closed), and the call would wait for its deadline instead.
  mu_.Lock();
  if (stop_ || dead_[from] || dead_[to] || members_[to] == nullptr) {
    Status refused = Status::Unavailable(dead_[from] ? fmt::format("member {} is down", from)
                                                     : fmt::format("member {} is not reachable", to));
    mu_.Unlock();
    return call->done(refused);
  }
  bool lost = false;
  {
    id = next_call_++;
    pending_[id] = call;
    const uint64_t seq = link_seq_[{from, to}]++;
    const uint32_t nth = ++op_count_[{to, op}];
    const uint32_t nth_any = ++op_count_any_[op];
    for (const FaultRule& r : rules_) {
      if (r.op != op) continue;
      if ((r.target == to && r.nth == nth) || (r.target == kAnyMember && r.nth == nth_any)) {
        action = r.action;
        if (r.action == FaultAction::kHold) hold = HoldKey{r.target, op, r.nth};
      }
    }
    uint64_t rnd = Mix(seed_ ^ Mix((uint64_t{from} << 32 | to) ^ Mix(seq)));
    if (auto c = cut_.find({from, to}); c != cut_.end() && c->second) {
      Note(fmt::format("partitioned: op {} {}->{} #{}", op, from, to, seq));
      lost = true;
    } else if (auto l = links_.find({from, to}); l != links_.end()) {
      const LinkFaults& f = l->second;
      double u = static_cast<double>(rnd >> 11) / static_cast<double>(1ull << 53);
      if (u < f.drop) {
        Note(fmt::format("drop: op {} {}->{} #{}", op, from, to, seq));
        lost = true;
      } else if (f.max_delay > f.min_delay || f.min_delay.count() > 0) {
        auto span = static_cast<uint64_t>((f.max_delay - f.min_delay).count()) + 1;
        delay = f.min_delay + std::chrono::microseconds(Mix(rnd) % span);
      }
    }
    if (action == FaultAction::kDropRequest) {
      Note(fmt::format("rule drop request: op {} to {} #{}", op, to, nth));
      lost = true;
    }
    // Only a lost message (or one whose injected delay passes the deadline) times out at the
    // deadline; a handler's own time is not counted (see the header), so a loaded machine never
    // turns a slow fsync into a Timeout. The others are watched (kWatch).
    const bool times_out = lost || action == FaultAction::kDropReply || delay >= deadline;
    auto when = Clock::now() + (times_out ? Clock::duration(deadline) : kWatch);
    call->deadline = timers_.emplace(
        when, Timer{when, timer_seq_++, {}, id, !times_out, [op, to, times_out] {
                      return Status::Timeout(fmt::format(
                          "request op {} to member {}: {}", op, to,
                          times_out ? "no reply before the deadline"
                                    : "no reply in 10 minutes"));
                    }});
    timer_cv_.notify_all();
  }
  mu_.Unlock();
  if (lost) return;

  auto deliver = [this, id, from, to, op, action, payload = std::move(payload)]() mutable {
    if (action == FaultAction::kKillBefore) {
      {
        MutexLock lk(&mu_);
        Note(fmt::format("rule kill {} on receipt of op {}", to, op));
      }
      Kill(to);
      return;
    }
    mu_.Lock();
    Member* m = dead_[to] ? nullptr : members_[to];
    if (m == nullptr) {  // closed or killed while the request was on its way
      std::shared_ptr<Call> c = Take(id);
      mu_.Unlock();
      if (c != nullptr) c->done(Status::Unavailable(fmt::format("member {} is not reachable", to)));
      return;
    }
    if (pending_.count(id) == 0) {
      mu_.Unlock();
      return;
    }
    delivered_[op]++;
    delivered_to_[{to, op}]++;
    pending_[id]->stage = Call::Stage::kQueued;
    m->pool().Submit([this, m, id, from, to, op, action, p = std::move(payload)] {
      {
        MutexLock lk2(&mu_);
        if (auto it = pending_.find(id); it != pending_.end()) it->second->stage = Call::Stage::kHandling;
      }
      Handler h = m->handler(op);
      Reply reply = h ? h(from, p)
                      : Reply{Status::InvalidArgument(fmt::format("no handler for op {}", op)), {}};
      {
        MutexLock lk2(&mu_);
        handled_by_[{to, op}]++;
        held_cv_.notify_all();
      }
      if (action == FaultAction::kKillAfter) {
        {
          MutexLock lk2(&mu_);
          Note(fmt::format("rule kill {} after handling op {}", to, op));
        }
        Kill(to);
        return;
      }
      std::shared_ptr<Call> c;
      {
        MutexLock lk2(&mu_);
        if (action == FaultAction::kDropReply) {
          Note(fmt::format("rule drop reply: op {} from {}", op, to));
          return;
        }
        if (dead_[to]) return;
        c = Take(id);
        if (c == nullptr) return;
      }
      if (reply.status.ok()) {
        if (!reply.body.empty()) {  // one copy, as a process boundary would take
          reply.payload.insert(reply.payload.end(), reply.body.begin(), reply.body.end());
          reply.keep.reset();
        }
        c->done(std::move(reply.payload));
      } else {
        c->done(reply.status);
      }
    });
    mu_.Unlock();
  };
  if (hold) {
    bool held = false;
    {
      MutexLock lk(&mu_);
      held_to_[*hold] = to;
      if (released_.count(*hold) == 0) {
        Note(fmt::format("hold: op {} {}->{}", op, from, to));
        held_[*hold] = std::move(deliver);
        held = true;
        held_cv_.notify_all();
      }
    }
    if (!held) return deliver();  // released before it came
    const HoldKey key = *hold;
    After(kHoldLimit, [this, key] {
      std::function<void()> late;
      {
        MutexLock lk(&mu_);
        auto it = held_.find(key);
        if (it == held_.end()) return;
        late = std::move(it->second);
        held_.erase(it);
        Note(fmt::format("hold limit: op {} #{} delivered unreleased", std::get<1>(key),
                         std::get<2>(key)));
      }
      late();
    });
    return;
  }
  if (delay.count() > 0) After(delay, std::move(deliver));
  else deliver();
}

namespace {

// Owns the network of one and its endpoint (destroyed first).
class SoloTransport final : public Transport {
 public:
  SoloTransport() : net_(1), ep_(net_.Endpoint(0, 1)) {}
  uint32_t self() const override { return 0; }
  uint32_t world_size() const override { return 1; }
  const std::vector<std::byte>& address() const override { return ep_->address(); }
  Status Connect(uint32_t peer, std::span<const std::byte> address) override {
    return ep_->Connect(peer, address);
  }
  void SetHandler(uint16_t op, Handler handler) override { ep_->SetHandler(op, std::move(handler)); }
  void CallAsync(uint32_t peer, uint16_t op, Payload payload, std::chrono::milliseconds deadline,
                 Done done) override {
    ep_->CallAsync(peer, op, std::move(payload), deadline, std::move(done));
  }
  bool peer_up(uint32_t peer) const override { return ep_->peer_up(peer); }

 private:
  InProcNetwork net_;
  std::unique_ptr<Transport> ep_;
};

}  // namespace

std::unique_ptr<Transport> NewSoloTransport() { return std::make_unique<SoloTransport>(); }

}  // namespace shoal::transport
