// InProcNetwork: the members of a world inside one process, for tests of distributed logic
// (engine/, lib/) that must try failure orders the real UCX transport cannot reproduce on
// demand. Each member gets an endpoint (a Transport); requests are handed to the target's
// handler threads in memory.
//
// Faults, per link or per member, any time:
//   Kill(r)            r's endpoint fails: its pending calls and calls to it end Unavailable at
//                      once, every member sees peer_up(r) == false (UCX's endpoint error).
//   Partition(a, b)    requests between a and b vanish; their callers time out.
//   SetLink(a, b, f)   drop probability, delay range (reorder = random delay) of requests a->b.
//   AddRule(rule)      the n-th request of an op to a member (or to any member): drop the
//                      request, drop the reply, kill the target before it handles it, kill it
//                      after handling (a peer dying in the middle of its reply: the work is
//                      done, no reply arrives), or hold it until the test releases it (an
//                      order of events made exact: WaitHeld, Release).
// Deadlines count the network's time only: a call times out at its deadline when a fault lost
// its request or reply, or its injected delay reaches the deadline — never because its handler
// was slow (a loaded machine's fsync), so whether a call times out depends on the faults alone.
// A call delivered but unanswered is logged as a warning every minute, naming its op, members
// and stage (not delivered, queued, handler running), and ends Timeout after 10 minutes: a
// hang in a test is named in its log, never silent.
// Fault decisions are a pure function of (seed, link, message number on that link), so a test
// that sends the same messages on each link gets the same faults whatever the thread timing; a
// failing seed replays. trace() lists every fault applied, for the failure message.
//
// Thread-safety: all methods are thread-safe. The network must outlive its endpoints.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "base/thread_annotations.h"
#include "transport/transport.h"

namespace shoal::transport {

struct LinkFaults {
  double drop = 0;                          // probability a request is lost (caller times out)
  std::chrono::microseconds min_delay{0};   // each request waits a uniform delay in
  std::chrono::microseconds max_delay{0};   // [min, max] before delivery: reorders them
};

enum class FaultAction : uint8_t {
  kDropRequest,  // never delivered: the caller times out
  kDropReply,    // handled, the reply is lost: the caller times out
  kKillBefore,   // the target dies on receipt (not handled)
  kKillAfter,    // the target handles it, then dies before replying
  kHold,         // delivered once Release(rule) is called (or after kHoldLimit: a test that
                 // forgets to release ends instead of hanging)
};

// FaultRule::target matching a request to any member (nth counts them over all members).
inline constexpr uint32_t kAnyMember = 0xffffffffu;
// How long a held request waits for its Release before it is delivered anyway.
inline constexpr std::chrono::seconds kHoldLimit{20};

struct FaultRule {
  uint32_t target = 0;
  uint16_t op = 0;
  uint32_t nth = 1;  // 1-based count of requests with `op` to `target` (kAnyMember: to anyone)
  FaultAction action = FaultAction::kDropRequest;
};

class InProcNetwork {
 public:
  explicit InProcNetwork(uint32_t world_size, uint64_t seed = 1);
  ~InProcNetwork();
  InProcNetwork(const InProcNetwork&) = delete;
  InProcNetwork& operator=(const InProcNetwork&) = delete;

  // The endpoint of member `rank` (at most one live endpoint per rank).
  std::unique_ptr<Transport> Endpoint(
      uint32_t rank, uint32_t handler_threads = 4,
      std::chrono::milliseconds default_deadline = std::chrono::milliseconds(30000));

  void Kill(uint32_t rank);
  bool killed(uint32_t rank) const;
  void Partition(uint32_t a, uint32_t b, bool cut = true);
  void SetLink(uint32_t from, uint32_t to, const LinkFaults& faults);
  void AddRule(const FaultRule& rule);

  uint64_t seed() const { return seed_; }
  uint32_t size() const { return size_; }
  std::vector<std::string> trace() const;
  // Requests delivered to handlers so far (all members), by op.
  std::map<uint16_t, uint64_t> delivered() const;
  // Requests with `op` delivered to member `rank`.
  uint64_t delivered_to(uint32_t rank, uint16_t op) const;
  // Requests with `op` whose handler on member `rank` returned (replied or not).
  uint64_t handled_by(uint32_t rank, uint16_t op) const;
  // Waits until handled_by(rank, op) >= count; false at the timeout.
  bool WaitHandled(uint32_t rank, uint16_t op, uint64_t count, std::chrono::milliseconds timeout);
  // kHold rules: waits until the request `rule` names is held (false at the timeout); delivers
  // it (once held, or at once when it comes later). The member a kAnyMember request went to:
  // held_target.
  bool WaitHeld(const FaultRule& rule, std::chrono::milliseconds timeout);
  void Release(const FaultRule& rule);
  uint32_t held_target(const FaultRule& rule) const;

  class Member;  // one endpoint's state (inproc_transport.cc)

 private:
  friend class InProcEndpoint;
  struct Call;
  // A delayed delivery (fn), or the deadline of pending call `call` (why: its Timeout; watch:
  // a delivered call's periodic check, .cc).
  struct Timer {
    std::chrono::steady_clock::time_point when;
    uint64_t seq;
    std::function<void()> fn;
    uint64_t call = 0;
    bool watch = false;
    std::function<Status()> why;
  };
  using Timers = std::multimap<std::chrono::steady_clock::time_point, Timer>;
  // Routes one request from `from` (see the .cc for the order of checks).
  void Send(uint32_t from, uint32_t to, uint16_t op, Payload payload,
            std::chrono::milliseconds deadline, Done done);
  void After(std::chrono::steady_clock::duration d, std::function<void()> fn) EXCLUDES(mu_);
  void TimerLoop();
  void Note(std::string what) REQUIRES(mu_);
  // Removes call `id` from pending_ and cancels its deadline; null when it already ended.
  std::shared_ptr<Call> Take(uint64_t id) REQUIRES(mu_);
  // An endpoint closed: calls waiting for its reply end Unavailable at once.
  void Closed(uint32_t rank) EXCLUDES(mu_);

  const uint32_t size_;
  const uint64_t seed_;

  mutable Mutex mu_;
  std::condition_variable timer_cv_;
  std::vector<Member*> members_ GUARDED_BY(mu_);
  std::vector<bool> dead_ GUARDED_BY(mu_);
  std::map<std::pair<uint32_t, uint32_t>, bool> cut_ GUARDED_BY(mu_);
  std::map<std::pair<uint32_t, uint32_t>, LinkFaults> links_ GUARDED_BY(mu_);
  std::map<std::pair<uint32_t, uint32_t>, uint64_t> link_seq_ GUARDED_BY(mu_);
  std::vector<FaultRule> rules_ GUARDED_BY(mu_);
  std::map<std::pair<uint32_t, uint16_t>, uint32_t> op_count_ GUARDED_BY(mu_);
  std::map<uint16_t, uint64_t> delivered_ GUARDED_BY(mu_);
  std::map<std::pair<uint32_t, uint16_t>, uint64_t> delivered_to_ GUARDED_BY(mu_);
  std::map<std::pair<uint32_t, uint16_t>, uint64_t> handled_by_ GUARDED_BY(mu_);
  std::map<uint16_t, uint32_t> op_count_any_ GUARDED_BY(mu_);
  // kHold: the deliveries waiting for their Release, by (rule target, op, nth); released_
  // holds rules released before their request came; held_to_ the member each one went to.
  using HoldKey = std::tuple<uint32_t, uint16_t, uint32_t>;
  std::map<HoldKey, std::function<void()>> held_ GUARDED_BY(mu_);
  std::set<HoldKey> released_ GUARDED_BY(mu_);
  std::map<HoldKey, uint32_t> held_to_ GUARDED_BY(mu_);
  std::condition_variable held_cv_;  // held_, released_ or handled_by_ changed
  std::vector<std::string> trace_ GUARDED_BY(mu_);
  // Calls not finished yet, by id: finished by the reply, the deadline or a kill.
  std::map<uint64_t, std::shared_ptr<Call>> pending_ GUARDED_BY(mu_);
  uint64_t next_call_ GUARDED_BY(mu_) = 1;
  Timers timers_ GUARDED_BY(mu_);
  uint64_t timer_seq_ GUARDED_BY(mu_) = 0;
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread timer_thread_;
};

// The transport of a world of one (a one-rank job): an in-process network of one member, so
// the same Cluster code serves every job size with no UCX context at all.
std::unique_ptr<Transport> NewSoloTransport();

}  // namespace shoal::transport
