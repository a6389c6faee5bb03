// Shared reads (include/shoal/shared_reader.h) between real processes: forked readers reading
// bit-exact, per-item errors, backpressure, readers killed mid-request and holding leases, the
// serving rank stopping or killed, wrong tokens, full channel tables, forked children of a
// reader, hostile bytes in a ring.
#include "shoal/shared_reader.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "lib/shared_ring.h"
#include "shoal/dataset.h"
#include "shoal/engine.h"
#include "tests/lib/shared_read_content.h"
#include "tests/process_util.h"
#include "tests/test_util.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using testing::Content;
using testing::Same;
using testing::SizeOf;
using testing::Within;

ReadItem Obj(std::string path, uint64_t offset = 0, uint64_t size = 0) {
  ReadItem it;
  it.path = std::move(path);
  it.offset = offset;
  it.size = size;
  return it;
}
ReadItem Sample(uint32_t dataset, uint64_t index) {
  ReadItem it;
  it.dataset = dataset;
  it.index = index;
  return it;
}

// Waits up to 10 s for `pred`.
template <typename F>
bool Eventually(F pred) {
  for (int i = 0; i < 1000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

// The segment as a reader process maps it (for tests that write its rings by hand): it starts
// pool_offset bytes before the pool.
shm::Header* SegmentOf(SharedReader& r, const SharedReadOptions& o) {
  shm::Header layout;
  shm::FillLayout(o, &layout);
  return reinterpret_cast<shm::Header*>(r.pool().data() - layout.pool_offset);
}

// Wakes the server thread of `ch` after a hand-written push.
void WakeServer(shm::Header* h, uint32_t ch) {
  shm::Channel* c = shm::ChannelAt(reinterpret_cast<std::byte*>(h), *h, ch);
  c->server_bell.fetch_add(1);
  shm::FutexWakeAll(&c->server_bell);
}

class SharedReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Options o = testing::TestOptions(dir_.Sub("store"), IoBackend::kAuto);
    o.world_size = 1;
    o.rank = 0;
    auto e = Engine::Open(o);
    ASSERT_OK(e);
    engine_ = std::move(e).value();
    for (int i = 0; i < kObjects; ++i) {
      ASSERT_OK(engine_->Put("o/" + std::to_string(i), Content(i, SizeOf(i))));
    }
    ASSERT_OK(engine_->Put("empty", std::span<const std::byte>()));
    ASSERT_OK(engine_->Put("big", Content(99, 40 << 10)));
  }

  std::unique_ptr<SharedReadServer> Start(SharedReadOptions o = {}) {
    auto s = SharedReadServer::Start(*engine_, o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  static std::vector<ReadItem> Objects(int from, int n) {
    std::vector<ReadItem> v(n);
    for (int i = 0; i < n; ++i) v[i].path = "o/" + std::to_string(from + i);
    return v;
  }

  static constexpr int kObjects = 200;
  testing::TempDir dir_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(SharedReadTest, ReadsObjectsAndSamplesStraightIntoThePool) {
  // A dataset cache over a directory, registered with the server.
  for (int i = 0; i < 20; ++i) {
    fs::create_directories(dir_.Sub("src"));
    std::vector<std::byte> c = Content(1000 + i, 3000 + i);
    std::ofstream(dir_.Sub("src") + "/s" + std::to_string(i), std::ios::binary)
        .write(reinterpret_cast<const char*>(c.data()), static_cast<std::streamsize>(c.size()));
  }
  auto cache = DatasetCache::Open(*engine_, DirectorySource(dir_.Sub("src")));
  ASSERT_OK(cache);
  auto server = Start();
  const uint32_t ds = server->Register(cache->get());
  auto reader = SharedReader::Attach(server->name(), server->token());
  ASSERT_OK(reader);

  std::vector<ReadItem> items = Objects(0, 50);
  items.push_back(Obj("o/7", 100, 50));
  items.push_back(Obj("empty"));
  for (uint64_t i = 0; i < 20; ++i) items.push_back(Sample(ds, i));
  auto got = (*reader)->ReadBatch(items);
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), items.size());
  std::vector<uint64_t> leases;
  for (int i = 0; i < 50; ++i) {
    ASSERT_OK((*got)[i].status);
    EXPECT_TRUE(Same((*got)[i].bytes, Content(i, SizeOf(i)))) << i;
    EXPECT_TRUE(Within((*got)[i].bytes, (*reader)->pool())) << "read elsewhere than the pool";
  }
  EXPECT_TRUE(Same((*got)[50].bytes, std::span<const std::byte>(Content(7, SizeOf(7))).subspan(100, 50)));
  EXPECT_OK((*got)[51].status);
  EXPECT_EQ((*got)[51].bytes.size(), 0u);
  for (int i = 0; i < 20; ++i) {
    auto info = (*cache)->info(i);
    ASSERT_OK(info);
    const int n = std::stoi(info->name.substr(1));
    EXPECT_TRUE(Same((*got)[52 + i].bytes, Content(1000 + n, 3000 + n))) << info->name;
  }
  EXPECT_GT(server->counters().leased_bytes, 0u);
  for (const PoolBuffer& b : *got) leases.push_back(b.pool_offset);
  (*reader)->Release(leases);
  (*reader)->Flush();
  EXPECT_TRUE(Eventually([&] { return server->counters().leased_bytes == 0; }));
  EXPECT_EQ(server->counters().attached, 1u);
}

TEST_F(SharedReadTest, EachItemHasItsOwnOutcome) {
  auto server = Start();
  auto reader = SharedReader::Attach(server->name(), server->token());
  ASSERT_OK(reader);
  std::vector<ReadItem> items = {Obj("o/1"),
                                 Obj("no/such"),
                                 Obj("o/2", 1u << 20),
                                 Sample(42, 0),
                                 Obj("bad//name"),
                                 Obj("o/3")};
  auto got = (*reader)->ReadBatch(items);
  ASSERT_OK(got);
  EXPECT_TRUE(Same((*got)[0].bytes, Content(1, SizeOf(1))));
  EXPECT_CODE((*got)[1].status, kNotFound);
  EXPECT_CODE((*got)[2].status, kInvalidArgument);
  EXPECT_CODE((*got)[3].status, kInvalidArgument);
  EXPECT_FALSE((*got)[4].status.ok());
  EXPECT_TRUE(Same((*got)[5].bytes, Content(3, SizeOf(3))));
  for (int i : {1, 2, 3, 4}) EXPECT_EQ((*got)[i].pool_offset, ~0ull) << "a failed item holds no lease";
  // Too many items, and more than a part at once.
  EXPECT_CODE((*reader)->ReadBatch(std::vector<ReadItem>(5000, Obj("o/1"))),
              kInvalidArgument);
  SharedReadOptions small;
  small.part_bytes = 64 << 10;
  auto s2 = Start(small);
  auto r2 = SharedReader::Attach(s2->name(), s2->token());
  ASSERT_OK(r2);
  // One item larger than a part, named or huge (a size that would overflow a sum).
  std::vector<ReadItem> huge = {Obj("big"), Obj("o/1", 0, ~0ull), Obj("o/2", 0, 1ull << 40)};
  auto refused = (*r2)->ReadBatch(huge);
  ASSERT_OK(refused);
  EXPECT_OK((*refused)[0].status);
  EXPECT_CODE((*refused)[1].status, kInvalidArgument);
  EXPECT_CODE((*refused)[2].status, kInvalidArgument);
  const uint64_t l = (*refused)[0].pool_offset;
  (*r2)->Release(std::span(&l, 1));
  std::vector<ReadItem> two = {Obj("big"), Obj("big")};
  auto too_big = (*r2)->ReadBatch(two);
  ASSERT_OK(too_big);
  EXPECT_CODE((*too_big)[0].status, kInvalidArgument);
  EXPECT_NE((*too_big)[0].status.message().find("part_bytes"), std::string::npos);
}

TEST_F(SharedReadTest, AFullPartMakesTheNextRequestWaitForReleases) {
  SharedReadOptions o;
  o.part_bytes = 64 << 10;  // one 40 KiB object at a time
  auto server = Start(o);
  auto reader = SharedReader::Attach(server->name(), server->token());
  ASSERT_OK(reader);
  std::vector<ReadItem> big = {Obj("big")};
  auto first = (*reader)->ReadBatch(big);
  ASSERT_OK(first);
  const uint64_t lease = (*first)[0].pool_offset;
  auto t0 = std::chrono::steady_clock::now();
  std::thread releaser([&] {
    std::this_thread::sleep_for(300ms);
    (*reader)->Release(std::span(&lease, 1));
  });
  auto second = (*reader)->ReadBatch(big);  // waits for the release
  const auto waited = std::chrono::steady_clock::now() - t0;
  releaser.join();
  ASSERT_OK(second);
  ASSERT_OK((*second)[0].status);
  EXPECT_TRUE(Same((*second)[0].bytes, Content(99, 40 << 10)));
  EXPECT_GE(waited, 250ms);
}

// A reader process (exec'd: it shares no allocator or lock state with this process's threads).
testing::Process Reader(const testing::TempDir& dir, const SharedReadServer& s,
                        std::vector<std::string> args, const std::string& tag) {
  args.insert(args.begin(), {s.name(), s.token()});
  return testing::Spawn(std::string(SHOAL_BUILD_DIR) + "/tests/shared_read_client", args,
                        dir.Sub(tag + ".out"), dir.Sub(tag + ".err"));
}

TEST_F(SharedReadTest, ReaderProcessesReadBitExactOnTheirOwnChannels) {
  auto server = Start();
  std::vector<testing::Process> kids;
  for (int k = 0; k < 4; ++k) {
    kids.push_back(Reader(dir_, *server, {"read", std::to_string(k), "50", std::to_string(kObjects)},
                          "reader" + std::to_string(k)));
  }
  for (const testing::Process& p : kids) {
    EXPECT_EQ(testing::Wait(p), 0) << testing::Slurp(p.err);
  }
  EXPECT_TRUE(Eventually([&] {
    auto c = server->counters();
    return c.attached == 0 && c.leased_bytes == 0;
  }));
  EXPECT_EQ(server->counters().requests, 200u);
  // The same in the engine's registry (GetStats, shoal status, Prometheus), with each
  // request's time and the queue depth it found.
  const Stats stats = engine_->GetStats();
  EXPECT_EQ(stats.counters.at("shared_read.requests"), 200u);
  EXPECT_EQ(stats.counters.at("shared_read.items"), server->counters().items);
  EXPECT_EQ(stats.counters.at("shared_read.refused"), 0u);
  EXPECT_EQ(stats.histograms.at("shared_read.request.latency_ns").count, 200u);
  EXPECT_GT(stats.histograms.at("shared_read.request.latency_ns").p50, 0u);
  EXPECT_EQ(stats.histograms.at("shared_read.queue_depth").count, 200u);
  EXPECT_GT(stats.histograms.at("shared_read.leased_bytes").max_bucket, 0u);
}

TEST_F(SharedReadTest, AReaderKilledHoldingLeasesAndMidRequestLeaksNothing) {
  SharedReadOptions o;
  o.channels = 2;
  o.part_bytes = 64 << 10;
  auto server = Start(o);
  const std::string name = server->name(), token = server->token();
  // It keeps one lease and waits for room for a second request.
  testing::Process p = Reader(dir_, *server, {"hold"}, "holder");
  ASSERT_TRUE(Eventually([&] { return server->counters().requests == 1; }));
  std::this_thread::sleep_for(200ms);  // the second request is in the ring, waiting
  EXPECT_GT(server->counters().leased_bytes, 0u);
  kill(p.pid, SIGKILL);
  ASSERT_EQ(testing::Wait(p), 128 + SIGKILL) << testing::Slurp(p.err);
  ASSERT_TRUE(Eventually([&] {
    auto c = server->counters();
    return c.reclaimed_readers == 1 && c.attached == 0 && c.leased_bytes == 0;
  }));
  EXPECT_GE(server->counters().reclaimed_bytes, 40u << 10);
  // Both channels are free again, and a whole part is available to the next reader.
  auto a = SharedReader::Attach(name, token);
  auto b = SharedReader::Attach(name, token);
  ASSERT_OK(a);
  ASSERT_OK(b);
  std::vector<ReadItem> big = {Obj("big")};
  auto got = (*a)->ReadBatch(big);
  ASSERT_OK(got);
  EXPECT_TRUE(Same((*got)[0].bytes, Content(99, 40 << 10)));
  EXPECT_CODE(SharedReader::Attach(name, token), kUnavailable);  // both channels taken
}

TEST_F(SharedReadTest, AForkedChildOfAReaderMustAttachAgainAndCannotReleaseTheParents) {
  auto server = Start();
  auto reader = SharedReader::Attach(server->name(), server->token());
  ASSERT_OK(reader);
  auto got = (*reader)->ReadBatch(Objects(0, 4));
  ASSERT_OK(got);
  const uint64_t leased = server->counters().leased_bytes;
  std::shared_ptr<SharedReader> r = *reader;
  const std::string name = server->name(), token = server->token();
  std::vector<uint64_t> leases;
  for (const PoolBuffer& b : *got) leases.push_back(b.pool_offset);
  const std::string client = std::string(SHOAL_BUILD_DIR) + "/tests/shared_read_client";
  pid_t pid = fork();
  if (pid == 0) {
    if (r->ReadBatch(Objects(0, 1)).status().code() != Code::kFailedPrecondition) _exit(20);
    r->Release(leases);  // the parent's: nothing happens
    r->Flush();
    // Attaching again and reading: in a fresh image (a forked copy of a threaded process
    // should not go on allocating; sanitizer runtimes may deadlock).
    execl(client.c_str(), client.c_str(), name.c_str(), token.c_str(), "read", "0", "1",
          std::to_string(kObjects).c_str(), static_cast<char*>(nullptr));
    _exit(21);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  ASSERT_TRUE(Eventually([&] { return server->counters().attached == 1; }));
  EXPECT_EQ(server->counters().leased_bytes, leased) << "the child released the parent's leases";
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(Same((*got)[i].bytes, Content(i, SizeOf(i))));
}

TEST_F(SharedReadTest, StoppingTheServerFailsAWaitingReaderAndLaterCalls) {
  SharedReadOptions o;
  o.part_bytes = 64 << 10;
  auto server = Start(o);
  auto reader = SharedReader::Attach(server->name(), server->token());
  ASSERT_OK(reader);
  std::vector<ReadItem> big = {Obj("big")};
  auto held = (*reader)->ReadBatch(big);
  ASSERT_OK(held);
  Status waited;
  std::thread t([&] { waited = (*reader)->ReadBatch(big).status(); });
  std::this_thread::sleep_for(200ms);
  server->Stop();
  t.join();
  EXPECT_CODE(waited, kUnavailable);
  EXPECT_CODE((*reader)->ReadBatch(big), kUnavailable);
  // The held buffer is still mapped and intact; releasing it after the stop is harmless.
  EXPECT_TRUE(Same((*held)[0].bytes, Content(99, 40 << 10)));
  const uint64_t lease = (*held)[0].pool_offset;
  (*reader)->Release(std::span(&lease, 1));
  (*reader)->Flush();
  EXPECT_CODE(SharedReader::Attach(server->name(), server->token()), kNotFound);
}

TEST_F(SharedReadTest, TheServingRankKilledFailsReadersWithUnavailable) {
  const std::string helper = std::string(SHOAL_BUILD_DIR) + "/tests/shared_read_server";
  testing::Process p = testing::Spawn(helper, {dir_.Sub("rank"), "10"}, dir_.Sub("out"),
                                      dir_.Sub("err"));
  std::string line;
  ASSERT_TRUE(Eventually([&] {
    line = testing::Slurp(dir_.Sub("out"));
    return line.find('\n') != std::string::npos;
  })) << testing::Slurp(dir_.Sub("err"));
  const std::string name = line.substr(0, line.find(' '));
  const std::string token = line.substr(line.find(' ') + 1, line.find('\n') - line.find(' ') - 1);
  EXPECT_CODE(SharedReader::Attach(name, "not-the-token"), kPermissionDenied);
  auto r = SharedReader::Attach(name, token);
  ASSERT_OK(r);
  std::vector<ReadItem> items = {Obj("o/3")};
  auto got = (*r)->ReadBatch(items);
  ASSERT_OK(got);
  ASSERT_OK((*got)[0].status);
  ASSERT_EQ((*got)[0].bytes.size(), 10003u);
  kill(p.pid, SIGKILL);
  testing::Wait(p);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_CODE((*r)->ReadBatch(items), kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_EQ(static_cast<int>((*got)[0].bytes[10002]), (3 + 10002) & 0xff) << "still mapped";
  // The killed rank's segment is left in /dev/shm; the next server started on the host
  // removes it.
  EXPECT_TRUE(fs::exists("/dev/shm/" + name));
  auto next = Start();
  EXPECT_FALSE(fs::exists("/dev/shm/" + name));
  EXPECT_TRUE(fs::exists("/dev/shm/" + next->name()));
}

TEST_F(SharedReadTest, GarbageInARingIsRefusedAndTheChannelKeepsWorking) {
  auto server = Start();
  auto reader = SharedReader::Attach(server->name(), server->token());
  ASSERT_OK(reader);
  EXPECT_CODE(SharedReader::Attach("shoal-no-such-ring", "x"), kNotFound);
  // Push undecodable requests into this reader's channel, as a broken client would.
  // The segment starts pool_offset bytes before the pool (the layout of the default options).
  auto* header = SegmentOf(**reader, SharedReadOptions{});
  auto* base = reinterpret_cast<std::byte*>(header);
  shm::Ring ring = shm::ToServer(base, *header, (*reader)->channel());
  std::vector<std::byte> junk(100, std::byte{0xff});
  ASSERT_TRUE(ring.TryPush(shm::kRequest, junk));
  ASSERT_TRUE(ring.TryPush(shm::kRelease, junk));  // a release of the wrong size
  ASSERT_TRUE(ring.TryPush(77, junk));              // an unknown type
  auto got = (*reader)->ReadBatch(Objects(10, 3));  // skips the reply to the junk
  ASSERT_OK(got);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Same((*got)[i].bytes, Content(10 + i, SizeOf(10 + i))));
  // A record header claiming more than was published (a broken writer): the server reads
  // nothing past it, fails the channel's requests, and the channel then works again.
  shm::RingControl* c = ring.control();
  const uint64_t head = c->head.load();
  std::byte* at = base + header->rings_offset + 2 * (*reader)->channel() * header->ring_bytes +
                  head % header->ring_bytes;
  const uint32_t lie[2] = {1u << 30, shm::kRequest};
  std::memcpy(at, lie, 8);
  c->head.store(head + 8);
  WakeServer(header, (*reader)->channel());
  EXPECT_CODE((*reader)->ReadBatch(Objects(20, 1)), kInternal);
  auto after = (*reader)->ReadBatch(Objects(30, 2));
  ASSERT_OK(after);
  EXPECT_TRUE(Same((*after)[1].bytes, Content(31, SizeOf(31))));
}

TEST_F(SharedReadTest, AFloodOfWaitingRequestsIsRefusedPastALimitAndNothingLeaks) {
  SharedReadOptions o;
  o.part_bytes = 64 << 10;  // one 40 KiB object at a time
  auto server = Start(o);
  auto reader = SharedReader::Attach(server->name(), server->token());
  ASSERT_OK(reader);
  std::vector<ReadItem> big = {Obj("big")};
  auto held = (*reader)->ReadBatch(big);  // the part is full while this is held
  ASSERT_OK(held);
  // 300 requests pushed straight into the ring, as a reader that never waits would: 256 wait
  // for room, the rest are refused at once.
  auto* header = SegmentOf(**reader, o);
  auto* base = reinterpret_cast<std::byte*>(header);
  shm::Ring ring = shm::ToServer(base, *header, (*reader)->channel());
  for (uint64_t i = 0; i < 300; ++i) {
    ASSERT_TRUE(ring.TryPush(shm::kRequest, shm::EncodeRequest(1000 + i, big)));
  }
  WakeServer(header, (*reader)->channel());
  // The server has taken every one of them off the ring (a fixed pause was not enough on a
  // loaded machine), and a moment more for the last one's handling.
  ASSERT_TRUE(Eventually([&] {
    return ring.control()->tail.load() == ring.control()->head.load();
  }));
  std::this_thread::sleep_for(100ms);
  // Releasing the held buffer lets the waiting ones run one by one; each request of this
  // reader returns the leases of the stale replies it passes, and is itself refused while 256
  // still wait, then served.
  const uint64_t lease = (*held)[0].pool_offset;
  (*reader)->Release(std::span(&lease, 1));
  std::vector<ReadItem> one = {Obj("o/4")};
  Result<std::vector<PoolBuffer>> got = Status::Internal("not tried");
  int refused = 0;
  for (int attempt = 0; attempt < 2000; ++attempt) {
    got = (*reader)->ReadBatch(one);
    if (got.ok()) break;
    EXPECT_CODE(got, kUnavailable);
    refused++;
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_OK(got);
  EXPECT_GT(refused, 0) << "the flood was not refused past 256";
  EXPECT_TRUE(Same((*got)[0].bytes, Content(4, SizeOf(4))));
  EXPECT_GE(server->counters().requests, 257u);
  // Each refusal is counted, and the depths the requests found reached the limit.
  const Stats stats = engine_->GetStats();
  EXPECT_GE(stats.counters.at("shared_read.refused"), 44u);  // 300 sent, 256 may wait
  EXPECT_GE(stats.histograms.at("shared_read.queue_depth").max_bucket, 256u);
  const uint64_t mine = (*got)[0].pool_offset;
  (*reader)->Release(std::span(&mine, 1));
  (*reader)->Flush();
  EXPECT_TRUE(Eventually([&] { return server->counters().leased_bytes == 0; }));
}

}  // namespace
}  // namespace shoal
