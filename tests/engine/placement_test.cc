#include "engine/placement.h"

#include <gtest/gtest.h>

#include <map>
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

}  // namespace
}  // namespace shoal::engine
