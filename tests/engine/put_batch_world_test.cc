// PutBatch in a world (engine/cluster_put_batch.cc): each request's own outcome, every object
// readable from every member, a holder or a metadata owner failing in the middle of a batch
// (only the objects it was part of fail, and none of them is left visible), the world of one's
// single transaction, and objects with their own replica count (CreateOptions::replicas).
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

#include "engine/protocol.h"
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

constexpr uint32_t kChunk = testing::kTestChunk;

class PutBatchWorld : public ::testing::Test {
 protected:
  void Open(uint32_t members, uint32_t replicas) {
    std::vector<std::string> nodes;
    for (uint32_t i = 0; i < members; ++i) nodes.push_back("n" + std::to_string(i));
    world_ = std::make_unique<InProcWorld>(dir_, nodes, replicas, 20261207);
    ASSERT_OK(world_->Start(std::chrono::milliseconds(1000)));
  }
  engine::Cluster& M(uint32_t r) { return world_->at(r); }

  // A batch of `n` objects below `dir` of assorted sizes (empty, inline, a block, a chunk).
  struct Batch {
    std::vector<std::vector<std::byte>> data;
    std::vector<PutRequest> reqs;
  };
  static Batch MakeBatch(const std::string& dir, uint32_t n, uint64_t seed) {
    static constexpr uint64_t kSizes[] = {0, 100, 3000, 4096, 20000, kChunk};
    Batch b;
    b.data.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      b.data.push_back(Pattern(kSizes[i % 6], seed * 1000 + i));
      b.reqs.push_back(PutRequest{dir + "/o" + std::to_string(i), b.data.back(), {}});
    }
    return b;
  }
  void ExpectReadable(uint32_t r, const PutRequest& req) {
    std::vector<std::byte> got(req.data.size() + 1);
    ReadRequest rr{req.path, 0, got, {}, 0};
    ASSERT_OK(M(r).ReadBatch({&rr, 1}));
    ASSERT_OK(rr.status) << req.path << " through member " << r;
    ASSERT_EQ(rr.bytes_read, req.data.size()) << req.path;
    EXPECT_TRUE(std::equal(req.data.begin(), req.data.end(), got.begin())) << req.path;
  }

  TempDir dir_;
  std::unique_ptr<InProcWorld> world_;
};

TEST_F(PutBatchWorld, EveryObjectGetsItsOwnOutcomeAndIsReadEverywhere) {
  Open(4, 2);
  ASSERT_OK(world_->Put(2, "b/o7", Pattern(10, 1)));  // taken before the batch
  Batch b = MakeBatch("b", 120, 1);
  auto big = Pattern(kChunk + 1, 2);
  b.reqs.push_back(PutRequest{"b/big", big, {}});         // more than a chunk
  b.reqs.push_back(PutRequest{"b/o3", b.data[3], {}});    // twice in the batch
  b.reqs.push_back(PutRequest{"b//bad", b.data[1], {}});  // a bad name
  auto before = world_->net().delivered();
  ASSERT_OK(M(1).PutBatch(b.reqs, {}));
  for (size_t i = 0; i < 120; ++i) {
    if (i == 7) {
      EXPECT_CODE(b.reqs[i].status, kAlreadyExists);
      continue;
    }
    ASSERT_OK(b.reqs[i].status) << b.reqs[i].path;
  }
  EXPECT_CODE(b.reqs[120].status, kInvalidArgument);
  EXPECT_CODE(b.reqs[121].status, kAlreadyExists);
  EXPECT_CODE(b.reqs[122].status, kInvalidArgument);
  // One call per holder and per owner, not per object.
  auto sent = world_->net().delivered();
  for (auto& [op, n] : before) sent[op] -= n;
  EXPECT_GT(sent[Wire(Op::kChunkPutMany)], 0u);
  EXPECT_LE(sent[Wire(Op::kChunkPutMany)], 3u);
  EXPECT_LE(sent[Wire(Op::kMetaInsertMany)], 6u);  // primaries, then the others
  EXPECT_EQ(sent[Wire(Op::kChunkWrite)], 0u);
  EXPECT_EQ(sent[Wire(Op::kMetaInsert)], 0u);
  for (uint32_t r = 0; r < 4; ++r) {
    for (size_t i = 0; i < 120; ++i) {
      if (i != 7) ExpectReadable(r, b.reqs[i]);
    }
    ListOptions lo;
    lo.limit = 1000;
    auto page = M(r).List("b", lo);
    ASSERT_OK(page);
    EXPECT_EQ(page->entries.size(), 120u) << "member " << r;  // o7 counted once
  }
  // The world's replica count: two holders of every chunk, on distinct members.
  auto where = M(3).Locate("b/o5");
  ASSERT_OK(where);
  ASSERT_EQ(where->size(), 1u);
  EXPECT_EQ((*where)[0].size(), 2u);
  // The original o7 is untouched.
  auto info = M(0).Stat("b/o7");
  ASSERT_OK(info);
  EXPECT_EQ(info->size, 10u);
}

TEST_F(PutBatchWorld, AHolderDyingMidBatchFailsOnlyTheObjectsItHeld) {
  Open(4, 1);
  Batch b = MakeBatch("h", 200, 2);
  // Member 2 dies as its part of the bytes arrives.
  world_->net().AddRule({2, Wire(Op::kChunkPutMany), 1, FaultAction::kKillBefore});
  ASSERT_OK(M(0).PutBatch(b.reqs, {}));
  uint32_t ok = 0, failed = 0;
  for (const PutRequest& r : b.reqs) {
    if (r.status.ok()) {
      ++ok;
      ExpectReadable(0, r);
      continue;
    }
    ++failed;
    EXPECT_NE(r.status.message().find(r.path), std::string::npos) << r.status;
    // Not visible anywhere a live member can say.
    for (uint32_t m : {0u, 1u, 3u}) {
      auto st = M(m).Stat(r.path);
      EXPECT_FALSE(st.ok()) << r.path << " visible at member " << m << " after failing";
    }
  }
  EXPECT_GT(ok, 0u);
  EXPECT_GT(failed, 0u) << "member 2 held none of 200 objects";
}

TEST_F(PutBatchWorld, AMetadataOwnerDyingAfterItsInsertRollsItsObjectsBack) {
  Open(4, 2);
  Batch b = MakeBatch("m", 200, 3);
  // Member 3 takes its records as a second owner and dies before it answers: the writer cannot
  // know they are there, so those objects fail and their records at the primaries go.
  world_->net().AddRule({3, Wire(Op::kMetaInsertMany), 2, FaultAction::kKillAfter});
  ASSERT_OK(M(0).PutBatch(b.reqs, {}));
  uint32_t ok = 0, failed = 0;
  for (const PutRequest& r : b.reqs) {
    if (r.status.ok()) {
      ++ok;
      ExpectReadable(1, r);
      continue;
    }
    ++failed;
    for (uint32_t m : {0u, 1u, 2u}) {
      EXPECT_CODE(M(m).Stat(r.path), kNotFound) << r.path << " at member " << m;
    }
  }
  EXPECT_GT(ok, 0u);
  EXPECT_GT(failed, 0u);
}

TEST_F(PutBatchWorld, AWorldOfOneCommitsTheBatchOnceAndStillTellsEachOutcome) {
  Open(1, 1);
  Batch b = MakeBatch("one", 60, 4);
  ASSERT_OK(M(0).PutBatch(b.reqs, {}));
  for (const PutRequest& r : b.reqs) {
    ASSERT_OK(r.status) << r.path;
    ExpectReadable(0, r);
  }
  // A second batch where some names are taken: the single transaction is refused, and the
  // general path gives each object its outcome.
  Batch again = MakeBatch("one", 90, 5);
  ASSERT_OK(M(0).PutBatch(again.reqs, {}));
  for (size_t i = 0; i < again.reqs.size(); ++i) {
    if (i < 60) {
      EXPECT_CODE(again.reqs[i].status, kAlreadyExists) << again.reqs[i].path;
      ExpectReadable(0, b.reqs[i]);  // the first batch's bytes
    } else {
      ASSERT_OK(again.reqs[i].status);
      ExpectReadable(0, again.reqs[i]);
    }
  }
}

TEST_F(PutBatchWorld, AnObjectsOwnReplicaCountIsKeptByWritesBatchesAndRepair) {
  Open(4, 3);
  Batch b = MakeBatch("r1", 30, 6);
  ASSERT_OK(M(0).PutBatch(b.reqs, CreateOptions{.replicas = 1}));
  auto one = Pattern(3 * kChunk, 7);
  ASSERT_OK(M(1).Create("r1/striped", {.replicas = 1}));
  ASSERT_OK(M(1).Write("r1/striped", 0, one));
  ASSERT_OK(M(1).Seal("r1/striped"));
  ASSERT_OK(world_->Put(2, "r3/x", Pattern(2 * kChunk, 8)));
  auto holders = [&](const std::string& path) {
    auto where = M(2).Locate(path);
    EXPECT_OK(where);
    std::set<size_t> counts;
    if (where.ok()) {
      for (const auto& chunk : *where) counts.insert(chunk.size());
    }
    return counts;
  };
  for (const PutRequest& r : b.reqs) {
    ASSERT_OK(r.status);
    if (r.data.size() > 2048) {
      EXPECT_EQ(holders(r.path), std::set<size_t>{1}) << r.path;
    }
  }
  EXPECT_EQ(holders("r1/striped"), std::set<size_t>{1});
  EXPECT_EQ(holders("r3/x"), std::set<size_t>{3});
  // A repair does not raise them to the world's count.
  auto report = M(0).Repair("");
  ASSERT_OK(report);
  EXPECT_EQ(report->chunks_copied, 0u);
  EXPECT_EQ(holders("r1/striped"), std::set<size_t>{1});
  EXPECT_CODE(M(0).Create("r1/bad", {.replicas = 17}), kInvalidArgument);
}

// What each member holds, from its own store: every striped object of a directory exactly
// once over the world when it has one copy, local-first objects on their writer, nothing
// inline, nothing of a directory that only shares the prefix.
TEST_F(PutBatchWorld, LocalObjectsNameWhatEachMemberHoldsAndNothingElse) {
  Open(4, 2);
  Batch b = MakeBatch("held", 60, 9);
  ASSERT_OK(M(1).PutBatch(b.reqs, CreateOptions{.local_first = true, .replicas = 1}));
  Batch other = MakeBatch("held-not", 12, 10);
  ASSERT_OK(M(2).PutBatch(other.reqs, {}));
  std::map<std::string, uint64_t> want;
  for (const PutRequest& r : b.reqs) {
    ASSERT_OK(r.status);
    if (r.data.size() > 2048) want[r.path] = r.data.size();
  }
  std::map<std::string, uint64_t> seen;
  for (uint32_t m = 0; m < 4; ++m) {
    auto held = M(m).LocalObjects("held");
    ASSERT_OK(held);
    for (const LocalObject& o : *held) {
      EXPECT_EQ(m, 1u) << o.path << " held by member " << m << ", not its writer";
      EXPECT_TRUE(seen.emplace(o.path, o.bytes).second) << o.path << " twice";
    }
  }
  EXPECT_EQ(seen, want);
  auto all = M(2).LocalObjects("");
  ASSERT_OK(all);
  EXPECT_FALSE(all->empty()) << "member 2 holds none of its own batch";
  EXPECT_CODE(M(0).LocalObjects("/bad"), kInvalidArgument);
}

// Leases: one holder at a time over the whole world, whichever member asks; renewal, release
// only by the holder, expiry; the name's primary owner down: its next owner decides.
TEST_F(PutBatchWorld, ALeaseHasOneHolderWorldWideUntilReleasedOrRunOut) {
  Open(4, 2);
  const std::string name = "ds/c/sample-1";
  auto a = M(0).TryLease(name, 100, std::chrono::seconds(10));
  ASSERT_OK(a);
  EXPECT_TRUE(a->granted);
  for (uint32_t m = 1; m < 4; ++m) {
    auto b = M(m).TryLease(name, 200 + m, std::chrono::seconds(10));
    ASSERT_OK(b);
    EXPECT_FALSE(b->granted) << "member " << m;
    EXPECT_EQ(b->holder, 100u);
  }
  auto again = M(3).TryLease(name, 100, std::chrono::seconds(10));  // the holder, elsewhere
  ASSERT_OK(again);
  EXPECT_TRUE(again->granted);
  ASSERT_OK(M(2).ReleaseLease(name, 201));  // not the holder: nothing
  EXPECT_FALSE(M(1).TryLease(name, 201, std::chrono::seconds(10))->granted);
  ASSERT_OK(M(2).ReleaseLease(name, 100));
  EXPECT_TRUE(M(1).TryLease(name, 201, std::chrono::milliseconds(30))->granted);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_TRUE(M(2).TryLease(name, 202, std::chrono::seconds(10))->granted) << "did not run out";
  // Leases cost no disk: nothing was created.
  EXPECT_CODE(M(0).Stat(name), kNotFound);
  EXPECT_CODE(M(0).TryLease("../x", 1, std::chrono::seconds(1)), kInvalidArgument);
  // The primary owner of another name dies: its next owner grants, and keeps the holder.
  std::string other;
  for (int i = 0; other.empty(); ++i) {
    const std::string p = "ds/c/x" + std::to_string(i);
    if (M(0).MetadataOwners(p)[0] == 3) other = p;
  }
  world_->net().AddRule({3, Wire(Op::kLease), 1, FaultAction::kKillBefore});
  auto first = M(0).TryLease(other, 5, std::chrono::seconds(10));
  ASSERT_OK(first);
  EXPECT_TRUE(first->granted);
  auto second = M(1).TryLease(other, 6, std::chrono::seconds(10));
  ASSERT_OK(second);
  EXPECT_FALSE(second->granted);
  EXPECT_EQ(second->holder, 5u);
}

}  // namespace
}  // namespace shoal
