// Stat and StatBatch in a world (engine/cluster_stat.cc): batched lookups grouped by metadata
// owner, and the lease on other members' answers (engine/stat_cache.h, Engine::Stat's
// contract): strict for a rank's own changes, at most a lease behind other ranks' removes, and
// never a stale byte read.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include "engine/protocol.h"
#include "engine/stat_cache.h"
#include "tests/engine/inproc_world.h"
#include "tests/test_util.h"

namespace shoal {
namespace {

using engine::protocol::Op;
using engine::protocol::Wire;
using testing::InProcWorld;
using testing::Pattern;
using testing::TempDir;
using transport::FaultAction;
using transport::FaultRule;

constexpr uint32_t kChunk = testing::kTestChunk;

class StatWorld : public ::testing::Test {
 protected:
  void Open(uint32_t members, uint32_t replicas, std::chrono::milliseconds lease) {
    std::vector<std::string> nodes;
    for (uint32_t i = 0; i < members; ++i) nodes.push_back("n" + std::to_string(i));
    world_ = std::make_unique<InProcWorld>(dir_, nodes, replicas, 20261206);
    world_->set_stat_lease(lease);
    ASSERT_OK(world_->Start(std::chrono::milliseconds(2000)));
  }
  engine::Cluster& M(uint32_t r) { return world_->at(r); }
  Status Put(uint32_t r, const std::string& path, const std::vector<std::byte>& data) {
    return world_->Put(r, path, data);
  }
  // A name whose metadata member `r` does not hold (so its Stat asks another member).
  std::string RemoteName(uint32_t r, const std::string& prefix) {
    for (int i = 0;; ++i) {
      std::string p = prefix + std::to_string(i);
      const auto& w = M(r).MetadataWriters(p);
      if (std::find(w.begin(), w.end(), r) == w.end()) return p;
    }
  }
  uint64_t Delivered(Op op) { return world_->net().delivered()[Wire(op)]; }

  TempDir dir_;
  std::unique_ptr<InProcWorld> world_;
};

TEST_F(StatWorld, ABatchAnswersEveryNameAsStatDoesInOneCallPerOwner) {
  Open(4, 2, std::chrono::milliseconds(0));
  std::map<std::string, uint64_t> sizes;
  for (uint32_t i = 0; i < 120; ++i) {
    // inline, one chunk, several chunks; written by every member
    const uint64_t size = i % 3 == 0 ? 10 + i : i % 3 == 1 ? kChunk / 2 + i : 2 * kChunk + i;
    const std::string path = "d" + std::to_string(i % 5) + "/o" + std::to_string(i);
    ASSERT_OK(Put(i % 4, path, Pattern(size, i)));
    sizes[path] = size;
  }
  std::vector<StatRequest> reqs;
  for (const auto& [path, size] : sizes) reqs.push_back({path, {}, {}});
  for (int i = 0; i < 30; ++i) reqs.push_back({"d1/missing" + std::to_string(i), {}, {}});
  reqs.push_back({"d1", {}, {}});          // a directory: NotFound, as for Stat
  reqs.push_back({"bad//name", {}, {}});   // InvalidArgument
  reqs.push_back({"", {}, {}});            // the root: InvalidArgument
  for (uint32_t r = 0; r < 4; ++r) {
    const uint64_t calls = Delivered(Op::kMetaGetMany), gets = Delivered(Op::kMetaGet);
    ASSERT_OK(M(r).StatBatch(reqs));
    // One call per other member at most (every name's first writer; the missing names' second
    // writers in a second round), never a lookup per name.
    EXPECT_LE(Delivered(Op::kMetaGetMany) - calls, 2u * 3u) << "member " << r;
    EXPECT_EQ(Delivered(Op::kMetaGet) - gets, 0u) << "member " << r;
    for (const StatRequest& q : reqs) {
      auto one = M(r).Stat(q.path);
      ASSERT_EQ(q.status.code(), one.status().code()) << q.path << ": " << q.status;
      if (!one.ok()) continue;
      EXPECT_EQ(q.info.path, q.path);
      EXPECT_EQ(q.info.size, sizes.at(q.path));
      EXPECT_EQ(q.info.size, one->size);
      EXPECT_EQ(q.info.num_chunks, one->num_chunks);
      EXPECT_EQ(q.info.is_inline, one->is_inline);
      EXPECT_EQ(q.info.seal_time_ns, one->seal_time_ns);
    }
  }
  EXPECT_CODE(reqs[120].status, kNotFound);
  EXPECT_CODE(reqs[150].status, kNotFound);
  EXPECT_CODE(reqs[151].status, kInvalidArgument);
  EXPECT_CODE(reqs[152].status, kInvalidArgument);
}

TEST_F(StatWorld, ABatchOfMoreNamesThanOneRequestHoldsIsSplit) {
  Open(2, 1, std::chrono::milliseconds(0));
  std::vector<StatRequest> reqs;
  for (uint32_t i = 0; i < 9000; ++i) {
    reqs.push_back({"many/o" + std::to_string(i), {}, {}});
    if (i % 1000 == 0) {
      ASSERT_OK(Put(0, reqs.back().path, Pattern(7, i)));
    }
  }
  const uint64_t calls = Delivered(Op::kMetaGetMany);
  ASSERT_OK(M(0).StatBatch(reqs));
  // ~4,500 names owned by member 1: two requests of at most 4,096.
  EXPECT_GE(Delivered(Op::kMetaGetMany) - calls, 2u);
  EXPECT_LE(Delivered(Op::kMetaGetMany) - calls, 3u);
  for (uint32_t i = 0; i < 9000; ++i) {
    if (i % 1000 == 0) {
      ASSERT_OK(reqs[i].status) << reqs[i].path;
      EXPECT_EQ(reqs[i].info.size, 7u);
    } else {
      EXPECT_CODE(reqs[i].status, kNotFound) << reqs[i].path;
    }
  }
}

TEST_F(StatWorld, ABatchAsksTheNextOwnerWhenOneIsDownOrItsReplyIsLost) {
  Open(3, 2, std::chrono::milliseconds(0));
  std::vector<StatRequest> reqs;
  for (uint32_t i = 0; i < 60; ++i) {
    reqs.push_back({"f/o" + std::to_string(i), {}, {}});
    ASSERT_OK(Put(i % 3, reqs.back().path, Pattern(100 + i, i)));
  }
  // Member 2's reply to the batched lookup is lost (member 0 times out): its names go to
  // their other owner.
  world_->net().AddRule(FaultRule{2, Wire(Op::kMetaGetMany), 1, FaultAction::kDropReply});
  ASSERT_OK(M(0).StatBatch(reqs));
  for (uint32_t i = 0; i < 60; ++i) {
    ASSERT_OK(reqs[i].status) << reqs[i].path;
    EXPECT_EQ(reqs[i].info.size, 100u + i);
  }
  // Member 2 dies: the same.
  world_->net().Kill(2);
  ASSERT_OK(M(1).StatBatch(reqs));
  for (uint32_t i = 0; i < 60; ++i) {
    ASSERT_OK(reqs[i].status) << reqs[i].path;
    EXPECT_EQ(reqs[i].info.size, 100u + i);
  }
}

TEST_F(StatWorld, StatLagsAnotherRanksRemoveByAtMostTheLeaseAndNeverReadsStaleBytes) {
  const auto lease = std::chrono::milliseconds(400);
  Open(3, 1, lease);
  // Member 1 reads a name whose metadata it does not hold; member 0 removes it.
  const std::string inl = RemoteName(1, "lease/inline"), big = RemoteName(1, "lease/big");
  ASSERT_OK(Put(0, inl, Pattern(50, 1)));
  ASSERT_OK(Put(0, big, Pattern(kChunk + 5, 2)));
  auto looked_up = std::chrono::steady_clock::now();
  ASSERT_OK(M(1).Stat(inl));
  std::vector<StatRequest> reqs = {{big, {}, {}}};
  ASSERT_OK(M(1).StatBatch(reqs));
  ASSERT_OK(reqs[0].status);
  const uint64_t gets = Delivered(Op::kMetaGet);
  ASSERT_OK(M(1).Stat(big));  // within the lease: no round trip
  EXPECT_EQ(Delivered(Op::kMetaGet), gets);

  ASSERT_OK(M(0).Remove(big));
  ASSERT_OK(M(0).Remove(inl));
  ASSERT_OK(Put(0, inl, Pattern(70, 3)));  // a new object under the inline name
  // The remover sees its own change at once; member 2, which never looked, too.
  EXPECT_CODE(M(0).Stat(big), kNotFound);
  EXPECT_CODE(M(2).Stat(big), kNotFound);
  // Member 1 may still see the old objects until its lease ends...
  if (std::chrono::steady_clock::now() - looked_up < lease - std::chrono::milliseconds(50)) {
    auto stale = M(1).Stat(inl);
    ASSERT_OK(stale);
    EXPECT_EQ(stale->size, 50u) << "served from the lease";
  }
  // ...but its reads never return the removed objects' bytes: NotFound, or the new object.
  std::vector<std::byte> got(kChunk + 5);
  ReadRequest rb{big, 0, got, {}, 0};
  ASSERT_OK(M(1).ReadBatch({&rb, 1}));
  EXPECT_CODE(rb.status, kNotFound);
  std::vector<std::byte> small(100);
  ReadRequest ri{inl, 0, small, {}, 0};
  ASSERT_OK(M(1).ReadBatch({&ri, 1}));
  ASSERT_OK(ri.status);
  ASSERT_EQ(ri.bytes_read, 70u);
  small.resize(70);
  EXPECT_TRUE(small == Pattern(70, 3)) << "a read of the inline name returned the old bytes";
  // After the lease: the truth.
  std::this_thread::sleep_until(looked_up + lease + std::chrono::milliseconds(20));
  EXPECT_CODE(M(1).Stat(big), kNotFound);
  auto fresh = M(1).Stat(inl);
  ASSERT_OK(fresh);
  EXPECT_EQ(fresh->size, 70u);
  reqs = {{big, {}, {}}, {inl, {}, {}}};
  ASSERT_OK(M(1).StatBatch(reqs));
  EXPECT_CODE(reqs[0].status, kNotFound);
  EXPECT_EQ(reqs[1].info.size, 70u);
}

TEST_F(StatWorld, AMembersOwnRemoveAndSealAreSeenByItsNextStat) {
  Open(3, 1, std::chrono::milliseconds(60000));
  const std::string p = RemoteName(1, "own/o");
  ASSERT_OK(Put(1, p, Pattern(3000, 1)));
  ASSERT_OK(M(1).Stat(p));  // cached for a minute
  ASSERT_OK(M(1).Remove(p));
  EXPECT_CODE(M(1).Stat(p), kNotFound);
  std::vector<StatRequest> reqs = {{p, {}, {}}};
  ASSERT_OK(M(1).StatBatch(reqs));
  EXPECT_CODE(reqs[0].status, kNotFound);
  ASSERT_OK(Put(1, p, Pattern(4000, 2)));
  auto again = M(1).Stat(p);
  ASSERT_OK(again);
  EXPECT_EQ(again->size, 4000u);
  // NotFound is never kept: another member's new object is seen at once.
  const std::string q = RemoteName(1, "own/q");
  EXPECT_CODE(M(1).Stat(q), kNotFound);
  ASSERT_OK(Put(2, q, Pattern(10, 3)));
  ASSERT_OK(M(1).Stat(q));
}

// What a rank did before a collective is seen by every rank's Stat after it, whatever the lease.
TEST_F(StatWorld, ACollectiveEndsTheLease) {
  Open(3, 1, std::chrono::milliseconds(60000));
  const std::string p = RemoteName(1, "coll/o"), q = RemoteName(1, "coll/q");
  ASSERT_OK(Put(0, p, Pattern(10, 1)));
  ASSERT_OK(Put(0, q, Pattern(10, 2)));
  ASSERT_OK(M(1).Stat(p));
  ASSERT_OK(M(1).Stat(q));
  ASSERT_OK(M(0).Remove(p));
  ASSERT_OK(M(0).Remove(q));
  ASSERT_OK(M(1).Stat(p)) << "within the lease, before any collective";
  auto collective = [&](bool gather) {
    std::vector<std::thread> ts;
    std::vector<Status> st(3);
    for (uint32_t r = 0; r < 3; ++r) {
      ts.emplace_back([&, r] {
        st[r] = gather ? M(r).AllGather(std::vector<std::byte>(3)).status() : M(r).Barrier();
      });
    }
    for (auto& t : ts) t.join();
    for (const Status& s : st) ASSERT_OK(s);
  };
  collective(false);
  EXPECT_CODE(M(1).Stat(p), kNotFound);
  ASSERT_OK(Put(0, p, Pattern(10, 3)));
  ASSERT_OK(M(1).Stat(p));
  ASSERT_OK(M(0).Remove(p));
  collective(true);
  EXPECT_CODE(M(1).Stat(p), kNotFound);
  EXPECT_CODE(M(1).Stat(q), kNotFound);
}

TEST_F(StatWorld, WithoutALeaseEveryStatAsksTheOwner) {
  Open(3, 1, std::chrono::milliseconds(0));
  const std::string p = RemoteName(1, "strict/o");
  ASSERT_OK(Put(0, p, Pattern(10, 1)));
  ASSERT_OK(M(1).Stat(p));
  ASSERT_OK(M(0).Remove(p));
  EXPECT_CODE(M(1).Stat(p), kNotFound);
}

// A member's Stat that raced with its own Remove (looked up before the Remove ended) must not
// bring the removed object back into the lease.
TEST_F(StatWorld, AStatRacingTheMembersOwnRemoveDoesNotReviveIt) {
  Open(2, 1, std::chrono::milliseconds(60000));
  for (int round = 0; round < 10; ++round) {
    const std::string p = RemoteName(0, "race" + std::to_string(round) + "/o");
    ASSERT_OK(Put(0, p, Pattern(20, round)));
    std::atomic<bool> stop{false};
    std::thread statter([&] {
      while (!stop.load()) (void)M(0).Stat(p);
    });
    ASSERT_OK(M(0).Remove(p));
    stop = true;
    statter.join();
    EXPECT_CODE(M(0).Stat(p), kNotFound) << "round " << round;
  }
}

// The cache alone, on explicit clocks.
TEST(StatCache, KeepsAnEntryForTheLeaseFromItsLookupAndNotAcrossAForget) {
  using engine::StatCache;
  const auto t0 = StatCache::Clock::now();
  StatCache cache(std::chrono::milliseconds(100), 1000);
  ObjectInfo info;
  info.path = "a/b";
  info.size = 5;
  cache.Put(info, t0);
  ASSERT_TRUE(cache.Get("a/b", t0 + std::chrono::milliseconds(99)).has_value());
  EXPECT_EQ(cache.Get("a/b", t0 + std::chrono::milliseconds(99))->size, 5u);
  EXPECT_FALSE(cache.Get("a/b", t0 + std::chrono::milliseconds(100)).has_value());
  EXPECT_FALSE(cache.Get("a/b", t0).has_value()) << "an expired entry is dropped";
  // A lookup sent before this member's Forget of the name is not recorded after it.
  const auto before = StatCache::Clock::now();
  cache.Forget("a/b");
  cache.Put(info, before);
  EXPECT_FALSE(cache.Get("a/b", before).has_value());
  cache.Put(info, StatCache::Clock::now());
  EXPECT_TRUE(cache.Get("a/b").has_value());
  cache.Forget("a/b");
  EXPECT_FALSE(cache.Get("a/b").has_value());
  // ForgetAll: every entry, and every lookup sent before it.
  info.path = "c";
  const auto sent = StatCache::Clock::now();
  cache.Put(info, sent);
  ASSERT_TRUE(cache.Get("c").has_value());
  cache.ForgetAll();
  EXPECT_FALSE(cache.Get("c").has_value());
  cache.Put(info, sent);
  EXPECT_FALSE(cache.Get("c").has_value());
  cache.Put(info, StatCache::Clock::now());
  EXPECT_TRUE(cache.Get("c").has_value());
}

TEST(StatCache, StaysWithinItsCapacityAndKeepsNothingWithoutALease) {
  using engine::StatCache;
  StatCache cache(std::chrono::milliseconds(60000), 160);
  ObjectInfo info;
  for (int i = 0; i < 10000; ++i) {
    info.path = "n" + std::to_string(i);
    cache.Put(info, StatCache::Clock::now());
  }
  EXPECT_LE(cache.size(), 160u);
  EXPECT_GT(cache.size(), 0u);
  StatCache none(std::chrono::milliseconds(0), 160);
  none.Put(info, StatCache::Clock::now());
  EXPECT_FALSE(none.Get(info.path).has_value());
  EXPECT_EQ(none.size(), 0u);
}

}  // namespace
}  // namespace shoal
