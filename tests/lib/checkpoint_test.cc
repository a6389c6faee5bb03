// The checkpoint API on one member: manifests, listing, loading, bad input, retention,
// collection of torn tags, async save through a pool smaller than the state. Multi-process
// worlds, kills and repair are in checkpoint_world_test.cc.
#include "shoal/checkpoint.h"

#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <random>
#include <thread>

#include "lib/checkpoint_commit.h"
#include "lib/manifest.h"
#include "lib/staging_pool.h"
#include "tests/lib/ckpt_content.h"
#include "tests/test_util.h"

namespace shoal {
namespace {

using testing::Content;
using testing::TempDir;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Options o = testing::TestOptions(dir_.Sub("store"), IoBackend::kAuto);
    o.world_size = 1;
    o.rank = 0;
    auto e = Engine::Open(o);
    ASSERT_OK(e);
    engine_ = std::move(e).value();
  }

  std::unique_ptr<Checkpointer> Open(CheckpointOptions co = {}) {
    auto ck = Checkpointer::Open(*engine_, co);
    EXPECT_TRUE(ck.ok()) << ck.status().ToString();
    return ck.ok() ? std::move(ck).value() : nullptr;
  }

  // Saves blobs "model" and "optim" of sizes derived from the tag, commits.
  Status SaveTag(Checkpointer& ck, const std::string& tag, const std::string& meta = "{}") {
    auto save = ck.Begin(tag);
    SHOAL_RETURN_IF_ERROR(save.status());
    for (const char* name : {"r0/model", "r0/optim"}) {
      SHOAL_RETURN_IF_ERROR((*save)->Save(name, Content(tag, name)));
    }
    return (*save)->Commit(meta).Wait();
  }

  void ExpectLoads(Checkpointer& ck, const std::string& tag) {
    auto m = ck.GetManifest(tag);
    ASSERT_OK(m);
    ASSERT_EQ(m->blobs.size(), 2u);
    for (const BlobInfo& b : m->blobs) {
      std::vector<std::byte> got(b.size);
      ASSERT_OK(ck.Load(*m, b.name, got));
      EXPECT_EQ(got, Content(tag, b.name)) << tag << "/" << b.name;
      EXPECT_EQ(b.rank, 0u);
    }
  }

  TempDir dir_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(CheckpointTest, CommitPublishesManifestAndLatest) {
  auto ck = Open();
  EXPECT_CODE(ck->Latest(), kNotFound);
  ASSERT_OK(SaveTag(*ck, "step-1", "{\"lr\": 0.1}"));
  ASSERT_OK(SaveTag(*ck, "step-2"));
  auto latest = ck->Latest();
  ASSERT_OK(latest);
  EXPECT_EQ(*latest, "step-2");
  // Each save's phases in the engine's metrics (docs/metrics.md).
  Stats st = engine_->GetStats();
  EXPECT_EQ(st.counters["checkpoint.saves"], 2u);
  EXPECT_EQ(st.histograms["checkpoint.commit.latency_ns"].count, 2u);
  EXPECT_EQ(st.histograms["checkpoint.save.latency_ns"].count, 2u);
  EXPECT_GE(st.histograms["checkpoint.save.latency_ns"].sum,
            st.histograms["checkpoint.commit.latency_ns"].sum);
  auto tags = ck->List();
  ASSERT_OK(tags);
  ASSERT_EQ(tags->size(), 2u);
  EXPECT_EQ((*tags)[0].tag, "step-1");
  EXPECT_EQ((*tags)[0].sequence, 1u);
  EXPECT_EQ((*tags)[1].sequence, 2u);
  auto m = ck->GetManifest("step-1");
  ASSERT_OK(m);
  EXPECT_EQ(m->metadata, "{\"lr\": 0.1}");
  EXPECT_EQ(m->world_size, 1u);
  ASSERT_NE(m->Find("r0/model"), nullptr);
  EXPECT_EQ(m->Find("r0/model")->size, testing::SizeOf("step-1", "r0/model"));
  EXPECT_EQ(m->Find("nope"), nullptr);
  ExpectLoads(*ck, "step-1");
  ExpectLoads(*ck, "step-2");
  // A slice of a blob.
  std::vector<std::byte> part(100);
  auto n = ck->Read(*m, "r0/model", 1000, part);
  ASSERT_OK(n);
  EXPECT_EQ(*n, 100u);
  auto whole = Content("step-1", "r0/model");
  EXPECT_TRUE(std::equal(part.begin(), part.end(), whole.begin() + 1000));
  // Committed tags survive reopening the engine.
  ck.reset();
  engine_.reset();
  SetUp();
  ck = Open();
  ExpectLoads(*ck, "step-2");
}

TEST_F(CheckpointTest, BadInputIsRefusedAndLosesNothing) {
  auto ck = Open();
  ASSERT_OK(SaveTag(*ck, "good"));
  for (std::string bad : std::vector<std::string>{"", ".hidden", "a/b", "sp ace",
                                                 std::string(201, 'x'), std::string("nul\0x", 5)}) {
    EXPECT_CODE(ck->Begin(bad), kInvalidArgument) << bad;
  }
  EXPECT_CODE(ck->Begin("good"), kAlreadyExists);
  EXPECT_CODE(ck->GetManifest("absent"), kNotFound);
  EXPECT_CODE(ck->Remove("absent"), kNotFound);

  auto save = ck->Begin("next");
  ASSERT_OK(save);
  EXPECT_CODE((*save)->Save("", "x"), kInvalidArgument);
  EXPECT_CODE((*save)->Save("a/../b", "x"), kInvalidArgument);
  EXPECT_CODE((*save)->Save("bad\xff", "x"), kInvalidArgument);
  ASSERT_OK((*save)->Save("blob", "data"));
  EXPECT_CODE((*save)->Save("blob", "again"), kAlreadyExists);
  EXPECT_CODE((*save)->Commit(std::string(70000, 'm')).Wait(), kInvalidArgument);  // metadata
  EXPECT_CODE(ck->GetManifest("next"), kNotFound);

  auto m = ck->GetManifest("good");
  ASSERT_OK(m);
  std::vector<std::byte> small(10);
  EXPECT_CODE(ck->Load(*m, "r0/model", small), kInvalidArgument);
  EXPECT_CODE(ck->Load(*m, "absent", small), kNotFound);
  CheckpointManifest forged = *m;
  for (BlobInfo& b : forged.blobs) b.crc32c ^= 1;
  std::vector<std::byte> buf(forged.blobs[0].size);
  EXPECT_CODE(ck->Load(forged, forged.blobs[0].name, buf), kCorruption);
  ExpectLoads(*ck, "good");

  CheckpointOptions co;
  co.root = "";
  EXPECT_CODE(Checkpointer::Open(*engine_, co), kInvalidArgument);
  co.root = "x";
  co.async = true;
  co.staging_bytes = 1000;
  EXPECT_CODE(Checkpointer::Open(*engine_, co), kInvalidArgument);
}

TEST_F(CheckpointTest, TornTagIsNeverListedAndIsCollected) {
  auto ck = Open();
  ASSERT_OK(SaveTag(*ck, "step-1"));
  // What a crash mid-save leaves: blobs of a tag without a manifest.
  ASSERT_OK(engine_->Put("checkpoints/data/step-2/r0/model", std::string(5000, 'x')));
  ASSERT_OK(engine_->Put("checkpoints/data/step-2/r1/model", std::string(10, 'y')));
  auto latest = ck->Latest();
  ASSERT_OK(latest);
  EXPECT_EQ(*latest, "step-1");
  EXPECT_EQ(ck->List()->size(), 1u);
  auto report = ck->CollectAbandoned();
  ASSERT_OK(report);
  EXPECT_EQ(report->tags, std::vector<std::string>{"step-2"});
  EXPECT_EQ(report->objects, 2u);
  EXPECT_CODE(engine_->Stat("checkpoints/data/step-2/r0/model"), kNotFound);
  ExpectLoads(*ck, "step-1");
  // Begin collects too, so the torn tag can be saved again.
  ASSERT_OK(engine_->Put("checkpoints/data/step-2/r0/model", std::string(5000, 'x')));
  ASSERT_OK(SaveTag(*ck, "step-2"));
  ExpectLoads(*ck, "step-2");
  // A save abandoned without Commit leaves nothing.
  {
    auto save = ck->Begin("step-3");
    ASSERT_OK(save);
    ASSERT_OK((*save)->Save("r0/model", Content("step-3", "r0/model")));
  }
  EXPECT_CODE(engine_->Stat("checkpoints/data/step-3/r0/model"), kNotFound);
  EXPECT_EQ(*ck->Latest(), "step-2");
}

TEST_F(CheckpointTest, RetentionKeepsTheNewest) {
  CheckpointOptions co;
  co.keep_last = 2;
  auto ck = Open(co);
  for (int s = 1; s <= 5; ++s) ASSERT_OK(SaveTag(*ck, "step-" + std::to_string(s)));
  auto tags = ck->List();
  ASSERT_OK(tags);
  ASSERT_EQ(tags->size(), 2u);
  EXPECT_EQ((*tags)[0].tag, "step-4");
  EXPECT_EQ((*tags)[1].tag, "step-5");
  EXPECT_CODE(engine_->Stat("checkpoints/data/step-1/r0/model"), kNotFound);
  auto data = engine_->List("checkpoints/data", {});
  ASSERT_OK(data);
  EXPECT_EQ(data->entries.size(), 2u);
  // Explicit retention and removal.
  auto removed = ck->Retain(1);
  ASSERT_OK(removed);
  EXPECT_EQ(*removed, 1u);
  ASSERT_OK(ck->Remove("step-5"));
  EXPECT_CODE(ck->Latest(), kNotFound);
  // With every tag removed, sequences start again at 1.
  ASSERT_OK(SaveTag(*ck, "step-6"));
  EXPECT_EQ(*ck->Latest(), "step-6");
}

// What kills between publish and retention can leave (here 6 tags under keep-last 4, saved
// with retention off): the next Begin applies retention before anything is saved, so its
// publish finds keep_last tags and at most keep_last + 1 are ever listed; the commit's own
// retention then removes every excess tag, not one.
TEST_F(CheckpointTest, BeginRemovesTheTagsAnInterruptedRetentionLeft) {
  {
    auto all = Open();
    for (int s = 1; s <= 6; ++s) ASSERT_OK(SaveTag(*all, "step-" + std::to_string(s)));
  }
  CheckpointOptions co;
  co.keep_last = 4;
  auto ck = Open(co);
  ASSERT_EQ(ck->List()->size(), 6u);
  {
    auto save = ck->Begin("step-7");
    ASSERT_OK(save);
    auto tags = ck->List();
    ASSERT_OK(tags);
    ASSERT_EQ(tags->size(), 4u) << "Begin left more than keep_last tags before the publish";
    EXPECT_EQ(tags->front().tag, "step-3");
    for (const char* gone : {"step-1", "step-2"}) {
      EXPECT_CODE(engine_->Stat(std::string("checkpoints/data/") + gone + "/r0/model"), kNotFound);
    }
    for (const char* name : {"r0/model", "r0/optim"}) {
      ASSERT_OK((*save)->Save(name, Content("step-7", name)));
    }
    ASSERT_OK((*save)->Commit("{}").Wait());
  }
  auto tags = ck->List();
  ASSERT_OK(tags);
  ASSERT_EQ(tags->size(), 4u);
  EXPECT_EQ(tags->front().tag, "step-4");
  EXPECT_EQ(tags->back().tag, "step-7");
  for (const TagInfo& t : *tags) ExpectLoads(*ck, t.tag);
  auto data = engine_->List("checkpoints/data", {});
  ASSERT_OK(data);
  EXPECT_EQ(data->entries.size(), 4u);

  // A commit's retention removes every tag beyond keep_last at once (here 3: 7 tags listed).
  {
    auto all = Open();
    for (int s = 8; s <= 10; ++s) ASSERT_OK(SaveTag(*all, "step-" + std::to_string(s)));
  }
  ASSERT_EQ(ck->List()->size(), 7u);
  auto removed = ck->Retain(4);
  ASSERT_OK(removed);
  EXPECT_EQ(*removed, 3u);
  EXPECT_EQ(ck->List()->front().tag, "step-7");
}

// Retention unpublishes every excess tag before it removes any blob: at the instant in between
// (where a kill may land) the listed tags are the kept ones, each whole, and the removed tags'
// blobs are still there (data without a manifest, for Begin to collect).
TEST_F(CheckpointTest, RetentionRemovesEveryManifestBeforeAnyBlob) {
  auto ck = Open();
  for (int s = 1; s <= 5; ++s) ASSERT_OK(SaveTag(*ck, "step-" + std::to_string(s)));
  bool hit = false;
  std::vector<std::string> listed;
  int blobs_present = 0;
  SetCommitHookForTesting([&](CommitPoint p, Engine&, std::string_view) {
    if (p != CommitPoint::kUnpublished) return;
    hit = true;
    auto tags = ck->List();
    ASSERT_OK(tags);
    for (const TagInfo& t : *tags) listed.push_back(t.tag);
    for (int s = 1; s <= 5; ++s) {
      for (const char* name : {"r0/model", "r0/optim"}) {
        std::string path = "checkpoints/data/step-" + std::to_string(s) + "/" + name;
        if (engine_->Stat(path).ok()) blobs_present++;
      }
    }
  });
  auto removed = ck->Retain(2);
  SetCommitHookForTesting(nullptr);
  ASSERT_OK(removed);
  EXPECT_EQ(*removed, 3u);
  ASSERT_TRUE(hit);
  EXPECT_EQ(listed, (std::vector<std::string>{"step-4", "step-5"}));
  EXPECT_EQ(blobs_present, 10) << "a blob went before every excess manifest was gone";
  for (int s = 1; s <= 3; ++s) {
    EXPECT_CODE(engine_->Stat("checkpoints/data/step-" + std::to_string(s) + "/r0/model"),
                kNotFound);
  }
  ExpectLoads(*ck, "step-4");
  ExpectLoads(*ck, "step-5");
}

TEST_F(CheckpointTest, AsyncSaveThroughAPoolSmallerThanTheState) {
  CheckpointOptions co;
  co.async = true;
  co.staging_bytes = 1 << 20;  // the blobs are 1..2 MiB each: Save must recycle the pool
  auto ck = Open(co);
  SaveHandle first;
  {
    auto save = ck->Begin("a-1");
    ASSERT_OK(save);
    for (const char* name : {"r0/model", "r0/optim"}) {
      auto data = Content("a-1", name);
      ASSERT_OK((*save)->Save(name, data));
      std::fill(data.begin(), data.end(), std::byte{0});  // the caller's buffer is free on return
    }
    first = (*save)->Commit("{}");
  }  // the save object may go away before the background commit finished
  // The next Begin waits for the previous save.
  ASSERT_OK(SaveTag(*ck, "a-2"));
  EXPECT_TRUE(first.done());
  ASSERT_OK(first.Wait());
  EXPECT_GT(first.duration().count(), 0);
  ExpectLoads(*ck, "a-1");
  ExpectLoads(*ck, "a-2");
  // A failure in the background is reported by the handle, and nothing is published.
  auto save = ck->Begin("a-3");
  ASSERT_OK(save);
  ASSERT_OK((*save)->Save("r0/model", Content("a-3", "r0/model")));
  ASSERT_OK(engine_->Put("checkpoints/data/a-3/r0/optim", "taken"));  // a name clash
  EXPECT_CODE((*save)->Save("r0/optim", Content("a-3", "r0/optim")), kAlreadyExists);
  // A clash on a small blob too: the taken object keeps its bytes.
  ASSERT_OK(engine_->Put("checkpoints/data/a-3/r0/small", "taken"));
  EXPECT_CODE((*save)->Save("r0/small", "12345678"), kAlreadyExists);
  ASSERT_OK((*save)->Save("r0/other", "x"));
  SaveHandle h = (*save)->Commit("{}");
  ASSERT_OK(h.Wait());  // the clashes were refused at Save; the rest commits
  auto m = ck->GetManifest("a-3");
  ASSERT_OK(m);
  EXPECT_EQ(m->blobs.size(), 2u);
  std::string small(16, '\0');
  auto n = engine_->Read("checkpoints/data/a-3/r0/small", 0,
                         std::as_writable_bytes(std::span<char>(small.data(), small.size())));
  ASSERT_OK(n);
  EXPECT_EQ(small.substr(0, *n), "taken");
  // The pool went back whole: the next save stages through all of it.
  ASSERT_OK(SaveTag(*ck, "a-4"));
  ExpectLoads(*ck, "a-4");
}

// A blob gathered from many buffers (the shape of a state dict's tensors) is stored as their
// concatenation, in sync mode and through an async pool smaller than the blob, with empty
// pieces and pieces straddling staging regions; the manifest CRC covers the whole blob.
TEST_F(CheckpointTest, GatheredBlobIsTheConcatenationOfItsPieces) {
  for (bool async : {false, true}) {
    CheckpointOptions co;
    co.async = async;
    co.staging_bytes = 1u << 20;
    auto ck = Open(co);
    ASSERT_NE(ck, nullptr);
    std::vector<std::vector<std::byte>> parts;
    for (size_t n : {size_t{0}, size_t{1}, size_t{700000}, size_t{0}, size_t{3}, size_t{1500000}}) {
      parts.push_back(Content("gather", std::to_string(parts.size()), n));
    }
    std::vector<std::span<const std::byte>> spans(parts.begin(), parts.end());
    std::vector<std::byte> whole;
    for (auto& p : parts) whole.insert(whole.end(), p.begin(), p.end());
    const std::string tag = async ? "async" : "sync";
    auto save = ck->Begin(tag);
    ASSERT_OK(save);
    ASSERT_OK((*save)->Save("r0/tensors", spans));
    ASSERT_OK((*save)->Save("r0/empty", std::span<const std::span<const std::byte>>()));
    ASSERT_OK((*save)->Commit().Wait());
    auto m = ck->GetManifest(tag);
    ASSERT_OK(m);
    ASSERT_NE(m->Find("r0/tensors"), nullptr);
    EXPECT_EQ(m->Find("r0/tensors")->size, whole.size());
    EXPECT_EQ(m->Find("r0/empty")->size, 0u);
    std::vector<std::byte> got(whole.size());
    ASSERT_OK(ck->Load(*m, "r0/tensors", got));  // verifies the manifest CRC of the whole
    EXPECT_EQ(got, whole) << tag;
  }
}

// A handle that was never given a save (a variable declared before the first Commit) must not
// block its waiter forever: it answers FailedPrecondition at once.
TEST(SaveHandle, DefaultConstructedWaitReturnsAtOnce) {
  auto answer = std::make_shared<std::promise<Status>>();
  std::future<Status> got = answer->get_future();
  SaveHandle h;
  EXPECT_TRUE(h.done());
  EXPECT_EQ(h.duration(), std::chrono::nanoseconds(0));
  // In a detached thread: were Wait to block, the test fails instead of hanging.
  std::thread([h, answer] { answer->set_value(h.Wait()); }).detach();
  ASSERT_EQ(got.wait_for(std::chrono::seconds(5)), std::future_status::ready)
      << "Wait() on a default-constructed SaveHandle blocked";
  Status s = got.get();
  EXPECT_CODE(s, kFailedPrecondition);
  EXPECT_NE(s.message().find("no save"), std::string::npos) << s;
  EXPECT_CODE(h.Wait(), kFailedPrecondition);  // the same on every call
  SaveHandle copy = h;
  EXPECT_CODE(copy.Wait(), kFailedPrecondition);
}

// The background writer's side of a StagingPool: takes `count` regions from `q` in order,
// checks each still holds the byte it was filled with, and gives it back.
using Staged = std::deque<std::pair<std::span<std::byte>, uint8_t>>;
std::thread RingConsumer(StagingPool& pool, std::mutex& mu, Staged& q, int count,
                         std::atomic<bool>& bad) {
  return std::thread([&pool, &mu, &q, count, &bad] {
    for (int i = 0; i < count; ++i) {
      std::pair<std::span<std::byte>, uint8_t> item;
      for (;;) {
        std::lock_guard lk(mu);
        if (!q.empty()) {
          item = q.front();
          q.pop_front();
          break;
        }
      }
      for (std::byte b : item.first) {
        if (b != static_cast<std::byte>(item.second)) bad = true;  // overwritten while held
      }
      pool.Release(item.first);
    }
  });
}

TEST(StagingPool, RegionsNeverOverlapAndTheRingWraps) {
  StagingPool pool(64 << 10);
  std::mutex mu;
  Staged q;
  std::atomic<bool> bad{false};
  std::thread consumer = RingConsumer(pool, mu, q, 2000, bad);
  for (int i = 0; i < 2000; ++i) {
    uint64_t n = 1 + (i * 7919) % 40000;
    auto r = pool.Acquire(n);
    ASSERT_EQ(r.size(), n);
    std::fill(r.begin(), r.end(), static_cast<std::byte>(i));
    std::lock_guard lk(mu);
    q.emplace_back(r, static_cast<uint8_t>(i));
  }
  consumer.join();
  EXPECT_FALSE(bad);
}

TEST(StagingPool, RegionsStartAtTheAskedPhaseWithinAPageAndStillNeverOverlap) {
  const uint64_t cap = 64 << 10;
  StagingPool pool(cap);
  std::mutex mu;
  Staged q;
  std::atomic<bool> bad{false};
  std::thread consumer = RingConsumer(pool, mu, q, 2000, bad);
  std::mt19937_64 rng(5);
  int at_phase = 0;
  for (int i = 0; i < 2000; ++i) {
    const uint64_t n = 1 + rng() % 40000;
    const uint64_t phase = rng() % (2 * StagingPool::kPage);  // taken mod the page
    auto r = pool.Acquire(n, phase);
    ASSERT_EQ(r.size(), n);
    const uint64_t got = reinterpret_cast<uintptr_t>(r.data()) % StagingPool::kPage;
    if (phase % StagingPool::kPage + n <= cap) {
      ASSERT_EQ(got, phase % StagingPool::kPage) << "region " << i << " of " << n;
      ++at_phase;
    } else {
      ASSERT_EQ(got, 0u) << "a region that fits only at phase 0";
    }
    std::fill(r.begin(), r.end(), static_cast<std::byte>(i));
    std::lock_guard lk(mu);
    q.emplace_back(r, static_cast<uint8_t>(i));
  }
  consumer.join();
  EXPECT_FALSE(bad);
  EXPECT_GT(at_phase, 1900);
  // A region as large as the pool fits (at phase 0) however it is asked for.
  auto whole = pool.Acquire(cap, 100);
  EXPECT_EQ(whole.size(), cap);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(whole.data()) % StagingPool::kPage, 0u);
  pool.Release(whole);
}

TEST(Manifest, RoundTripAndDamageIsCorruption) {
  CheckpointManifest m;
  m.tag = "step-9";
  m.sequence = 9;
  m.commit_time_ns = 123;
  m.world_size = 4;
  m.metadata = "{\"a\": \"\xc3\xa9\"}";
  m.blobs = {{"a", 1, 2, 0}, {"b/c", 1ull << 40, 0xffffffffu, 3}};
  auto json = EncodeManifest(m);
  ASSERT_OK(json);
  auto d = DecodeManifest(*json, "x");
  ASSERT_OK(d);
  EXPECT_EQ(d->tag, m.tag);
  EXPECT_EQ(d->metadata, m.metadata);
  EXPECT_EQ(d->blobs.size(), 2u);
  EXPECT_EQ(d->blobs[1].size, 1ull << 40);
  EXPECT_EQ(d->blobs[1].crc32c, 0xffffffffu);
  for (size_t cut = 0; cut < json->size(); cut += 7) {
    EXPECT_CODE(DecodeManifest(json->substr(0, cut), "x"), kCorruption) << cut;
  }
  for (std::string bad : std::vector<std::string>{"[]", "{\"format\":\"other\"}", "null",
                          R"({"format":"shoal-checkpoint/1","tag":"t","sequence":-1,"commit_time_ns":0,"world_size":1,"metadata":"","blobs":[]})",
                          R"({"format":"shoal-checkpoint/1","tag":"t","sequence":1,"commit_time_ns":0,"world_size":1,"metadata":"","blobs":[{"name":"a","size":1,"crc32c":4294967296,"rank":0}]})"}) {
    EXPECT_CODE(DecodeManifest(bad, "x"), kCorruption) << bad;
  }
  m.metadata = "\xff";
  EXPECT_CODE(EncodeManifest(m), kInvalidArgument);
  EXPECT_EQ(ManifestName(12, "t"), "0000000000000012.t");
  auto t = ParseManifestName("0000000000000012.t");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->sequence, 12u);
  EXPECT_FALSE(ParseManifestName("12.t").has_value());
  EXPECT_FALSE(ParseManifestName("000000000000001x.t").has_value());
}

// Text is Unicode's well-formed UTF-8 (Table 3-7), the sequences the manifest's JSON encoder
// takes: each boundary on both sides.
TEST(Manifest, TextIsWellFormedUtf8) {
  for (std::string ok : {"", "plain", "\x7f", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf",
                         "\xee\x80\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",
                         "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"}) {
    EXPECT_TRUE(IsUtf8(ok)) << ok;
  }
  for (std::string bad : {"\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xc2", "\xc2\x7f", "\xc2\xc0",
                          "\xe0\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf", "\xe1\x80",
                          "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf0\x90\x80",
                          "\xff", "ok\xfe", "\xc3\xa9\xa9"}) {
    EXPECT_FALSE(IsUtf8(bad)) << bad;
    CheckpointManifest m;
    m.tag = "t";
    m.metadata = bad;
    EXPECT_CODE(EncodeManifest(m), kInvalidArgument);
  }
}

}  // namespace
}  // namespace shoal
