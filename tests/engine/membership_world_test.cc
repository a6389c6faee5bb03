// Versioned membership (engine/membership.h, docs/membership.md) in worlds of one process:
// sequences of jobs of different sizes over the same stores, members down and back, members
// declared lost, partial worlds one after another. After every step the invariants are checked
// against a model of what was acknowledged: every object whose Seal returned OK and that was not
// removed with OK is listed and reads back bit-exact; every object removed with OK is neither
// listed nor found.
#include <fmt/format.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <iterator>
#include <map>
#include <random>
#include <set>

#include "engine/protocol.h"
#include "tests/engine/inproc_world.h"
#include "tests/test_util.h"

namespace shoal {
namespace {

using testing::InProcWorld;
using testing::Pattern;
using testing::TempDir;

constexpr uint32_t kChunk = testing::kTestChunk;

uint64_t Seed() {
  const char* s = std::getenv("SHOAL_TEST_SEED");
  return s != nullptr ? std::strtoull(s, nullptr, 10) : 20261129;
}

class MembershipWorld : public ::testing::Test {
 protected:
  void SetUp() override {
    world_ = std::make_unique<InProcWorld>(dir_, std::vector<std::string>{"n0", "n1", "n2", "n3", "n4"},
                                           2, Seed());
    // No message is dropped here (kills end calls at once): a seal's fsyncs on a loaded CI
    // machine must not pass for a lost reply (a 400 ms deadline timed out a chunk commit once).
    world_->set_default_deadline(std::chrono::seconds(10));
  }
  engine::Cluster& M(uint32_t r) { return world_->at(r); }

  Status Put(uint32_t r, const std::string& path, std::vector<std::byte> data) {
    Status s = world_->Put(r, path, data);
    if (!s.ok()) return s;
    live_[path] = std::move(data);
    removed_.erase(path);
    return s;
  }
  // Objects of several sizes: inline, one chunk, several chunks.
  void PutSome(const std::string& prefix, int n) {
    for (int i = 0; i < n; ++i) {
      const size_t size = i % 3 == 0 ? 100 + i : (i % 3 == 1 ? kChunk + i : 3 * kChunk + i);
      ASSERT_OK(Put(i % world_->size(), "d/" + prefix + std::to_string(i),
                    Pattern(size, static_cast<uint8_t>(puts_++))));
    }
  }
  void Remove(uint32_t r, const std::string& path) {
    ASSERT_OK(M(r).Remove(path)) << path;
    live_.erase(path);
    removed_.insert(path);
  }

  // The invariants, through every rank.
  void Check(const std::string& step) {
    SCOPED_TRACE(step);
    for (uint32_t r = 0; r < world_->size(); ++r) {
      std::set<std::string> listed;
      ListOptions lo;
      lo.limit = 13;
      for (;;) {
        auto page = M(r).List("d", lo);
        if (!page.ok() && page.status().code() == Code::kNotFound && live_.empty()) break;
        ASSERT_OK(page) << "rank " << r;
        for (auto& e : page->entries) listed.insert("d/" + e.name);
        if (!page->truncated) break;
        lo.start_after = page->next_start_after;
      }
      std::set<std::string> want;
      for (auto& [p, d] : live_) want.insert(p);
      EXPECT_EQ(listed, want) << "rank " << r << " lists other names";
      for (const std::string& p : removed_) {
        EXPECT_CODE(M(r).Stat(p), kNotFound) << "rank " << r << ": removed " << p << " is back";
      }
    }
    uint32_t r = 0;
    for (auto& [path, data] : live_) {
      std::vector<std::byte> got(data.size());
      ReadRequest req{path, 0, got, {}, 0};
      const uint32_t rank = r++ % world_->size();
      ASSERT_OK(M(rank).ReadBatch({&req, 1}));
      ASSERT_OK(req.status) << "rank " << rank << " reading " << path;
      EXPECT_TRUE(got == data) << path << " reads other bytes";
    }
    // Every shard has its full count of owners among the members.
    const engine::Membership& m = M(0).membership();
    for (uint32_t s = 0; s < m.shards; ++s) {
      EXPECT_EQ(m.owners[s].size(), std::min<size_t>(2, m.members.size())) << "shard " << s;
    }
  }

  TempDir dir_;
  std::unique_ptr<InProcWorld> world_;
  std::map<std::string, std::vector<std::byte>> live_;
  std::set<std::string> removed_;
  int puts_ = 0;
};

// 1 -> 3 -> 2 -> 4 (one new empty member) -> 3 -> 1 (refused: no majority) -> 4 -> 3 (one declared
// lost) -> 4 (the lost store offered again: refused) -> 3 permuted; removes at every step.
TEST_F(MembershipWorld, SequencesOfWorldsOverTheSameStoresLoseNothingAndResurrectNothing) {
  ASSERT_OK(world_->StartStores({0}));
  PutSome("a", 10);
  Remove(0, "d/a0");
  Remove(0, "d/a1");
  Check("world of 1");

  ASSERT_OK(world_->StartStores({0, 1, 2}));
  Check("1 -> 3");
  // What the world of 1 wrote has one copy; the world of 3 gives it its 2 in the background.
  uint64_t copied = 0;
  for (uint32_t r = 0; r < 3; ++r) {
    auto bg = M(r).WaitForRepair(std::chrono::seconds(60));
    ASSERT_OK(bg);
    copied += bg->chunks_copied;
  }
  EXPECT_GT(copied, 0u);
  // An unchanged world starts no background repair (store 0 drops the copies of the shards it
  // no longer owns in the background, which WaitForRepair waits for too).
  ASSERT_OK(world_->StartStores({0, 1, 2}));
  for (uint32_t r = 0; r < 3; ++r) {
    auto bg = M(r).WaitForRepair(std::chrono::seconds(60));
    ASSERT_OK(bg);
    EXPECT_EQ(bg->objects, 0u);
  }
  PutSome("b", 10);
  Remove(1, "d/a2");
  Remove(2, "d/b0");
  Check("world of 3");

  ASSERT_OK(world_->StartStores({0, 1}));  // store 2 is down: still a member
  Check("3 -> 2");
  PutSome("c", 10);
  Remove(0, "d/a3");
  Remove(1, "d/b1");
  Remove(1, "d/c0");
  Check("world of 2");

  ASSERT_OK(world_->StartStores({0, 1, 2, 3}));  // store 2 back, store 3 new
  Check("2 -> 4");
  PutSome("e", 10);
  Remove(3, "d/a4");
  Remove(2, "d/c1");
  Check("world of 4");

  ASSERT_OK(world_->StartStores({1, 2, 3}));
  Check("4 -> 3");
  Remove(0, "d/b2");
  Remove(2, "d/e0");
  Check("world of 3 without store 0");

  EXPECT_CODE(world_->StartStores({0}), kUnavailable);  // 1 of 4: no majority

  ASSERT_OK(world_->StartStores({0, 1, 2, 3}));
  Check("all 4 again");
  Remove(1, "d/a5");
  const std::string lost = world_->MemberId(3);
  ASSERT_OK(world_->StartStores({0, 1, 2}, {lost}));
  Check("store 3 declared lost");
  auto refused = world_->StartStores({0, 1, 2, 3});
  EXPECT_CODE(refused, kFailedPrecondition);
  EXPECT_NE(refused.message().find(lost), std::string::npos) << refused;

  ASSERT_OK(world_->StartStores({2, 0, 1}));
  Check("3 permuted");
  EXPECT_TRUE(std::all_of(M(0).membership().members.begin(), M(0).membership().members.end(),
                          [](const engine::MemberEntry& e) { return e.up; }));
}

// Two partial worlds one after the other on disjoint halves: neither half has a majority.
// Then a world of 2 of 3, and the other 2 of 3 after it: refused unless it holds every shard.
TEST_F(MembershipWorld, DisjointPartialWorldsOneAfterAnotherCannotBothStart) {
  ASSERT_OK(world_->StartStores({0, 1, 2, 3}));
  PutSome("a", 8);
  EXPECT_CODE(world_->StartStores({0, 1}), kUnavailable);
  EXPECT_CODE(world_->StartStores({2, 3}), kUnavailable);

  ASSERT_OK(world_->StartStores({0, 1, 2}));
  PutSome("b", 8);
  Remove(0, "d/a0");
  Check("3 of 4");
  // {3, x}: 2 of 4 -> no majority whatever x is.
  EXPECT_CODE(world_->StartStores({3, 0}), kUnavailable);
  // {1, 2, 3}: a majority, but shards written in the last epoch whose copies are only on store
  // 0 must refuse it; when it opens, it must show everything.
  Status other = world_->StartStores({1, 2, 3});
  if (other.ok()) {
    Check("{1, 2, 3} after {0, 1, 2}");
  } else {
    EXPECT_CODE(other, kUnavailable);
    EXPECT_NE(other.message().find(world_->MemberId(0)), std::string::npos) << other;
  }
}

// Removes while a member is down, then its return: nothing comes back. A member dying during
// the epoch: removes it owned are refused (nothing changes), the others stay removed.
TEST_F(MembershipWorld, RemovesWhileAMemberIsDownNeverComeBack) {
  ASSERT_OK(world_->StartStores({0, 1, 2}));
  PutSome("a", 20);
  ASSERT_OK(world_->StartStores({0, 1}));
  for (int i = 0; i < 20; i += 2) Remove(i % 2, "d/a" + std::to_string(i));
  ASSERT_OK(world_->StartStores({0, 1, 2}));
  Check("store 2 back after removes");

  world_->net().Kill(2);
  int refused = 0;
  for (int i = 1; i < 20; i += 2) {
    const std::string p = "d/a" + std::to_string(i);
    Status s = M(i % 2).Remove(p);
    if (s.ok()) {
      live_.erase(p);
      removed_.insert(p);
    } else {
      EXPECT_CODE(s, kUnavailable);
      refused++;
    }
  }
  EXPECT_GT(refused, 0);
  ASSERT_OK(world_->StartStores({0, 1, 2}));
  Check("after removes with a member dead");
}

// An unchanged world opens without moving a record; one member joining a world of 4 moves about
// 1/5 of the record copies (goal <= 1.1 / 4).
TEST_F(MembershipWorld, OpenMovesOnlyWhatOwnershipChangedAndNothingWhenUnchanged) {
  ASSERT_OK(world_->StartStores({0, 1, 2, 3}));
  for (int i = 0; i < 400; ++i) {
    ASSERT_OK(Put(i % 4, "d/s" + std::to_string(i), Pattern(64, static_cast<uint8_t>(i))));
  }
  ASSERT_OK(world_->StartStores({0, 1, 2, 3}));
  uint64_t held = 0;
  for (uint32_t r = 0; r < 4; ++r) {
    EXPECT_EQ(M(r).open_report().records_pulled, 0u) << "rank " << r;
    EXPECT_EQ(M(r).open_report().shards_merged, 0u) << "rank " << r;
    held += M(r).open_report().records_held;
  }
  EXPECT_EQ(M(0).open_report().owner_moves, 0u);
  ASSERT_OK(world_->StartStores({0, 1, 2, 3, 4}));
  // The new member and the owners it relieved keep serving; the new owners catch up in the
  // background (WaitForRepair waits for it too): the records they merged are what moved.
  uint64_t pulled = 0, behind = 0;
  for (uint32_t r = 0; r < 5; ++r) {
    auto bg = M(r).WaitForRepair(std::chrono::seconds(60));
    ASSERT_OK(bg) << "rank " << r;
    pulled += M(r).open_report().records_pulled + bg->metadata_copied;
    behind += M(r).open_report().shards_behind;
  }
  EXPECT_GT(behind, 0u);
  const double fraction = static_cast<double>(pulled) / static_cast<double>(held);
  std::printf("join of 1 to 4: %llu of %llu record copies moved (%.3f; goal <= %.3f)\n",
              static_cast<unsigned long long>(pulled), static_cast<unsigned long long>(held),
              fraction, 1.1 / 4);
  EXPECT_GT(pulled, 0u);
  EXPECT_LE(fraction, 1.1 / 4);
  Check("after the join");
}

// Metadata moves in the background: while the new owners of a joining member's shards have not
// caught up (held there by the test), the old holders serve every lookup and take every write
// with them; once they caught up, they serve lookups even with every old holder dead; the next
// Open makes them the holders and the old copies go.
TEST_F(MembershipWorld, LookupsAndWritesAreServedWhileMetadataMovesAndAfter) {
  ASSERT_OK(world_->StartStores({0, 1, 2}));
  PutSome("m", 30);
  world_->set_catch_up(false);
  ASSERT_OK(world_->StartStores({0, 1, 2, 3}));  // store 3 joins: it owns shards it lacks
  ASSERT_GT(M(3).open_report().shards_behind, 0u);
  Check("moving, nothing caught up");
  PutSome("n", 20);
  for (int i = 0; i < 30; i += 3) Remove(i % 4, "d/m" + std::to_string(i));
  Check("moving, after writes and removes");

  // The same membership again, now catching up: the records (new writes and tombstones
  // included) reach the new owner; then even with the old holders of its shards dead, lookups
  // of them are answered.
  world_->set_catch_up(true);
  ASSERT_OK(world_->StartStores({0, 1, 2, 3}));
  auto bg = M(3).WaitForRepair(std::chrono::seconds(60));
  ASSERT_OK(bg);
  EXPECT_GT(bg->metadata_copied, 0u);
  const engine::Membership& m = M(3).membership();
  const int64_t me = m.IndexOf(world_->MemberId(3));
  ASSERT_GE(me, 0);
  std::string moved;  // a live path whose shard store 3 caught up with, held by others
  for (const auto& [path, data] : live_) {
    const uint32_t s = engine::ShardOf(path, m.shards);
    const auto& h = m.holders[s];
    const auto& o = m.owners[s];
    if (std::find(o.begin(), o.end(), me) != o.end() &&
        !std::binary_search(h.begin(), h.end(), static_cast<uint32_t>(me))) {
      moved = path;
      break;
    }
  }
  ASSERT_FALSE(moved.empty());
  for (uint32_t r = 0; r < 3; ++r) world_->net().Kill(r);
  auto st = M(3).Stat(moved);
  ASSERT_OK(st) << moved;
  EXPECT_EQ(st->size, live_[moved].size());
  for (const std::string& p : removed_) {
    auto gone = M(3).Stat(p);
    if (gone.ok()) ADD_FAILURE() << p << " was removed and is back";
  }

  // The next Open: store 3 holds what it caught up with, the others dropped what they no longer
  // own; everything is where it should be.
  ASSERT_OK(world_->StartStores({0, 1, 2, 3}));
  for (uint32_t r = 0; r < 4; ++r) EXPECT_EQ(M(r).open_report().shards_behind, 0u) << r;
  const engine::Membership& after = M(0).membership();
  for (uint32_t s = 0; s < after.shards; ++s) {
    std::vector<uint32_t> owners = after.owners[s];
    std::sort(owners.begin(), owners.end());
    EXPECT_EQ(after.holders[s], owners) << "shard " << s;
  }
  Check("after the next Open");
}

// After a join, the next Open retires the old holders' copies (they neither own nor hold those
// shards any more) instead of dropping them before the world serves: while they wait for the
// background drop, listings leave them out — the objects removed since, which only the retired
// copies still have, and the directories only those fill. A close before the drop leaves them
// to the next Open, which retires them again; the drop empties them.
TEST_F(MembershipWorld, RetiredCopiesAreLeftOutOfListingsAndDroppedInTheBackground) {
  ASSERT_OK(world_->StartStores({0, 1, 2}));
  PutSome("m", 30);
  std::vector<std::string> nested;  // g/sub<k>/x<i>: directories to empty later
  for (int i = 0; i < 36; ++i) {
    const std::string p = fmt::format("g/sub{}/x{}", i % 3, i);
    const uint32_t r = static_cast<uint32_t>(i % 3);
    ASSERT_OK(M(r).Create(p, {}));
    ASSERT_OK(M(r).Write(p, 0, Pattern(64, static_cast<uint8_t>(i))));
    ASSERT_OK(M(r).Seal(p));
    nested.push_back(p);
  }
  ASSERT_OK(world_->StartStores({0, 1, 2, 3}));  // store 3 joins and catches up
  for (uint32_t r = 0; r < 4; ++r) ASSERT_OK(M(r).WaitForRepair(std::chrono::seconds(60)));
  world_->set_drop_retired(false);
  ASSERT_OK(world_->StartStores({0, 1, 2, 3}));  // the old holders' copies are retired
  uint64_t retired = 0;
  for (uint32_t r = 0; r < 4; ++r) retired += M(r).open_report().shards_dropped;
  ASSERT_GT(retired, 0u);
  // Removes now reach the holders only: the retired copies keep these records.
  for (int i = 0; i < 30; i += 2) Remove(static_cast<uint32_t>(i % 4), "d/m" + std::to_string(i));
  for (const std::string& p : nested) {
    if (p.starts_with("g/sub1/")) {
      ASSERT_OK(M(0).Remove(p)) << p;
    }
  }
  auto check_g = [&](const std::string& step) {
    SCOPED_TRACE(step);
    for (uint32_t r = 0; r < 4; ++r) {
      auto page = M(r).List("g", ListOptions{"", 100});
      ASSERT_OK(page) << "rank " << r;
      std::vector<std::string> names;
      for (const DirEntry& e : page->entries) names.push_back(e.name);
      EXPECT_EQ(names, (std::vector<std::string>{"sub0", "sub2"})) << "rank " << r;
      EXPECT_CODE(M(r).List("g/sub1", ListOptions{"", 100}), kNotFound) << "rank " << r;
    }
  };
  Check("copies retired, not dropped");
  check_g("copies retired, not dropped");

  // Closed before the drop: the next Open retires the same copies again, and drops them.
  world_->set_drop_retired(true);
  ASSERT_OK(world_->StartStores({0, 1, 2, 3}));
  uint64_t again = 0;
  for (uint32_t r = 0; r < 4; ++r) again += M(r).open_report().shards_dropped;
  EXPECT_EQ(again, retired);
  for (uint32_t r = 0; r < 4; ++r) ASSERT_OK(M(r).WaitForRepair(std::chrono::seconds(60)));
  Check("copies dropped");
  check_g("copies dropped");
  ASSERT_OK(world_->StartStores({0, 1, 2, 3}));
  for (uint32_t r = 0; r < 4; ++r) EXPECT_EQ(M(r).open_report().shards_dropped, 0u) << r;
  Check("the Open after the drop");
}

// An object "k/x" and an object "k" conflict (a name cannot be an object and a directory), but
// each owner checks only its own shard: owners that held only one of the two shards both
// acknowledged them. When a membership change puts both shards on one member, its merge must
// not drop either record — its copy may become the last. Both stay readable through that member
// alone (the one merged second kept unlisted there, "detached"); removing it works.
TEST_F(MembershipWorld, RecordsConflictingAcrossShardsAreKeptWhenOneMemberGetsBoth) {
  ASSERT_OK(world_->StartStores({0, 1, 2, 3}));
  auto owners = [&](const std::string& path) {
    std::vector<uint32_t> o = M(0).MetadataOwners(path);
    std::sort(o.begin(), o.end());
    return o;
  };
  std::string p, q;  // "k<i>" and "k<i>/x" on disjoint owners
  for (int i = 0; i < 1000 && p.empty(); ++i) {
    const std::string a = "k" + std::to_string(i), b = a + "/x";
    std::vector<uint32_t> oa = owners(a), ob = owners(b), both;
    std::set_intersection(oa.begin(), oa.end(), ob.begin(), ob.end(), std::back_inserter(both));
    if (both.empty()) p = a, q = b;
  }
  ASSERT_FALSE(p.empty());
  ASSERT_OK(Put(0, p, Pattern(100, 1)));
  ASSERT_OK(Put(1, q, Pattern(kChunk + 7, 2)));
  // Store 3 lost: three members, two owners a shard, so some member owns both shards now.
  ASSERT_OK(world_->StartStores({0, 1, 2}, {world_->MemberId(3)}));
  for (uint32_t r = 0; r < 3; ++r) ASSERT_OK(M(r).WaitForRepair(std::chrono::seconds(60)));
  ASSERT_OK(world_->StartStores({0, 1, 2}));
  for (uint32_t r = 0; r < 3; ++r) ASSERT_OK(M(r).WaitForRepair(std::chrono::seconds(60)));
  std::vector<uint32_t> op = owners(p), oq = owners(q), both;
  std::set_intersection(op.begin(), op.end(), oq.begin(), oq.end(), std::back_inserter(both));
  ASSERT_EQ(both.size(), 1u) << "owners of " << p << " and " << q;
  const uint32_t c = both[0];
  // Only member c is left to answer for both shards.
  for (uint32_t r = 0; r < 3; ++r) {
    if (r != c) world_->net().Kill(r);
  }
  for (const std::string& path : {p, q}) {
    auto st = M(c).Stat(path);
    ASSERT_OK(st) << path << " through member " << c;
    EXPECT_EQ(st->size, live_[path].size()) << path;
    std::vector<std::byte> got(live_[path].size());
    ReadRequest req{path, 0, got, {}, 0};
    ASSERT_OK(M(c).ReadBatch({&req, 1}));
    if (req.status.ok()) {
      EXPECT_TRUE(got == live_[path]) << path;
    } else {
      // Its chunks may sit on the killed members only: the record is what this test is about.
      EXPECT_CODE(req.status, kUnavailable) << path;
    }
  }
  // Both removable, everywhere, once the world is whole again.
  ASSERT_OK(world_->StartStores({0, 1, 2}));
  Remove(c, q);
  Remove(c, p);
  Check("after removing both");
  ASSERT_OK(world_->StartStores({0, 1, 2}));
  Check("after the next Open");
}

// The number of chunk objects store `r`'s member holds (its local objects "c/<uid>").
size_t LocalChunkObjects(engine::Cluster& c) {
  auto page = c.store().ListChunkObjects("", 100000);
  EXPECT_OK(page);
  return page.ok() ? page->entries.size() : 0;
}

// A remove while a chunk holder is unreachable leaves its chunks behind; when it is back, its
// background sweep drops them (they record the world path whose inode no longer names them).
TEST_F(MembershipWorld, ChunksOrphanedWhileTheirHolderWasDownAreSweptWhenItReturns) {
  ASSERT_OK(world_->StartStores({0, 1, 2}));
  // A path whose metadata owners leave out member 2, written in 3 chunks (every member holds
  // some of them with replication 2 over 3).
  std::string path;
  for (int i = 0; path.empty(); ++i) {
    std::string p = "d/orphan" + std::to_string(i);
    auto owners = M(0).MetadataOwners(p);
    if (std::find(owners.begin(), owners.end(), 2u) == owners.end()) path = p;
  }
  const size_t before = LocalChunkObjects(M(2));
  ASSERT_OK(Put(0, path, Pattern(3 * kChunk, 9)));
  ASSERT_EQ(LocalChunkObjects(M(2)), before + 1);
  world_->net().Kill(2);
  Remove(0, path);  // durable on both metadata owners; member 2's chunks stay behind
  ASSERT_OK(world_->StartStores({0, 1, 2}));
  size_t now = 0;
  for (int i = 0; i < 200 && (now = LocalChunkObjects(M(2))) != before; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(now, before) << "the orphaned chunks were not swept";
  Check("after the sweep");
}

// A chunk damaged on one holder's disk is found by the background scrub, dropped and copied
// again from the other replica: then the good holder can die and the object still reads.
TEST_F(MembershipWorld, ScrubFindsADamagedChunkAndRepairsItFromAReplica) {
  ASSERT_OK(world_->StartStores({0, 1, 2}));
  const auto data = Pattern(kChunk, 4);  // one chunk, on two members
  ASSERT_OK(Put(0, "d/scrubbed", data));
  auto holders = M(0).Locate("d/scrubbed");
  ASSERT_OK(holders);
  ASSERT_EQ((*holders)[0].size(), 2u);
  const uint32_t damaged = (*holders)[0][0], good = (*holders)[0][1];
  world_->Stop();
  // The only chunk in that member's segment file: flip a byte of it.
  std::string seg;
  for (const auto& e : std::filesystem::directory_iterator(world_->Store(damaged) + "/chunks")) {
    if (e.path().extension() == ".dat") seg = e.path().string();
  }
  {
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.good()) << seg;
    f.seekg(100);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(100);
    f.write(&c, 1);
  }
  ASSERT_OK(world_->StartStores({0, 1, 2}));
  // The damaged member's scrub finds the chunk, drops its copy and repairs the object.
  metrics::Counter& repaired = M(damaged).metrics().counter("member.scrub.repaired_objects");
  for (int i = 0; i < 200 && repaired.value() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(repaired.value(), 1u) << "the scrub did not repair the damaged chunk";
  EXPECT_EQ(M(damaged).metrics().counter("member.scrub.damaged_objects").value(), 1u);
  world_->net().Kill(good);
  std::vector<std::byte> got(data.size());
  ReadRequest req{"d/scrubbed", 0, got, {}, 0};
  const uint32_t reader = good == 0 ? 1 : 0;
  ASSERT_OK(M(reader).ReadBatch({&req, 1}));
  ASSERT_OK(req.status);
  EXPECT_TRUE(got == data);
}

// A member killed in the middle of an Open that moves metadata (a new member joins: shard
// pages are fetched): the Open fails on every member and nothing is lost; the next Open of the
// same stores succeeds and shows everything. Seeded (SHOAL_TEST_SEED, SHOAL_MIGRATION_TRIALS).
TEST_F(MembershipWorld, KillsDuringMigrationLoseNothing) {
  const char* env = std::getenv("SHOAL_MIGRATION_TRIALS");
  const int trials = env != nullptr ? std::atoi(env) : 8;
  std::mt19937_64 rng(Seed() + 7);
  // A long join timeout: a kill ends every member's wait at once (World::AllGather), so no
  // trial waits for it, and a loaded machine's slow phase is not a failed Open.
  world_->set_join_timeout(std::chrono::seconds(30));
  ASSERT_OK(world_->StartStores({0, 1, 2}));
  PutSome("a", 24);
  Remove(1, "d/a3");
  int failed_opens = 0, background_kills = 0;
  for (int trial = 0; trial < trials; ++trial) {
    // Grow to 4 (store 3 new, or back after the shrink below) with a member killed at the
    // first shard page asked of it. Not every member is asked (sources with equal copies are
    // asked once): a kill that never applied lets the Open succeed, and the next member is the
    // victim after a shrink, so every trial kills one (a deterministic test).
    const uint32_t first = static_cast<uint32_t>(rng() % 3);
    const auto action = rng() % 2 == 0 ? transport::FaultAction::kKillBefore
                                       : transport::FaultAction::kKillAfter;
    bool hit = false;
    for (uint32_t k = 0; k < 3 && !hit; ++k) {
      const uint32_t victim = (first + k) % 3;
      Status s = world_->StartStoresWithFault(
          {0, 1, 2, 3}, {victim, engine::protocol::Wire(engine::protocol::Op::kShardPage), 1, action});
      hit = !world_->net().trace().empty();
      if (hit) {
        // A member died in a merge at Open (which then fails everywhere), or in a new owner's
        // background catch-up after an Open that succeeded (the holders went on serving).
        if (s.ok()) {
          background_kills++;  // checked after the next Open, below
        } else {
          failed_opens++;
        }
      } else {
        ASSERT_OK(s);
        ASSERT_OK(world_->StartStores({0, 1, 2}));
      }
    }
    ASSERT_TRUE(hit) << "trial " << trial << ": no member was asked for a shard page";
    ASSERT_OK(world_->StartStores({0, 1, 2, 3})) << "trial " << trial;
    Check("trial " + std::to_string(trial) + ": after a kill during migration");
    PutSome("t" + std::to_string(trial) + "-", 3);
    Remove(0, "d/t" + std::to_string(trial) + "-0");
    // Shrink to 3 of 4 (store 3 down), so the next growth moves records again.
    ASSERT_OK(world_->StartStores({0, 1, 2}));
  }
  EXPECT_EQ(failed_opens + background_kills, trials);
  std::printf("%d migrations with a kill: %d in the Open's merge (the Open failed), %d in a "
              "background catch-up; none lost or resurrected anything\n",
              trials, failed_opens, background_kills);
}

// A join starts a background repair; with every replica in place it copies nothing and finds
// nothing lost (it used to report live objects lost while their chunks were all there).
TEST_F(MembershipWorld, BackgroundRepairAfterAJoinFindsEveryReplicaInPlace) {
  ASSERT_OK(world_->StartStores({0, 1, 2, 3}));
  for (int i = 0; i < 300; ++i) {
    ASSERT_OK(Put(i % 4, "d/j" + std::to_string(i), Pattern(64 + i % 3, static_cast<uint8_t>(i))));
  }
  ASSERT_OK(world_->StartStores({0, 1, 2, 3, 4}));
  uint64_t copied = 0, lost = 0, objects = 0;
  for (uint32_t r = 0; r < 5; ++r) {
    auto bg = M(r).WaitForRepair(std::chrono::seconds(60));
    ASSERT_OK(bg);
    copied += bg->chunks_copied;
    lost += bg->lost.size();
    objects += bg->objects;
    for (const std::string& p : bg->lost) ADD_FAILURE() << "rank " << r << " reports " << p << " lost";
  }
  EXPECT_EQ(objects, 300u);
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(copied, 0u);
  Check("after the join's background repair");
}

// Copies a repair made stay named in the inode while their holder is merely down (only a
// member declared lost loses them): the copy may be the last one when it returns.
TEST_F(MembershipWorld, RepairCopiesOnADownMemberStayNamed) {
  ASSERT_OK(world_->StartStores({0, 1, 2, 3}));
  PutSome("c", 9);
  const std::string gone = world_->MemberId(3);
  world_->Stop();
  std::filesystem::remove_all(world_->Store(3));
  ASSERT_OK(world_->StartStores({0, 1, 2}, {gone}));  // the background repair makes copies
  for (uint32_t r = 0; r < 3; ++r) ASSERT_OK(M(r).WaitForRepair(std::chrono::seconds(60)));
  auto where = [&](uint32_t asker) {
    std::map<std::string, std::vector<std::vector<uint32_t>>> out;
    for (auto& [path, data] : live_) {
      auto l = M(asker).Locate(path);
      EXPECT_OK(l);
      if (l.ok()) out[path] = *l;
    }
    return out;
  };
  const auto before = where(0);
  ASSERT_OK(world_->StartStores({0, 1}));  // store 2 down: a background repair runs again
  for (uint32_t r = 0; r < 2; ++r) ASSERT_OK(M(r).WaitForRepair(std::chrono::seconds(60)));
  ASSERT_OK(world_->StartStores({0, 1, 2}));
  for (uint32_t r = 0; r < 3; ++r) ASSERT_OK(M(r).WaitForRepair(std::chrono::seconds(60)));
  const auto after = where(0);
  for (auto& [path, chunks] : before) {
    for (size_t c = 0; c < chunks.size(); ++c) {
      for (uint32_t rank : chunks[c]) {
        const auto& now = after.at(path)[c];
        EXPECT_NE(std::find(now.begin(), now.end(), rank), now.end())
            << path << " chunk " << c << " lost its replica on rank " << rank;
      }
    }
  }
  Check("after the down member's return");
}

// Ranks that disagree on the members declared lost (one rank's SHOAL_LOST_MEMBERS differs) all
// fail the Open with the same error instead of recording different plans; nothing changes.
TEST_F(MembershipWorld, RanksThatDisagreeOnLostMembersAllFailTheOpen) {
  ASSERT_OK(world_->StartStores({0, 1, 2, 3}));
  PutSome("a", 6);
  const std::string id3 = world_->MemberId(3);
  world_->set_rank_lost(1, {id3});
  Status s = world_->StartStores({0, 1, 2});
  EXPECT_CODE(s, kInvalidArgument);
  EXPECT_NE(s.message().find("disagree"), std::string::npos) << s;
  ASSERT_OK(world_->StartStores({0, 1, 2, 3}));
  EXPECT_TRUE(M(0).membership().lost.empty());
  Check("after the refused Open");
}

// A member killed at a random message of a random op (before or after it handled it) while
// other ranks put and remove; then the job restarts on the same stores. Every put and remove
// that returned OK holds; an operation that failed either happened or not, but the same way for
// every rank (listed iff found, and then bit-exact). Seeded: SHOAL_TEST_SEED, SHOAL_KILL_TRIALS.
TEST_F(MembershipWorld, KillsAtRandomPointsLoseNoAcknowledgedWriteAndResurrectNothing) {
  const char* env = std::getenv("SHOAL_KILL_TRIALS");
  const int trials = env != nullptr ? std::atoi(env) : 100;
  std::mt19937_64 rng(Seed());
  using engine::protocol::Op;
  const Op ops[] = {Op::kMetaInsert, Op::kMetaRemove, Op::kChunkWrite, Op::kChunkCommit};
  std::map<std::string, std::vector<std::byte>> unknown;  // failed puts: there or not
  int held = 0, failed_ops = 0, next_name = 0;
  for (int trial = 0; trial < trials; ++trial) {
    ASSERT_OK(world_->StartStores({0, 1, 2}));
    // Resolve what earlier failures left: each is there (bit-exact) or not, for every rank.
    for (auto& [path, data] : unknown) {
      auto st = M(0).Stat(path);
      if (st.ok()) live_[path] = data;
      else EXPECT_CODE(st, kNotFound);
    }
    unknown.clear();
    Check("trial " + std::to_string(trial) + " after restart");
    if (HasFatalFailure() || HasFailure()) {
      ADD_FAILURE() << "seed " << Seed() << " trial " << trial;
      return;
    }
    const uint32_t victim = static_cast<uint32_t>(rng() % 3);
    const Op op = ops[rng() % std::size(ops)];
    const uint32_t nth = 1 + static_cast<uint32_t>(rng() % 4);
    const auto action = rng() % 2 == 0 ? transport::FaultAction::kKillBefore
                                       : transport::FaultAction::kKillAfter;
    world_->net().AddRule({victim, engine::protocol::Wire(op), nth, action});
    for (int i = 0; i < 6; ++i) {
      uint32_t r = static_cast<uint32_t>(rng() % 3);
      if (r == victim) r = (r + 1) % 3;
      if (live_.empty() || rng() % 3 != 0) {
        const std::string path = "d/k" + std::to_string(next_name++);
        const size_t size = rng() % 2 == 0 ? 200 : kChunk * (1 + rng() % 3) + 5;
        auto data = Pattern(size, static_cast<uint8_t>(rng()));
        Status s = Put(r, path, data);
        if (!s.ok()) {
          failed_ops++;
          unknown[path] = std::move(data);
        }
      } else {
        auto it = live_.begin();
        std::advance(it, static_cast<long>(rng() % live_.size()));
        const std::string path = it->first;
        Status s = M(r).Remove(path);
        if (s.ok()) {
          live_.erase(path);
          removed_.insert(path);
        } else {
          failed_ops++;
          unknown[path] = it->second;  // still there, or removed: either is allowed
          live_.erase(path);
        }
      }
    }
    held++;
  }
  ASSERT_OK(world_->StartStores({0, 1, 2}));
  for (auto& [path, data] : unknown) {
    if (M(0).Stat(path).ok()) live_[path] = data;
  }
  Check("after the last trial");
  std::printf("%d kill trials held (seed %llu): %zu objects live, %zu removed, %d operations "
              "failed under the kills\n",
              held, static_cast<unsigned long long>(Seed()), live_.size(), removed_.size(),
              failed_ops);
}

}  // namespace
}  // namespace shoal
