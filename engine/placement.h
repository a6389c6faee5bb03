// Placement: where chunks and metadata live, as pure functions of the membership. Every rank
// computes the same answer without asking anyone.
//
// Members are ordered by member id, not by rank, so a restarted job whose ranks are permuted over
// the same store directories places everything exactly where it was.
//
// Chunks: chunk i of an object goes first to member (start + i) mod N, where start is a hash of
// the object id: the chunks of one object rotate over all members (a big checkpoint shard is
// spread perfectly evenly) and different objects start at different members. Further replicas
// walk on from there, skipping members whose node already holds a replica; only when there are
// fewer nodes than replicas do two replicas share a node (never a member).
//
// Metadata is placed by the owner table of the world's membership record (engine/membership.h),
// not here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shoal::engine {

struct PlacementMember {
  std::string member_id;
  std::string node;
  bool operator==(const PlacementMember&) const = default;
};

class Placement {
 public:
  // `members` in any order (they are sorted by member id).
  explicit Placement(std::vector<PlacementMember> members);

  size_t size() const { return members_.size(); }
  const std::vector<PlacementMember>& members() const { return members_; }  // sorted

  // Indices into members() of the `replicas` holders of a chunk, primary first. With `home`
  // (an index into members()), the home member is the primary of every chunk and the further
  // replicas rotate as usual over the other nodes: an object read back by the member that wrote
  // it (a checkpoint shard) is read from local disk only.
  std::vector<uint32_t> ChunkHolders(uint64_t object_id, uint64_t chunk, uint32_t replicas,
                                     int32_t home = -1) const;

  // Up to `want` further holders of a chunk that the members `holding` already hold (a repair
  // after a loss), none of them in `unusable`: in the chunk's rotation order, members on nodes
  // without a replica first — the same rule as ChunkHolders.
  std::vector<uint32_t> MoreHolders(uint64_t object_id, uint64_t chunk,
                                    const std::vector<uint32_t>& holding,
                                    const std::vector<uint32_t>& unusable, uint32_t want) const;

 private:
  // Up to `want` distinct members taken in the order order(0), order(1), ... over `candidates`
  // steps: first only members on nodes not chosen yet, then any member not chosen yet. Members
  // in `holding` count as chosen already (their nodes too) but are not returned; members in
  // `unusable` are never taken.
  template <typename Order>
  std::vector<uint32_t> Pick(uint32_t want, size_t candidates, Order order,
                             const std::vector<uint32_t>& holding = {},
                             const std::vector<uint32_t>& unusable = {}) const;

  std::vector<PlacementMember> members_;
};

}  // namespace shoal::engine
