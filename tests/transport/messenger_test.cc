// Messenger between two real processes over UCX (TCP / shared memory on this machine).
#include "transport/messenger.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <mutex>
#include <thread>

#include "base/crc32c.h"
#include "transport/message.h"
#include "tests/test_util.h"

namespace shoal::transport {
namespace {

using namespace std::chrono_literals;
using shoal::testing::Pattern;
using shoal::testing::TempDir;

std::vector<std::byte> WaitFile(const std::string& path, std::chrono::seconds limit = 30s) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!std::filesystem::exists(path)) {
    if (std::chrono::steady_clock::now() > until) return {};
    std::this_thread::sleep_for(5ms);
  }
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

class MessengerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      ::execl(SHOAL_TRANSPORT_PEER, SHOAL_TRANSPORT_PEER, dir_.path().c_str(), "1", "2", nullptr);
      _exit(127);
    }
    auto m = Messenger::Create({.self = 0, .world_size = 2, .handler_threads = 2,
                                .default_deadline = 20000ms});
    ASSERT_OK(m);
    msg_ = std::move(m).value();
    msg_->SetHandler(1, [](uint32_t, std::span<const std::byte> p) {
      return Reply{Status::OK(), Payload(p.begin(), p.end())};
    });
    // A reply whose body is lent: the request's first byte says how much of it is payload
    // (0: all body), the rest how long the body is; `keep` counts its releases.
    msg_->SetHandler(6, [this](uint32_t, std::span<const std::byte> p) {
      uint8_t head = 0;
      uint32_t len = 0;
      std::memcpy(&head, p.data(), 1);
      std::memcpy(&len, p.data() + 1, 4);
      Payload payload(lent_.begin(), lent_.begin() + head);
      served_++;
      std::shared_ptr<const void> keep(lent_.data(), [this](const void*) { released_++; });
      return Reply{Status::OK(), std::move(payload),
                   std::span<const std::byte>(lent_.data() + head, len), std::move(keep)};
    });
    {
      std::ofstream out(dir_.Sub("addr-0.tmp"), std::ios::binary);
      out.write(reinterpret_cast<const char*>(msg_->address().data()),
                static_cast<std::streamsize>(msg_->address().size()));
    }
    std::filesystem::rename(dir_.Sub("addr-0.tmp"), dir_.Sub("addr-0"));
    auto peer_addr = WaitFile(dir_.Sub("addr-1"));
    ASSERT_FALSE(peer_addr.empty()) << "peer never published its address";
    ASSERT_OK(msg_->Connect(0, msg_->address()));
    ASSERT_OK(msg_->Connect(1, peer_addr));
    WaitFile(dir_.Sub("ready-1"));
    ASSERT_TRUE(std::filesystem::exists(dir_.Sub("ready-1")));
  }

  void TearDown() override {
    std::ofstream(dir_.Sub("stop")).put('x');
    msg_.reset();
    if (pid_ > 0) {
      for (int i = 0; i < 500; ++i) {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
        std::this_thread::sleep_for(10ms);
      }
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  TempDir dir_;
  pid_t pid_ = -1;
  const std::vector<std::byte> lent_ = Pattern((size_t{16} << 20) + 256, 77);
  std::atomic<int> served_{0};
  std::atomic<int> released_{0};
  std::unique_ptr<Messenger> msg_;
};

TEST_F(MessengerTest, EchoesPayloadsOfEverySize) {
  for (size_t size : {size_t{0}, size_t{1}, size_t{1000}, size_t{64} << 10, size_t{1} << 20,
                      size_t{8} << 20, size_t{64} << 20}) {
    auto data = Pattern(size, size);
    auto r = msg_->Call(1, 1, data);
    ASSERT_OK(r) << size;
    EXPECT_EQ(*r, data) << size;
  }
  auto self = msg_->Call(0, 1, Pattern(100, 1));  // a member may call itself
  ASSERT_OK(self);
  EXPECT_EQ(*self, Pattern(100, 1));
}

// CallInto waits for its end (done runs on the progress thread).
struct IntoResult {
  Status status;
  Payload head;
  size_t body = 0;
};
IntoResult CallIntoAndWait(Messenger& m, uint32_t peer, uint16_t op, Payload payload, size_t skip,
                           std::span<std::byte> into,
                           std::chrono::milliseconds deadline = 0ms) {
  std::promise<IntoResult> p;
  auto f = p.get_future();
  m.CallInto(peer, op, std::move(payload), skip, into, deadline,
             [&p](Result<Payload> head, size_t n) {
               IntoResult r;
               r.status = head.status();
               if (head.ok()) r.head = std::move(head).value();
               r.body = n;
               p.set_value(std::move(r));
             });
  return f.get();
}

TEST_F(MessengerTest, CallIntoLandsRepliesOfEverySizeInTheCallersMemory) {
  // Eager replies (small) and rendezvous ones (large, received straight into the memory): the
  // head comes back as the payload, the rest in `into`, nothing written past it.
  const size_t kGuard = 4096;
  for (size_t size : {size_t{12}, size_t{13}, size_t{1000}, size_t{64} << 10, size_t{1} << 20,
                      (size_t{4} << 20) + 12, size_t{64} << 20}) {
    const auto data = Pattern(size, size + 3);
    std::vector<std::byte> into(size - 12 + kGuard, std::byte{0x5a});
    IntoResult r = CallIntoAndWait(*msg_, 1, 1, data, 12, into);
    ASSERT_OK(r.status) << size;
    ASSERT_EQ(r.body, size - 12) << size;
    EXPECT_EQ(r.head, Payload(data.begin(), data.begin() + 12)) << size;
    EXPECT_EQ(0, std::memcmp(into.data(), data.data() + 12, size - 12)) << size;
    for (size_t i = size - 12; i < into.size(); ++i) {
      ASSERT_EQ(into[i], std::byte{0x5a}) << size << " written past the reply at " << i;
    }
  }
  // A member calling itself, and a reply that is all head.
  std::vector<std::byte> into(100, std::byte{0x5a});
  IntoResult self = CallIntoAndWait(*msg_, 0, 1, Pattern(60, 1), 10, into);
  ASSERT_OK(self.status);
  EXPECT_EQ(self.body, 50u);
  EXPECT_EQ(0, std::memcmp(into.data(), Pattern(60, 1).data() + 10, 50));
  IntoResult head_only = CallIntoAndWait(*msg_, 1, 1, Pattern(7, 2), 7, into);
  ASSERT_OK(head_only.status);
  EXPECT_EQ(head_only.body, 0u);
  EXPECT_EQ(head_only.head, Pattern(7, 2));
}

TEST_F(MessengerTest, CallIntoRefusesARepliesItsMemoryCannotHoldAndWritesNothing) {
  for (size_t size : {size_t{2000}, size_t{8} << 20}) {  // eager, then rendezvous
    std::vector<std::byte> into(size / 2, std::byte{0x5a});
    IntoResult r = CallIntoAndWait(*msg_, 1, 1, Pattern(size, 9), 12, into);
    EXPECT_EQ(r.status.code(), Code::kCorruption) << size << " " << r.status.ToString();
    for (std::byte b : into) ASSERT_EQ(b, std::byte{0x5a}) << size;
    // Shorter than the head.
    r = CallIntoAndWait(*msg_, 1, 1, Pattern(5, 9), 12, into);
    EXPECT_EQ(r.status.code(), Code::kCorruption);
  }
  // An error reply is the call's status; the memory is not touched.
  std::vector<std::byte> into(64, std::byte{0x5a});
  IntoResult err = CallIntoAndWait(*msg_, 1, 3, {}, 12, into);
  EXPECT_EQ(err.status.code(), Code::kNotFound);
  for (std::byte b : into) ASSERT_EQ(b, std::byte{0x5a});
  // The link keeps working.
  EXPECT_OK(msg_->Call(1, 1, Pattern(10, 1)));
}

TEST_F(MessengerTest, CallIntoPastItsDeadlineEndsWithTimeoutAndTheLateReplyWritesNothing) {
  uint32_t ms = 1200;
  Payload req = Pattern(size_t{8} << 20, 4);  // echoed after 1.2 s: a rendezvous reply
  std::memcpy(req.data(), &ms, 4);
  std::vector<std::byte> into(size_t{8} << 20, std::byte{0x5a});
  auto start = std::chrono::steady_clock::now();
  IntoResult r = CallIntoAndWait(*msg_, 1, 2, req, 12, into, 200ms);
  EXPECT_EQ(r.status.code(), Code::kTimeout) << r.status.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1000ms);
  std::this_thread::sleep_for(1500ms);  // the reply arrives meanwhile, for a call that ended
  for (std::byte b : into) ASSERT_EQ(b, std::byte{0x5a});
  EXPECT_OK(msg_->Call(1, 1, Pattern(10, 1)));
}

TEST_F(MessengerTest, ARepliesLentBodyArrivesWholeAndIsReleasedOnceSent) {
  // A member calling itself goes through UCX too (its self endpoint): the lent body is sent
  // from the handler's memory, with or without a payload before it, eager and rendezvous.
  int calls = 0;
  for (uint8_t head : {uint8_t{0}, uint8_t{12}}) {
    for (uint32_t len : {uint32_t{100}, uint32_t{64} << 10, uint32_t{8} << 20}) {
      Payload req(5);
      std::memcpy(req.data(), &head, 1);
      std::memcpy(req.data() + 1, &len, 4);
      auto r = msg_->Call(0, 6, req);
      ASSERT_OK(r) << int{head} << " " << len;
      ASSERT_EQ(r->size(), head + size_t{len});
      EXPECT_EQ(0, std::memcmp(r->data(), lent_.data(), r->size())) << int{head} << " " << len;
      calls++;
      std::vector<std::byte> into(len, std::byte{0});
      IntoResult in = CallIntoAndWait(*msg_, 0, 6, req, head, into);
      ASSERT_OK(in.status);
      ASSERT_EQ(in.body, len);
      EXPECT_EQ(0, std::memcmp(into.data(), lent_.data() + head, len));
      calls++;
      // A caller that splits the reply elsewhere than at the handler's payload (which travels
      // in the message header when there is a body) still gets the bytes in order.
      const size_t skip = head / 2;
      std::vector<std::byte> split(head - skip + len, std::byte{0});
      IntoResult other = CallIntoAndWait(*msg_, 0, 6, req, skip, split);
      ASSERT_OK(other.status) << int{head} << " " << len;
      ASSERT_EQ(other.body, split.size());
      EXPECT_EQ(other.head, Payload(lent_.begin(), lent_.begin() + skip));
      EXPECT_EQ(0, std::memcmp(split.data(), lent_.data() + skip, split.size()));
      calls++;
    }
  }
  auto until = std::chrono::steady_clock::now() + 10s;
  while (released_.load() < calls && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(released_.load(), calls) << "every lent body released once, after its send";
}

// A reader killed while it fetches lent bodies (rendezvous transfers out of the lender's
// memory, several in flight): every body lent to it is released once its transfer ends with the
// reader's death, and the lender serves others as before.
TEST_F(MessengerTest, BodiesLentToAReaderThatDiesAreReleased) {
  std::ofstream(dir_.Sub("hammer")).put('x');
  auto until = std::chrono::steady_clock::now() + 20s;
  while (served_.load() < 40 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_GE(served_.load(), 40) << "the reader never fetched";
  const int out_at_kill = served_.load() - released_.load();
  ::kill(pid_, SIGKILL);  // with transfers in flight: 4 readers, 16 MiB each, back to back
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
  const int served = served_.load();
  const auto killed = std::chrono::steady_clock::now();
  until = killed + 30s;
  while (released_.load() < served_.load() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(released_.load(), served_.load())
      << "bodies lent to the dead reader and never released";
  std::printf("%d bodies lent (%d out when killed), %d served after the kill, all released "
              "%lld ms after it\n",
              served, out_at_kill, served_.load() - served,
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - killed)
                                         .count()));
  // The lender still lends to itself.
  Payload req(5, std::byte{0});
  const uint32_t len = 8u << 20;
  std::memcpy(req.data() + 1, &len, 4);
  auto r = msg_->Call(0, 6, req);
  ASSERT_OK(r);
  EXPECT_EQ(0, std::memcmp(r->data(), lent_.data(), len));
}

// CallGather waits for both its ends: `done` and `released` (either order, each once).
struct GatherResult {
  Status status;
  Payload reply;
  int released = 0;
};
GatherResult GatherAndWait(Messenger& m, uint32_t peer, Payload head,
                           std::span<const std::byte> body,
                           std::chrono::milliseconds deadline = 0ms) {
  struct Ends {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    GatherResult r;
  };
  auto ends = std::make_shared<Ends>();
  m.CallGather(
      peer, 7, std::move(head), body, deadline,
      [ends](Result<Payload> r) {
        std::lock_guard lk(ends->mu);
        ends->r.status = r.status();
        if (r.ok()) ends->r.reply = std::move(r).value();
        ends->done = true;
        ends->cv.notify_all();
      },
      [ends] {
        std::lock_guard lk(ends->mu);
        ends->r.released++;
        ends->cv.notify_all();
      });
  std::unique_lock lk(ends->mu);
  ends->cv.wait_for(lk, 60s, [&] { return ends->done && ends->r.released > 0; });
  lk.unlock();
  std::this_thread::sleep_for(5ms);  // a second release would come now
  lk.lock();
  return ends->r;
}

struct BodyAnswer {
  uint64_t tag = 0;
  uint8_t in_sink = 0;
  uint32_t crc = 0;
  uint64_t length = 0;
};
BodyAnswer ParseBodyAnswer(const Payload& p) {
  BodyAnswer a;
  EXPECT_EQ(p.size(), 21u);
  if (p.size() != 21) return a;
  std::memcpy(&a.tag, p.data(), 8);
  std::memcpy(&a.in_sink, p.data() + 8, 1);
  std::memcpy(&a.crc, p.data() + 9, 4);
  std::memcpy(&a.length, p.data() + 13, 8);
  return a;
}

Payload Tag(uint64_t tag) {
  Payload p(8);
  std::memcpy(p.data(), &tag, 8);
  return p;
}

TEST_F(MessengerTest, GatheredBodiesLandInTheServersMemoryAndAreReleasedOnce) {
  // Eager bodies are copied into the sink's memory from UCX's buffer; rendezvous ones are
  // received there; above the sink's 32 MiB the messenger allocates them itself.
  for (size_t size : {size_t{0}, size_t{1}, size_t{1000}, size_t{64} << 10, size_t{1} << 20,
                      size_t{8} << 20, size_t{33} << 20}) {
    auto body = Pattern(size, size + 1);
    GatherResult r = GatherAndWait(*msg_, 1, Tag(size), body);
    ASSERT_OK(r.status) << size;
    EXPECT_EQ(r.released, 1) << size;
    BodyAnswer a = ParseBodyAnswer(r.reply);
    EXPECT_EQ(a.tag, size);
    EXPECT_EQ(a.length, size);
    EXPECT_EQ(a.crc, Crc32c(body.data(), body.size())) << size;
    EXPECT_EQ(a.in_sink, size <= (32u << 20) ? 1 : 0) << size;
  }
  // The same op reached by a whole request (head and body in one payload): served alike.
  Payload whole = Tag(5);
  auto body = Pattern(1u << 20, 9);
  whole.insert(whole.end(), body.begin(), body.end());
  auto r = msg_->Call(1, 7, whole);
  ASSERT_OK(r);
  BodyAnswer a = ParseBodyAnswer(*r);
  EXPECT_EQ(a.tag, 5u);
  EXPECT_EQ(a.in_sink, 1);
  EXPECT_EQ(a.crc, Crc32c(body.data(), body.size()));
  // A request shorter than the op's head never reaches its handler.
  EXPECT_CODE(msg_->Call(1, 7, Pattern(3, 1)), kInvalidArgument);
  // A head that cannot travel in the message header is refused here, and the body released.
  GatherResult bad = GatherAndWait(*msg_, 1, Payload{}, body);
  EXPECT_CODE(bad.status, kInvalidArgument);
  EXPECT_EQ(bad.released, 1);
  bad = GatherAndWait(*msg_, 1, Payload(kMaxHeadBytes + 1), body);
  EXPECT_CODE(bad.status, kInvalidArgument);
  EXPECT_EQ(bad.released, 1);
  // A caller that needs no release still sends head and body as a gathered request.
  std::promise<Result<Payload>> got;
  msg_->CallGather(1, 7, Tag(6), body, 0ms, [&got](Result<Payload> r) { got.set_value(r); },
                   nullptr);
  auto plain = got.get_future().get();
  ASSERT_OK(plain);
  BodyAnswer p = ParseBodyAnswer(*plain);
  EXPECT_EQ(p.tag, 6u);
  EXPECT_EQ(p.length, body.size());
  EXPECT_EQ(p.crc, Crc32c(body.data(), body.size()));
}

TEST_F(MessengerTest, GatheredBodiesAStalledPeerNeverTakesAreReleasedAtTheDeadline) {
  // The peer stops (SIGSTOP) before it pulls two rendezvous bodies: the one with the short
  // deadline times out, which fails the peer, so the other call ends too and both bodies are
  // released (the caller may reuse its memory) instead of being held for ever.
  ::kill(pid_, SIGSTOP);
  auto body = Pattern(8u << 20, 3);
  std::future<GatherResult> slow = std::async(std::launch::async, [&] {
    return GatherAndWait(*msg_, 1, Tag(1), body, 60000ms);
  });
  std::this_thread::sleep_for(100ms);
  const auto t0 = std::chrono::steady_clock::now();
  GatherResult fast = GatherAndWait(*msg_, 1, Tag(2), body, 1000ms);
  GatherResult first = slow.get();
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_CODE(fast.status, kTimeout);
  EXPECT_EQ(fast.released, 1);
  EXPECT_FALSE(first.status.ok());
  EXPECT_EQ(first.released, 1);
  EXPECT_LT(waited, 30s) << "the stalled peer held the first body past the second's deadline";
  EXPECT_FALSE(msg_->peer_up(1));
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

TEST_F(MessengerTest, ManyConcurrentCalls) {
  const int kCalls = 500;
  std::atomic<int> ok{0}, done{0};
  for (int i = 0; i < kCalls; ++i) {
    auto data = Pattern(static_cast<size_t>(i * 37 % 20000), i);
    msg_->CallAsync(1, 1, data, 0ms, [&, data](Result<Payload> r) {
      if (r.ok() && *r == data) ok++;
      done++;
    });
  }
  auto until = std::chrono::steady_clock::now() + 30s;
  while (done.load() < kCalls && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(ok.load(), kCalls);
  EXPECT_GE(msg_->counters().requests_sent, static_cast<uint64_t>(kCalls));
}

TEST_F(MessengerTest, HandlerErrorsCrossTheWire) {
  auto r = msg_->Call(1, 3, {});
  EXPECT_CODE(r, kNotFound);
  EXPECT_EQ(r.status().message(), "nothing here for member 0");
  auto unknown = msg_->Call(1, 999, {});
  EXPECT_CODE(unknown, kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("no handler for op 999"), std::string::npos);
  EXPECT_CODE(msg_->Call(7, 1, {}), kInvalidArgument);  // no such member
}

TEST_F(MessengerTest, NestedCallsFromHandlers) {
  auto data = Pattern(3000, 5);
  auto r = msg_->Call(1, 5, data);  // member 1 asks member 0 (us) to echo, then answers
  ASSERT_OK(r);
  EXPECT_EQ(*r, data);
}

TEST_F(MessengerTest, DeadlinesGiveTimeout) {
  uint32_t ms = 1500;
  std::vector<std::byte> p(4);
  std::memcpy(p.data(), &ms, 4);
  auto start = std::chrono::steady_clock::now();
  auto r = msg_->Call(1, 2, p, 200ms);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_CODE(r, kTimeout);
  EXPECT_LT(took, 1000ms);
  EXPECT_GE(msg_->counters().timeouts, 1u);
  // The late reply is ignored; the link keeps working.
  std::this_thread::sleep_for(1500ms);
  EXPECT_OK(msg_->Call(1, 1, Pattern(10, 1)));
}

TEST_F(MessengerTest, MalformedMessagesAreDroppedNotFatal) {
  std::vector<std::vector<std::byte>> bad;
  bad.push_back({});                                    // no header
  bad.push_back(Pattern(31, 1));                        // short header
  bad.push_back(Pattern(32, 2));                        // garbage
  Header h;
  h.kind = Kind::kRequest;
  h.op = 1;
  h.sender = 1;  // lies about who it is: that member is the receiver itself
  h.payload_bytes = 10;
  std::vector<std::byte> lie(kHeaderBytes);
  EncodeHeader(h, lie.data());
  bad.push_back(lie);
  h.sender = 0;
  h.payload_bytes = 5;  // says 5, sends 10
  std::vector<std::byte> len(kHeaderBytes);
  EncodeHeader(h, len.data());
  bad.push_back(len);
  h.sender = 9;  // outside the world
  std::vector<std::byte> out(kHeaderBytes);
  EncodeHeader(h, out.data());
  bad.push_back(out);
  for (auto& b : bad) msg_->SendRawForTest(1, b, Pattern(10, 3));
  // A big malformed message (rendezvous path) too.
  msg_->SendRawForTest(1, Pattern(32, 4), Pattern(4 << 20, 4));

  // The peer is alive, still answers, and counted what it dropped.
  auto r = msg_->Call(1, 4, {});
  ASSERT_OK(r);
  uint64_t dropped = 0;
  std::memcpy(&dropped, r->data(), 8);
  // The header claiming to be from member 1 passes validation at member 1 (it is a member of
  // the world and connected); the other six are dropped.
  EXPECT_GE(dropped, 6u);
  EXPECT_OK(msg_->Call(1, 1, Pattern(100, 9)));
}

TEST_F(MessengerTest, KilledPeerFailsPendingAndLaterCalls) {
  uint32_t ms = 10000;
  std::vector<std::byte> p(4);
  std::memcpy(p.data(), &ms, 4);
  std::atomic<bool> finished{false};
  Status got;
  auto start = std::chrono::steady_clock::now();
  msg_->CallAsync(1, 2, p, 8000ms, [&](Result<Payload> r) {
    got = r.status();
    finished = true;
  });
  std::this_thread::sleep_for(300ms);
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
  while (!finished.load()) std::this_thread::sleep_for(5ms);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(got.code() == Code::kUnavailable || got.code() == Code::kTimeout) << got;
  EXPECT_LT(took, 9000ms);
  std::printf("pending call to a killed peer ended after %lld ms: %s\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(took).count()),
              got.ToString().c_str());
  auto later = msg_->Call(1, 1, Pattern(10, 1), 3000ms);
  EXPECT_FALSE(later.ok());
}

// A rank serving several stores creates their messengers before it knows their indices (the
// rendezvous tells): Bind gives them. A request that arrives before its target is bound is held
// and served once the target binds and connects back; a messenger binds once, and a bound one
// refuses another index.
TEST(MessengerBind, UnboundMessengersLearnTheirIndexAndServeRequestsHeldMeanwhile) {
  auto a = Messenger::Create({.self = 0, .world_size = 0, .handler_threads = 2});
  auto b = Messenger::Create({.self = 0, .world_size = 0, .handler_threads = 2});
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_EQ((*a)->world_size(), 0u);
  EXPECT_FALSE((*a)->Connect(0, (*b)->address()).ok());  // unbound: no index to connect
  (*b)->SetHandler(1, [](uint32_t sender, std::span<const std::byte> p) {
    Payload out(p.begin(), p.end());
    out.push_back(static_cast<std::byte>(sender));
    return Reply{Status::OK(), std::move(out)};
  });
  ASSERT_OK((*a)->Bind(1, 2));
  EXPECT_EQ((*a)->self(), 1u);
  EXPECT_EQ((*a)->world_size(), 2u);
  ASSERT_OK((*a)->Connect(0, (*b)->address()));
  ASSERT_OK((*a)->Connect(1, (*a)->address()));
  std::promise<Result<Payload>> got;
  (*a)->CallAsync(0, 1, Pattern(100, 7), 20000ms,
                  [&](Result<Payload> r) { got.set_value(std::move(r)); });
  std::this_thread::sleep_for(200ms);  // the request reaches b before it is bound: held
  ASSERT_OK((*b)->Bind(0, 2));
  ASSERT_OK((*b)->Connect(0, (*b)->address()));
  ASSERT_OK((*b)->Connect(1, (*a)->address()));
  auto r = got.get_future().get();
  ASSERT_OK(r);
  auto want = Pattern(100, 7);
  want.push_back(std::byte{1});  // served, and b knows the sender's index
  EXPECT_EQ(*r, want);
  EXPECT_FALSE((*b)->Bind(1, 2).ok());     // bound once
  EXPECT_OK((*b)->Bind(0, 2));             // (the same binding again is no change)
  EXPECT_FALSE((*a)->Bind(1, 0).ok());
  auto c = Messenger::Create({.self = 0, .world_size = 0});
  ASSERT_OK(c);
  EXPECT_FALSE((*c)->Bind(3, 3).ok());  // outside its world
  EXPECT_FALSE((*c)->Bind(0, 0).ok());
}

// Guests (the shoal CLI observing a live job): a process holding the job token says hello to a
// member and may then call the ops the member opened to guests, and nothing else; a guest
// without the token is never answered; guests come and go without the members noticing a
// failure, and a member goes on serving its world and later guests.
TEST(MessengerGuests, AGuestCallsOnlyGuestOpsAndItsEndIsNoFailure) {
  const std::string token = "0123456789abcdef0123456789abcdef";
  auto a = Messenger::Create({.self = 0, .world_size = 2, .handler_threads = 2,
                              .default_deadline = 20000ms, .guest_token = token});
  auto b = Messenger::Create({.self = 1, .world_size = 2, .handler_threads = 2,
                              .default_deadline = 20000ms, .guest_token = token});
  ASSERT_OK(a);
  ASSERT_OK(b);
  for (Messenger* m : {a->get(), b->get()}) {
    m->SetHandler(5, [](uint32_t sender, std::span<const std::byte>) {
      return Reply{Status::OK(), Payload{static_cast<std::byte>(sender)}};
    });
    m->SetGuestHandler(6, [](uint32_t sender, std::span<const std::byte> p) {
      Payload out(p.begin(), p.end());
      const uint32_t slot = GuestSlot(sender);
      out.push_back(static_cast<std::byte>(slot));
      return Reply{Status::OK(), std::move(out)};
    });
  }
  ASSERT_OK((*a)->Connect(0, (*a)->address()));
  ASSERT_OK((*a)->Connect(1, (*b)->address()));
  ASSERT_OK((*b)->Connect(0, (*a)->address()));
  ASSERT_OK((*b)->Connect(1, (*b)->address()));

  for (int round = 0; round < 3; ++round) {
    auto g = Messenger::Create({.world_size = 2, .handler_threads = 1,
                                .default_deadline = 20000ms, .guest_token = token,
                                .guest = true});
    ASSERT_OK(g);
    ASSERT_OK((*g)->Connect(0, (*a)->address()));
    ASSERT_OK((*g)->Connect(1, (*b)->address()));
    for (uint32_t member : {0u, 1u}) {
      auto r = (*g)->Call(member, 6, Pattern(3000, member + 1));
      ASSERT_OK(r);
      auto want = Pattern(3000, member + 1);
      ASSERT_EQ(r->size(), want.size() + 1);
      EXPECT_TRUE(std::equal(want.begin(), want.end(), r->begin()));
      EXPECT_LT(static_cast<uint32_t>(r->back()), kMaxGuests);  // the slot the member gave
      auto refused = (*g)->Call(member, 5, Payload{});
      ASSERT_FALSE(refused.ok());
      EXPECT_EQ(refused.status().code(), Code::kInvalidArgument);
      EXPECT_NE(refused.status().message().find("not open to observers"), std::string::npos)
          << refused.status().ToString();
    }
    g->reset();  // leaves
    // The world goes on as before: members call each other; nothing counts as a failure.
    auto r = (*a)->Call(1, 5, Payload{});
    ASSERT_OK(r);
    EXPECT_EQ(*r, Payload{std::byte{0}});
    EXPECT_TRUE((*a)->peer_up(1));
  }
  EXPECT_EQ((*a)->counters().peer_failures, 0u);
  EXPECT_EQ((*b)->counters().peer_failures, 0u);

  // Without the token: the hello is dropped, never answered; nothing else gets through.
  auto bad = Messenger::Create({.world_size = 2, .handler_threads = 1,
                                .default_deadline = 1500ms,
                                .guest_token = "another token of the same length!", .guest = true});
  ASSERT_OK(bad);
  Status s = (*bad)->Connect(0, (*a)->address());
  EXPECT_EQ(s.code(), Code::kTimeout) << s.ToString();
  const uint64_t dropped = (*a)->counters().bad_messages;
  EXPECT_GE(dropped, 1u);
  auto r = (*bad)->Call(0, 6, Payload{std::byte{1}});  // as guest kGuestHello: dropped too
  EXPECT_FALSE(r.ok());
  EXPECT_GT((*a)->counters().bad_messages, dropped);
  // A member messenger that takes no guests drops a hello even with a token.
  auto closed = Messenger::Create({.self = 0, .world_size = 1});
  ASSERT_OK(closed);
  auto g = Messenger::Create({.world_size = 1, .default_deadline = 1500ms,
                              .guest_token = token, .guest = true});
  ASSERT_OK(g);
  EXPECT_EQ((*g)->Connect(0, (*closed)->address()).code(), Code::kTimeout);
  // A guest needs the world's size and a token.
  EXPECT_FALSE(Messenger::Create({.world_size = 1, .guest = true}).ok());
}

// A guest that leaves while its call is served does not get its reply delivered to the next
// guest in its slot: both number their calls alike (a hello, then a call), so without the
// slot's generation the old reply would end the new guest's call with the old guest's bytes.
TEST(MessengerGuests, AReplyToAGuestThatLeftNeverReachesTheNextInItsSlot) {
  const std::string token = "0123456789abcdef0123456789abcdef";
  auto m = Messenger::Create({.self = 0, .world_size = 1, .handler_threads = 2,
                              .default_deadline = 20000ms, .guest_token = token});
  ASSERT_OK(m);
  std::atomic<int> served{0};
  (*m)->SetGuestHandler(6, [&](uint32_t, std::span<const std::byte> p) {
    // A's reply is due while B's first call (the same request id at the member) still waits.
    const int ms = p[0] == std::byte{'A'} ? 600 : p[0] == std::byte{'B'} ? 1000 : 50;
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    served++;
    return Reply{Status::OK(), Payload(p.begin(), p.end())};
  });
  ASSERT_OK((*m)->Connect(0, (*m)->address()));
  auto guest = [&] {
    return Messenger::Create({.world_size = 1, .handler_threads = 1, .default_deadline = 20000ms,
                              .guest_token = token, .guest = true});
  };
  auto a = guest();
  ASSERT_OK(a);
  ASSERT_OK((*a)->Connect(0, (*m)->address()));
  (*a)->CallAsync(0, 6, Payload(8, std::byte{'A'}), 20000ms, [](Result<Payload>) {});
  std::this_thread::sleep_for(100ms);  // A's call is being served
  a->reset();                          // A leaves; its slot is freed once its endpoint fails
  std::this_thread::sleep_for(200ms);
  auto b = guest();
  ASSERT_OK(b);
  ASSERT_OK((*b)->Connect(0, (*m)->address()));
  auto r = (*b)->Call(0, 6, Payload(8, std::byte{'B'}));
  ASSERT_OK(r);
  EXPECT_EQ(*r, Payload(8, std::byte{'B'}));
  EXPECT_EQ(served.load(), 2);  // A's call was served, its reply sent nowhere
  // B's next call gets its own too.
  auto again = (*b)->Call(0, 6, Payload(8, std::byte{'b'}));
  ASSERT_OK(again);
  EXPECT_EQ(*again, Payload(8, std::byte{'b'}));
  EXPECT_EQ((*m)->counters().peer_failures, 0u);
}

}  // namespace
}  // namespace shoal::transport
