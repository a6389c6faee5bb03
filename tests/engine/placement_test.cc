#include "engine/placement.h"

#include <gtest/gtest.h>

#include <xxhash.h>

#include <functional>
#include <map>
#include <random>
#include <set>

namespace shoal::engine {
namespace {

std::vector<PlacementMember> Members(int n, int per_node) {
  std::vector<PlacementMember> m;
  for (int i = 0; i < n; ++i) {
    m.push_back({"member-" + std::to_string(i * 7919 % 1000), "node-" + std::to_string(i / per_node)});
  }
  return m;
}

TEST(Placement, ChunksOfOneObjectSpreadPerfectlyEvenly) {
  Placement p(Members(4, 1));
  std::map<uint32_t, int> count;
  for (uint64_t c = 0; c < 1000; ++c) count[p.ChunkHolders(42, c, 1)[0]]++;
  ASSERT_EQ(count.size(), 4u);
  for (auto [m, n] : count) EXPECT_EQ(n, 250) << m;
}

TEST(Placement, ReplicasLandOnDistinctNodes) {
  Placement p(Members(8, 2));  // 8 members on 4 nodes
  for (uint64_t c = 0; c < 200; ++c) {
    auto h = p.ChunkHolders(7, c, 3);
    ASSERT_EQ(h.size(), 3u);
    std::set<std::string> nodes;
    for (uint32_t m : h) nodes.insert(p.members()[m].node);
    EXPECT_EQ(nodes.size(), 3u) << c;
  }
}

TEST(Placement, HomeMemberIsPrimaryOfEveryChunkAndReplicasLeaveItsNode) {
  std::vector<PlacementMember> members;
  for (int m = 0; m < 6; ++m) {
    members.push_back({"m" + std::to_string(m), "node-" + std::to_string(m / 2)});
  }
  Placement p(members);
  for (int32_t home = 0; home < 6; ++home) {
    std::map<uint32_t, int> second;
    for (uint64_t c = 0; c < 60; ++c) {
      auto h = p.ChunkHolders(99, c, 2, home);
      ASSERT_EQ(h.size(), 2u);
      EXPECT_EQ(h[0], static_cast<uint32_t>(home));
      EXPECT_NE(p.members()[h[1]].node, p.members()[home].node);
      second[h[1]]++;
    }
    EXPECT_EQ(second.size(), 4u) << "second replicas spread over the other nodes' members";
  }
  // One replica: everything on the home member.
  for (uint64_t c = 0; c < 10; ++c) EXPECT_EQ(p.ChunkHolders(5, c, 1, 3), std::vector<uint32_t>{3});
}

TEST(Placement, MoreHoldersPrefersNodesWithoutAReplicaAndSkipsUnusable) {
  std::vector<PlacementMember> members;
  for (int m = 0; m < 6; ++m) {
    members.push_back({"m" + std::to_string(m), "node-" + std::to_string(m / 2)});
  }
  Placement p(members);
  for (uint64_t c = 0; c < 30; ++c) {
    // Member 0 (node-0) holds it; member 2 (node-1) is down.
    auto more = p.MoreHolders(7, c, {0}, {2}, 2);
    ASSERT_EQ(more.size(), 2u);
    std::set<std::string> nodes{p.members()[0].node};
    for (uint32_t m : more) {
      EXPECT_NE(m, 0u);
      EXPECT_NE(m, 2u);
      EXPECT_TRUE(nodes.insert(p.members()[m].node).second) << "two replicas on one node";
    }
  }
  // Fewer usable members than wanted: only those.
  EXPECT_EQ(p.MoreHolders(7, 0, {0, 1}, {2, 3, 4}, 3), std::vector<uint32_t>{5});
}

TEST(Placement, FewerNodesThanReplicasStillUsesDistinctMembers) {
  Placement p(Members(3, 3));  // one node
  auto h = p.ChunkHolders(1, 0, 2);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_NE(h[0], h[1]);
  EXPECT_EQ(p.ChunkHolders(1, 0, 9).size(), 3u);  // never more than the members
}

TEST(Placement, DependsOnMembershipNotOrder) {
  auto m = Members(5, 1);
  Placement a(m);
  std::reverse(m.begin(), m.end());
  Placement b(m);
  for (uint64_t c = 0; c < 50; ++c) {
    EXPECT_EQ(a.members()[a.ChunkHolders(9, c, 2)[1]].member_id,
              b.members()[b.ChunkHolders(9, c, 2)[1]].member_id);
  }
}

// Where chunks live is recorded only as the layout: every later read recomputes the holders, so
// the choice must never change between versions. The first algorithm, with std::sets, kept
// here as the reference for the inline-set one (duplicates in `holding` and `unusable` count
// once, nodes are filled before a node gets a second replica).
std::vector<uint32_t> ReferencePick(const std::vector<PlacementMember>& sorted, uint32_t want,
                                    size_t candidates, const std::function<uint32_t(size_t)>& order,
                                    const std::vector<uint32_t>& holding,
                                    const std::vector<uint32_t>& unusable) {
  std::vector<uint32_t> out;
  std::set<uint32_t> taken(unusable.begin(), unusable.end());
  std::set<std::string_view> nodes;
  for (uint32_t m : holding) {
    taken.insert(m);
    nodes.insert(sorted[m].node);
  }
  want = static_cast<uint32_t>(
      std::min<size_t>(want, sorted.size() - std::min(sorted.size(), taken.size())));
  for (int pass = 0; pass < 2 && out.size() < want; ++pass) {
    for (size_t k = 0; k < candidates && out.size() < want; ++k) {
      uint32_t m = order(k);
      if (taken.count(m) != 0) continue;
      if (pass == 0 && nodes.count(sorted[m].node) != 0) continue;
      taken.insert(m);
      nodes.insert(sorted[m].node);
      out.push_back(m);
    }
  }
  return out;
}

TEST(Placement, HoldersAreThoseOfTheFirstAlgorithm) {
  std::mt19937_64 rng(20261203);
  for (int trial = 0; trial < 400; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 24);
    const int per_node = 1 + static_cast<int>(rng() % 4);
    Placement p(Members(n, per_node));
    const auto& sorted = p.members();
    const uint64_t uid = rng();
    const uint64_t start = XXH3_64bits_withSeed(&uid, sizeof(uid), 0x5107) % n;
    for (uint64_t c = 0; c < 8; ++c) {
      const uint32_t replicas = 1 + static_cast<uint32_t>(rng() % 5);
      const int32_t home = rng() % 3 == 0 ? static_cast<int32_t>(rng() % n) : -1;
      std::function<uint32_t(size_t)> order = [&](size_t k) {
        return static_cast<uint32_t>((start + c + k) % n);
      };
      size_t candidates = n;
      if (home >= 0) {
        order = [&](size_t k) {
          return k == 0 ? static_cast<uint32_t>(home)
                        : static_cast<uint32_t>((start + c + k - 1) % n);
        };
        candidates = n + 1;
      }
      EXPECT_EQ(p.ChunkHolders(uid, c, replicas, home),
                ReferencePick(sorted, replicas, candidates, order, {}, {}))
          << "members " << n << " per node " << per_node << " chunk " << c;
      std::vector<uint32_t> holding, unusable;  // with repeats, as callers may pass them
      for (int k = static_cast<int>(rng() % 4); k > 0; --k) holding.push_back(rng() % n);
      for (int k = static_cast<int>(rng() % 4); k > 0; --k) unusable.push_back(rng() % n);
      std::function<uint32_t(size_t)> plain = [&](size_t k) {
        return static_cast<uint32_t>((start + c + k) % n);
      };
      EXPECT_EQ(p.MoreHolders(uid, c, holding, unusable, replicas),
                ReferencePick(sorted, replicas, n, plain, holding, unusable))
          << "members " << n << " per node " << per_node << " chunk " << c;
    }
  }
}

}  // namespace
}  // namespace shoal::engine
