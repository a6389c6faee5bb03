// The rule of Open (engine/membership.h) as a pure function: majorities, lost stores, holders,
// and how much the owner table moves.
#include "engine/membership.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace shoal::engine {
namespace {

std::string Id(int i) { return std::string(31, '0') + static_cast<char>('a' + i); }

MemberState Fresh(int i) { return MemberState{Id(i), "node" + std::to_string(i), {}, {}}; }

// The states of `ids` after `plan` was recorded by every one of them.
std::vector<MemberState> After(const OpenPlan& plan, const std::vector<int>& ids) {
  std::vector<MemberState> out;
  for (int i : ids) out.push_back({Id(i), "node" + std::to_string(i), plan.next, {}});
  return out;
}

TEST(Membership, RecordRoundTripsAndDamageIsRefused) {
  auto plan = PlanOpen({Fresh(0), Fresh(1), Fresh(2)}, 2, {});
  ASSERT_OK(plan);
  const std::string bytes = EncodeMembership(plan->next);
  auto back = DecodeMembership(bytes);
  ASSERT_OK(back);
  EXPECT_EQ(*back, plan->next);
  for (size_t n = 0; n < bytes.size(); n += 7) {
    EXPECT_FALSE(DecodeMembership(bytes.substr(0, n)).ok()) << "prefix of " << n;
  }
  std::string bad = bytes;
  bad[bad.size() - 2] = '\x7f';  // a holder index out of range
  EXPECT_FALSE(DecodeMembership(bad).ok());
  // Any byte damaged, also one that leaves a well-formed record (a member id's hex digit, an
  // owner index in range): the checksum refuses it.
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string flipped = bytes;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x01);
    EXPECT_CODE(DecodeMembership(flipped), kCorruption) << "byte " << i;
  }
  // A record of store format 3 (version 1, no checksum) is still read.
  std::string v1 = bytes.substr(0, bytes.size() - 4);
  v1[0] = 1;
  auto old = DecodeMembership(v1);
  ASSERT_OK(old);
  EXPECT_EQ(*old, plan->next);
}

TEST(Membership, MajorityAndHoldersDecideWhoMayStartTheNextEpoch) {
  auto e1 = PlanOpen({Fresh(0), Fresh(1), Fresh(2), Fresh(3)}, 2, {});
  ASSERT_OK(e1);
  EXPECT_CODE(PlanOpen(After(*e1, {0, 1}), 2, {}), kUnavailable);  // 2 of 4
  auto e2 = PlanOpen(After(*e1, {0, 1, 2}), 2, {});
  ASSERT_OK(e2);
  EXPECT_EQ(e2->next.epoch, 2u);
  EXPECT_EQ(e2->next.members.size(), 4u);  // 3 stays a member, down
  EXPECT_FALSE(e2->next.members[3].up);
  EXPECT_FALSE(e2->collect_tombstones);
  // {1, 2, 3} after {0, 1, 2}: shards held only by 0 in epoch 2 -> refused, naming 0.
  std::vector<MemberState> later = After(*e2, {1, 2});
  later.push_back({Id(3), "node3", e1->next, {}});
  auto refused = PlanOpen(later, 2, {});
  EXPECT_CODE(refused, kUnavailable);
  EXPECT_NE(refused.status().message().find(Id(0)), std::string::npos) << refused.status();
  // Declaring 0 lost lets it start (the user's decision) and 0 is refused for ever after.
  auto e3 = PlanOpen(later, 2, {Id(0)});
  ASSERT_OK(e3);
  EXPECT_EQ(e3->next.lost, std::vector<std::string>{Id(0)});
  std::vector<MemberState> back = After(*e3, {1, 2, 3});
  back.push_back({Id(0), "node0", e2->next, {}});
  EXPECT_CODE(PlanOpen(back, 2, {}), kFailedPrecondition);
  // A present store cannot be declared lost; an unknown id is an error.
  EXPECT_CODE(PlanOpen(After(*e1, {0, 1, 2}), 2, {Id(0)}), kInvalidArgument);
  EXPECT_CODE(PlanOpen(After(*e1, {0, 1, 2}), 2, {Id(9)}), kInvalidArgument);
  // A store of another world (its epoch, not a member) is refused.
  std::vector<MemberState> mixed = After(*e1, {0, 1, 2});
  auto other = PlanOpen({Fresh(7)}, 1, {});
  ASSERT_OK(other);
  mixed.push_back({Id(7), "node7", other->next, {}});
  EXPECT_CODE(PlanOpen(mixed, 2, {}), kFailedPrecondition);
}

// An Open that failed while recording left epoch 2 on one store only: the others (a majority)
// start another epoch 2 without it; when it returns, its record is set aside (the others prove
// it never served) instead of the world being refused as two worlds.
TEST(Membership, ARecordThatNeverServedIsSetAside) {
  auto e1 = PlanOpen({Fresh(0), Fresh(1), Fresh(2)}, 2, {});
  ASSERT_OK(e1);
  auto e2 = PlanOpen(After(*e1, {0, 1, 2}), 2, {});
  ASSERT_OK(e2);
  // Only store 0 recorded e2; stores 1 and 2 start from e1 without it.
  auto e2b = PlanOpen(After(*e1, {1, 2}), 2, {});
  ASSERT_OK(e2b);
  EXPECT_EQ(e2b->next.epoch, 2u);
  std::vector<MemberState> back = After(*e2b, {1, 2});
  back.push_back({Id(0), "node0", e2->next, {}});
  auto e3 = PlanOpen(back, 2, {});
  ASSERT_OK(e3);
  EXPECT_EQ(e3->base_epoch, 2u);
  EXPECT_EQ(e3->next.epoch, 3u);
  EXPECT_TRUE(std::all_of(e3->next.members.begin(), e3->next.members.end(),
                          [](const MemberEntry& m) { return m.up; }));
  // A member that recorded a newer epoch does not disprove an older served one.
  std::vector<MemberState> mixed = After(*e2b, {1});
  mixed.push_back({Id(2), "node2", e1->next, {}});  // 2 came back with its older record
  ASSERT_OK(PlanOpen(mixed, 2, {}));
}

TEST(Membership, OwnersMoveOnlyWhereMembershipChanged) {
  for (uint32_t n : {1u, 2u, 4u, 8u}) {
    std::vector<MemberState> fresh;
    std::vector<int> ids;
    for (uint32_t i = 0; i < n; ++i) {
      fresh.push_back(Fresh(static_cast<int>(i)));
      ids.push_back(static_cast<int>(i));
    }
    auto e1 = PlanOpen(fresh, 2, {});
    ASSERT_OK(e1);
    auto same = PlanOpen(After(*e1, ids), 2, {});
    ASSERT_OK(same);
    EXPECT_EQ(same->owner_moves, 0u);
    EXPECT_EQ(same->next.owners, e1->next.owners);
    std::vector<MemberState> grown = After(*e1, ids);
    grown.push_back(Fresh(static_cast<int>(n)));
    auto joined = PlanOpen(grown, 2, {});
    ASSERT_OK(joined);
    const double copies = static_cast<double>(kDefaultShards) * std::min(2u, n + 1);
    const double fraction = static_cast<double>(joined->owner_moves) / copies;
    EXPECT_LE(fraction, 1.1 / n) << n << " members";
    EXPECT_GT(joined->owner_moves, 0u);
    // Balanced: loads differ by at most one.
    std::vector<uint32_t> load(n + 1, 0);
    for (const auto& o : joined->next.owners) {
      for (uint32_t m : o) load[m]++;
    }
    auto [lo, hi] = std::minmax_element(load.begin(), load.end());
    EXPECT_LE(*hi - *lo, 1u) << n + 1 << " members";
    // Every member on its own node: a shard's owners on distinct nodes.
    for (const auto& o : joined->next.owners) {
      std::set<std::string> nodes;
      for (uint32_t m : o) nodes.insert(joined->next.members[m].node);
      EXPECT_EQ(nodes.size(), o.size());
    }
  }
}

}  // namespace
}  // namespace shoal::engine

namespace shoal::engine {
namespace {

// The states of `ids` after `plan`, each with one record (the same) in every shard it holds.
std::vector<MemberState> WithRecords(const OpenPlan& plan, const std::vector<int>& ids) {
  std::vector<MemberState> out = After(plan, ids);
  for (MemberState& m : out) {
    const int64_t me = plan.next.IndexOf(m.id);
    m.summaries.resize(plan.next.shards);
    for (uint32_t s = 0; s < plan.next.shards; ++s) {
      const auto& h = plan.next.holders[s];
      if (std::binary_search(h.begin(), h.end(), static_cast<uint32_t>(me))) {
        m.summaries[s] = {1, 1000 + s};
      }
    }
  }
  return out;
}

// A joining member owns shards it has no copy of: it catches up in the background, and until
// the next Open says it did, the shard's old holders stay holders (they serve, and get every
// write). Caught up at E, it is a source at E+1: holders become the owners again. Not caught up,
// it is behind again (its copy is stale), never a source.
TEST(Membership, ANewOwnerCatchesUpWhileTheOldHoldersServe) {
  auto e1 = PlanOpen({Fresh(0), Fresh(1), Fresh(2)}, 2, {});
  ASSERT_OK(e1);
  std::vector<MemberState> join = WithRecords(*e1, {0, 1, 2});
  join.push_back(Fresh(3));
  auto e2 = PlanOpen(join, 2, {});
  ASSERT_OK(e2);
  const Membership& m = e2->next;
  const uint32_t newcomer = static_cast<uint32_t>(m.IndexOf(Id(3)));
  std::vector<uint32_t> behind;  // shards the newcomer owns
  for (uint32_t s = 0; s < m.shards; ++s) {
    const auto& o = m.owners[s];
    const auto& h = m.holders[s];
    const bool owns = std::find(o.begin(), o.end(), newcomer) != o.end();
    const bool catching = std::find(e2->catch_up[s].begin(), e2->catch_up[s].end(), 3u) !=
                          e2->catch_up[s].end();  // present index 3 is the newcomer
    EXPECT_EQ(owns, catching) << "shard " << s;
    EXPECT_FALSE(std::binary_search(h.begin(), h.end(), newcomer)) << "shard " << s;
    if (!owns) continue;
    behind.push_back(s);
    // The old holders hold it still: every one of epoch 1's holders that is present.
    for (uint32_t old : e1->next.holders[s]) {
      const uint32_t j = static_cast<uint32_t>(m.IndexOf(e1->next.members[old].id));
      EXPECT_TRUE(std::binary_search(h.begin(), h.end(), j)) << "shard " << s;
    }
  }
  ASSERT_FALSE(behind.empty());

  // Epoch 3: the newcomer caught up with all but the first shard during epoch 2.
  std::vector<MemberState> next = WithRecords(*e2, {0, 1, 2});
  MemberState n = After(*e2, {3})[0];
  n.summaries.resize(m.shards);
  for (uint32_t s : behind) n.summaries[s] = {1, 1000 + s};
  n.caught_up_epoch = m.epoch;
  n.caught_up.assign(behind.begin() + 1, behind.end());
  next.push_back(n);
  auto e3 = PlanOpen(next, 2, {});
  ASSERT_OK(e3);
  for (uint32_t s : behind) {
    const auto& c = e3->catch_up[s];
    const bool again = std::find(c.begin(), c.end(), 3u) != c.end();
    if (s == behind[0]) {
      // Its copy equals the holders' (the same summary): current although not caught up.
      EXPECT_FALSE(again) << "shard " << s;
    } else {
      EXPECT_FALSE(again) << "shard " << s;
      EXPECT_NE(std::find(e3->sources[s].begin(), e3->sources[s].end(), 3u), e3->sources[s].end())
          << "shard " << s;
    }
    std::vector<uint32_t> owners = e3->next.owners[s];
    std::sort(owners.begin(), owners.end());
    EXPECT_EQ(e3->next.holders[s], owners) << "shard " << s;
  }
  // A copy that is neither caught up nor equal to the holders' is behind again.
  next.back().summaries[behind[0]] = {7, 7};
  auto e3b = PlanOpen(next, 2, {});
  ASSERT_OK(e3b);
  const auto& c = e3b->catch_up[behind[0]];
  EXPECT_NE(std::find(c.begin(), c.end(), 3u), c.end());
  EXPECT_EQ(std::find(e3b->sources[behind[0]].begin(), e3b->sources[behind[0]].end(), 3u),
            e3b->sources[behind[0]].end());
  // A marker of another epoch counts for nothing.
  next.back().caught_up_epoch = m.epoch - 1;
  auto e3c = PlanOpen(next, 2, {});
  ASSERT_OK(e3c);
  for (uint32_t s : behind) {
    EXPECT_EQ(std::find(e3c->sources[s].begin(), e3c->sources[s].end(), 3u), e3c->sources[s].end());
  }
}

}  // namespace
}  // namespace shoal::engine
