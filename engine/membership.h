// Membership: who the world is, as durable, versioned data (docs/membership.md).
//
// Every opening of a world is an epoch. Its record — written on every present member before the
// world serves — lists:
//   members   every store that belongs to the world, up (present at this Open) or down (absent:
//             it stays a member, its replicas serve, until the user declares it lost);
//   lost      stores declared lost: refused for ever;
//   owners    the metadata placement: a fixed number of shards (a path's shard is a hash of the
//             path), each owned by `replicas` members, primary first. The table changes only
//             where membership changed (a new member takes shards from the most loaded, a lost
//             member's shards go to the least loaded), so a join of one member to a world of N
//             moves about 1/(N+1) of the record copies;
//   holders   per shard, the members whose copy holds every write acknowledged so far, which
//             are also the ones serving reads of it (their up members): the up owners of the
//             epoch whose copy is current (a write is acknowledged only once every up owner
//             and every up holder has it), and, while some up owner is still catching up in
//             the background (a new owner), the present holders of the epoch before; when no
//             owner is up, the present holders of the epoch before; when none of those either,
//             the holders of the epoch before (the shard is unavailable in this epoch). An
//             owner that caught up during epoch E says so at the next Open and counts as a
//             holder of E.
//
// PlanOpen is the rule every rank applies, on the same gathered inputs, to go from the newest
// recorded epoch E to E+1: a strict majority of E's members (those declared lost now excepted)
// must be present, no present store may be lost, and every shard needs a present holder — else
// Open fails naming the stores it needs. Two partial worlds opened one after the other on
// disjoint halves can therefore not both start: the second one lacks a majority or a holder.
//
// Pure functions: no I/O, deterministic for their inputs (tests/engine/membership_test.cc).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/result.h"

namespace shoal::engine {

inline constexpr uint32_t kDefaultShards = 256;
inline constexpr uint32_t kMaxShards = 1u << 16;

struct MemberEntry {
  std::string id;  // the store's member id
  std::string node;
  bool up = false;  // present at this epoch's Open
  bool operator==(const MemberEntry&) const = default;
};

struct Membership {
  uint64_t epoch = 0;  // 0: none recorded (a new store)
  uint32_t shards = 0;
  std::vector<MemberEntry> members;           // sorted by id
  std::vector<std::string> lost;              // sorted
  std::vector<std::vector<uint32_t>> owners;  // per shard: indices into members, primary first
  std::vector<std::vector<uint32_t>> holders; // per shard: indices into members, sorted
  bool operator==(const Membership&) const = default;

  // Index into members of `id`; -1 if not a member.
  int64_t IndexOf(std::string_view id) const;
};

std::string EncodeMembership(const Membership& m);
// Corruption for any inconsistent field (counts, indices out of range, unsorted members).
Result<Membership> DecodeMembership(std::string_view bytes);

// The shard of a path's metadata record.
uint32_t ShardOf(std::string_view path, uint32_t shards);

// A shard copy's summary: its record count (tombstones included) and an order-independent hash
// of (path, version) pairs. Equal summaries: equal contents.
struct ShardSummary {
  uint64_t count = 0;
  uint64_t hash = 0;
  bool operator==(const ShardSummary&) const = default;
};

// What each present member brings to Open (gathered from every rank, in rank order).
struct MemberState {
  std::string id;
  std::string node;
  Membership latest;                    // its newest record (epoch 0: none)
  std::vector<ShardSummary> summaries;  // per shard of the plan's shard count; empty: nothing
  // Shards it owned in epoch `caught_up_epoch` without holding them, whose copy it then
  // brought up to date in the background (every record merged from a holder, every write of
  // that epoch received): current as of that epoch, like a holder's.
  uint64_t caught_up_epoch = 0;
  std::vector<uint32_t> caught_up = {};
};

struct OpenPlan {
  Membership next;        // the epoch to start (next.epoch = E + 1)
  uint64_t base_epoch = 0;  // E (0: a new world)
  // Per shard: indices into the present members (rank order) of the copies to merge from.
  std::vector<std::vector<uint32_t>> sources;
  // Per shard: indices into the present members of the up owners whose copy is not current
  // (a new owner, or one whose copy is stale). They drop their stale copy at Open and catch up
  // in the background, merging from the holders while receiving every write; meanwhile the
  // shard's holders are the current up owners and the present sources, which serve reads and
  // get every write too. Empty for every shard of a new world (merged at Open).
  std::vector<std::vector<uint32_t>> catch_up;
  // Every member of `next` is up: tombstones written before next.epoch can be collected.
  bool collect_tombstones = false;
  std::vector<std::string> warnings;  // said in the log by rank 0
  uint64_t owner_moves = 0;           // shard ownerships that changed hands
  // The members or which of them are up differ from the last epoch (a join, a return, a member
  // down or declared lost): replica counts may have changed, so a background repair runs.
  bool membership_changed = false;
};

// The rule of Open. `declare_lost`: ids the user declared lost at this Open. `replicas`: metadata
// copies wanted (capped at the member count). `shards`: for a new world.
// FailedPrecondition: a present store was declared lost, or belongs to another world;
// Unavailable: no majority, or a shard without a present holder (naming the stores needed);
// InvalidArgument: a declared id that is not an absent member.
Result<OpenPlan> PlanOpen(const std::vector<MemberState>& present, uint32_t replicas,
                          const std::vector<std::string>& declare_lost,
                          uint32_t shards = kDefaultShards);

// The owner table for `members` (indices into it), changed from `previous` (same shard count;
// entries index the same `members`; empty for a new world) only where needed: owners that are
// gone are replaced by the least loaded, then shards move one at a time from the most to the
// least loaded member until loads differ by at most one. Owners of a shard are on distinct
// nodes where the nodes allow. *moves counts ownerships that changed hands.
std::vector<std::vector<uint32_t>> AssignOwners(const std::vector<MemberEntry>& members,
                                                std::vector<std::vector<uint32_t>> previous,
                                                uint32_t shards, uint32_t replicas,
                                                uint64_t* moves);

}  // namespace shoal::engine
