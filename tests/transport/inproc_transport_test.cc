// The in-process network's own promises (transport/inproc_transport.h): a call times out only
// when a fault lost it, never because its handler was slow; a call to a member that goes away
// ends at once; a kill ends every call of the killed member.
#include "transport/inproc_transport.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "tests/test_util.h"

namespace shoal::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr uint16_t kOp = 7;

// Calls `op` from `from` to `to` and waits for the result; *took is how long it took.
Result<Payload> Call(Transport& from, uint32_t to, std::chrono::milliseconds deadline,
                     Clock::duration* took = nullptr) {
  std::promise<Result<Payload>> got;
  const auto start = Clock::now();
  from.CallAsync(to, kOp, Payload{std::byte{1}}, deadline,
                 [&](Result<Payload> r) { got.set_value(std::move(r)); });
  auto r = got.get_future().get();
  if (took != nullptr) *took = Clock::now() - start;
  return r;
}

struct Pair {
  explicit Pair(std::chrono::milliseconds handler_time = 0ms) : net(2, 5) {
    a = net.Endpoint(0);
    b = net.Endpoint(1);
    for (uint32_t peer = 0; peer < 2; ++peer) {
      EXPECT_OK(a->Connect(peer, (peer == 0 ? a : b)->address()));
      EXPECT_OK(b->Connect(peer, (peer == 0 ? a : b)->address()));
    }
    b->SetHandler(kOp, [handler_time](uint32_t, std::span<const std::byte> p) {
      std::this_thread::sleep_for(handler_time);
      return Reply{Status::OK(), Payload(p.begin(), p.end())};
    });
  }
  InProcNetwork net;
  std::unique_ptr<Transport> a, b;
};

TEST(InProcNetwork, ASlowHandlerIsNotATimeoutOnlyALostMessageIs) {
  Pair p(300ms);  // the handler takes 3x the deadline (a loaded machine's fsync)
  auto r = Call(*p.a, 1, 100ms);
  ASSERT_OK(r);
  EXPECT_EQ(r->size(), 1u);
  // The same call with its request lost times out at its deadline.
  p.net.AddRule({1, kOp, 2, FaultAction::kDropRequest});
  Clock::duration took{};
  EXPECT_CODE(Call(*p.a, 1, 100ms, &took), kTimeout);
  EXPECT_GE(took, 100ms);
  EXPECT_LT(took, 5s);
  // And with its reply lost (the handler runs on; the caller stops waiting at the deadline).
  p.net.AddRule({1, kOp, 3, FaultAction::kDropReply});
  EXPECT_CODE(Call(*p.a, 1, 100ms, &took), kTimeout);
  EXPECT_GE(took, 100ms);
  EXPECT_LT(took, 5s);
}

TEST(InProcNetwork, ACallToAMemberThatClosesEndsAtOnceNotAtItsDeadline) {
  Pair p;
  LinkFaults slow;
  slow.min_delay = 200ms;
  slow.max_delay = 200ms;
  p.net.SetLink(0, 1, slow);
  std::promise<Result<Payload>> got;
  const auto start = Clock::now();
  p.a->CallAsync(1, kOp, Payload{std::byte{1}}, 60000ms,
                 [&](Result<Payload> r) { got.set_value(std::move(r)); });
  std::this_thread::sleep_for(50ms);  // the request is on its way
  p.b.reset();                        // its target closes
  auto r = got.get_future().get();
  EXPECT_CODE(r, kUnavailable);
  EXPECT_LT(Clock::now() - start, 5s);
  // A call after the close is refused at once.
  EXPECT_CODE(Call(*p.a, 1, 60000ms), kUnavailable);
}

TEST(InProcNetwork, AKillEndsTheCallsOfTheKilledMemberBothWays) {
  Pair p(400ms);
  std::promise<Result<Payload>> got;
  p.a->CallAsync(1, kOp, Payload{std::byte{1}}, 60000ms,
                 [&](Result<Payload> r) { got.set_value(std::move(r)); });
  std::this_thread::sleep_for(50ms);  // its handler runs
  const auto start = Clock::now();
  p.net.Kill(1);
  EXPECT_CODE(got.get_future().get(), kUnavailable);
  EXPECT_LT(Clock::now() - start, 300ms) << "ended by the kill, not by the handler's reply";
  EXPECT_FALSE(p.a->peer_up(1));
  EXPECT_CODE(Call(*p.a, 1, 60000ms), kUnavailable);
}

}  // namespace
}  // namespace shoal::transport
