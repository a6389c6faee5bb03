// Cluster: the Open of an epoch (engine/membership.h, docs/membership.md). After the world is
// joined, every member
//   1. gathers every present member's newest membership record and shard summaries;
//   2. applies PlanOpen (the same inputs on every rank give the same plan, or the same error);
//   3. merges the shards it holds from the plan's sources — only those whose summaries differ
//      from its own copy, so an unchanged world moves nothing and costs O(shards); the shards
//      it owns without a current copy (a new owner) it drops now and catches up with in the
//      background, after the world serves (cluster_background.cc: CatchUp), while the
//      shard's holders serve its lookups and every write goes to them and to it;
//   4. once every member has merged (a gathered status), records the new epoch; once every
//      member has recorded it, the world serves;
//   5. retires the copies of shards it neither owns nor holds any more (left out of listings,
//      dropped in the background once the world serves), and, when every member is up, drops
//      the tombstones older than the epoch (every copy has merged them).
// A member that fails in 3 or 4 fails the Open of every member with its error; a crash there
// leaves the old epoch (or the new one, on the members that recorded it) with every copy
// intact: nothing is dropped before step 5.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "base/bytes.h"
#include "base/log.h"
#include "engine/cluster.h"

namespace shoal::engine {
namespace {

// Replicas go to distinct nodes where there are enough; when there are not, some copies of
// every chunk share a node, and that node's loss takes them together. Said once per Open.
void WarnIfReplicasShareNodes(const Membership& m, uint32_t replicas) {
  std::set<std::string_view> nodes;
  uint32_t up = 0;
  for (const MemberEntry& e : m.members) {
    if (!e.up) continue;
    up++;
    nodes.insert(e.node);
  }
  const uint32_t wanted = std::min(replicas, up);
  if (up <= 1 || nodes.size() >= wanted) return;
  Log(LogLevel::kWarn,
      "replicas = {} but the {} members are on {} node(s) ({}): copies of one chunk share a "
      "node and a node's loss loses them together. Give each member its own node "
      "(Options::node / SHOAL_NODE; `shoal run` does) or set replicas <= {}",
      replicas, up, nodes.size(), fmt::join(nodes, ", "), nodes.size());
}

constexpr uint32_t kShardPage = 1024;

// What each rank brings to Open: its store's state, and the settings every rank must share
// (the replica count and the stores declared lost), so that all compute one plan.
struct Settings {
  uint32_t replicas = 0;
  std::vector<std::string> declare_lost;
  bool operator==(const Settings&) const = default;
};

std::vector<std::byte> EncodeState(const MemberState& m, const Settings& settings) {
  ByteWriter w;
  w.Put<uint32_t>(settings.replicas);
  w.Put<uint32_t>(static_cast<uint32_t>(settings.declare_lost.size()));
  for (const std::string& id : settings.declare_lost) w.Prefixed(id);
  w.Prefixed(m.id);
  w.Prefixed(m.node);
  w.Prefixed(m.latest.epoch == 0 ? std::string() : EncodeMembership(m.latest));
  w.Put<uint64_t>(m.caught_up_epoch);
  w.Put<uint32_t>(static_cast<uint32_t>(m.caught_up.size()));
  for (uint32_t s : m.caught_up) w.Put<uint32_t>(s);
  w.Put<uint32_t>(static_cast<uint32_t>(m.summaries.size()));
  for (const ShardSummary& s : m.summaries) {
    w.Put<uint64_t>(s.count);
    w.Put<uint64_t>(s.hash);
  }
  return w.Take();
}

Result<MemberState> DecodeState(std::span<const std::byte> b, uint32_t rank, Settings* settings) {
  ByteReader r(b);
  MemberState m;
  std::span<const std::byte> id, node, record;
  uint32_t n = 0, lost = 0;
  auto bad = [&](std::string_view what) {
    return Status::Corruption(fmt::format("membership state of rank {}: {}", rank, what));
  };
  if (!r.Get(&settings->replicas) || !r.Get(&lost) || lost > r.left() / 4) return bad("settings");
  settings->declare_lost.resize(lost);
  for (std::string& l : settings->declare_lost) {
    std::span<const std::byte> v;
    if (!r.Prefixed(64, &v)) return bad("declared lost");
    l = std::string(AsChars(v));
  }
  uint32_t caught = 0;
  if (!r.Prefixed(64, &id) || !r.Prefixed(255, &node) || !r.Prefixed(r.left(), &record) ||
      !r.Get(&m.caught_up_epoch) || !r.Get(&caught) || caught > kMaxShards ||
      caught > r.left() / 4) {
    return bad("length");
  }
  m.caught_up.resize(caught);
  for (uint32_t& s : m.caught_up) r.Get(&s);
  if (!std::is_sorted(m.caught_up.begin(), m.caught_up.end())) return bad("caught-up shards");
  if (!r.Get(&n) || n > kMaxShards || r.left() != size_t{n} * 16) return bad("length");
  m.id = std::string(AsChars(id));
  m.node = std::string(AsChars(node));
  if (!record.empty()) {
    auto rec = DecodeMembership(AsChars(record));
    if (!rec.ok()) return bad(rec.status().message());
    m.latest = std::move(rec).value();
  }
  m.summaries.resize(n);
  for (ShardSummary& s : m.summaries) {
    r.Get(&s.count);
    r.Get(&s.hash);
  }
  return m;
}

// Each phase of the Open waits for the slowest member at most the join timeout (Options::
// join_timeout_ms, SHOAL_JOIN_TIMEOUT_MS): a member that died in the middle fails every
// member's Open then, rather than hanging it.
std::chrono::milliseconds OpenPhaseDeadline(std::chrono::milliseconds join_timeout) {
  return join_timeout;
}

}  // namespace

Status Cluster::AgreeAll(Status mine, std::string_view phase, std::chrono::milliseconds deadline) {
  ByteWriter w;
  w.Put<uint8_t>(mine.ok() ? 0 : 1);
  w.Raw(mine.ToString());
  SHOAL_ASSIGN_OR_RETURN(auto all, world_->AllGather(w.Take(), deadline));
  for (uint32_t r = 0; r < all.size(); ++r) {
    if (!all[r].empty() && all[r][0] != std::byte{0}) {
      std::string_view why = AsChars(std::span<const std::byte>(all[r]).subspan(1));
      return Status::Unavailable(fmt::format("{} failed on rank {}: {}", phase, r, why));
    }
  }
  return mine;
}

Status Cluster::MergeShard(uint32_t shard, const std::vector<uint32_t>& from, uint64_t* pulled) {
  for (uint32_t src : from) {
    std::string after;
    do {
      SHOAL_ASSIGN_OR_RETURN(auto page, client_->ShardPage(src, shard, after, kShardPage));
      *pulled += page.records.size();
      std::vector<MetaStore::Versioned> batch;
      batch.reserve(page.records.size());
      for (protocol::ShardRecord& rec : page.records) {
        batch.push_back({std::move(rec.path), rec.version, rec.tombstone, std::move(rec.inode)});
      }
      std::vector<Status> conflicts;
      Status s = ring_->ApplyAll(shard, batch, &conflicts);
      if (!s.ok()) {
        return s.WithContext(fmt::format("merging metadata shard {} from rank {}", shard, src));
      }
      for (const Status& c : conflicts) {
        Log(LogLevel::kWarn, "metadata shard {}: {}", shard, c.message());
      }
      after = std::move(page.next);
    } while (!after.empty());
  }
  return Status::OK();
}

Status Cluster::OpenEpoch(const std::vector<std::string>& declare_lost,
                          std::chrono::milliseconds join_timeout) {
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = OpenPhaseDeadline(join_timeout);
  // 1. What this member brings.
  MemberState me;
  me.id = store_->member_id();
  me.node = world_->members()[world_->rank()].node;
  SHOAL_ASSIGN_OR_RETURN(me.latest, ring_->LoadMembership());
  const uint32_t shards = me.latest.epoch != 0 ? me.latest.shards : kDefaultShards;
  if (me.latest.epoch == 0) {
    uint64_t skipped = 0;
    SHOAL_ASSIGN_OR_RETURN(uint64_t indexed, ring_->IndexUnversioned(shards, &skipped));
    if (indexed != 0 || skipped != 0) {
      Log(LogLevel::kInfo, "metadata shard of {}: {} record(s) from before versioned membership "
          "indexed{}", me.id, indexed,
          skipped == 0 ? std::string()
                       : fmt::format(", {} with paths over 200 bytes left out", skipped));
    }
  }
  SHOAL_ASSIGN_OR_RETURN(me.summaries, ring_->Summaries(shards));
  {
    SHOAL_ASSIGN_OR_RETURN(auto caught, ring_->LoadCaughtUp());
    me.caught_up_epoch = caught.first;
    me.caught_up = std::move(caught.second);
  }
  Settings mine{options_.replicas, declare_lost};
  std::sort(mine.declare_lost.begin(), mine.declare_lost.end());
  SHOAL_ASSIGN_OR_RETURN(auto gathered, world_->AllGather(EncodeState(me, mine), deadline));
  std::vector<MemberState> present;
  Settings first;
  for (uint32_t r = 0; r < gathered.size(); ++r) {
    Settings theirs;
    SHOAL_ASSIGN_OR_RETURN(MemberState m, DecodeState(gathered[r], r, &theirs));
    if (r == 0) {
      first = theirs;
    } else if (!(theirs == first)) {
      return Status::InvalidArgument(fmt::format(
          "ranks disagree on the replica count or the members declared lost (member 0, rank "
          "{}: {} replica(s), lost [{}]; member {}, rank {}: {} replica(s), lost [{}]): give "
          "every rank the same Options::replicas and Options::lost_members / SHOAL_LOST_MEMBERS",
          world_->members()[0].job_rank, first.replicas, fmt::join(first.declare_lost, ","), r,
          world_->members()[r].job_rank, theirs.replicas, fmt::join(theirs.declare_lost, ",")));
    }
    present.push_back(std::move(m));
  }

  // 2. The plan: the same on every rank.
  SHOAL_ASSIGN_OR_RETURN(OpenPlan plan,
                         PlanOpen(present, options_.replicas, declare_lost, kDefaultShards));
  const Membership& next = plan.next;
  if (world_->rank() == 0) {
    for (const std::string& w : plan.warnings) Log(LogLevel::kWarn, "{}", w);
    WarnIfReplicasShareNodes(next, options_.replicas);
  }
  service_->SetEpoch(next.shards, next.epoch);
  membership_ = next;
  up_rank_.assign(next.members.size(), -1);
  for (uint32_t i = 0; i < next.members.size(); ++i) {
    up_rank_[i] = RankOfMember(next.members[i].id);
  }
  RouteShards();
  const int64_t my_index = next.IndexOf(me.id);

  // 3. Merge the shards this member holds from the copies that differ from its own. The
  //    shards it owns without a current copy: drop the stale copy now, catch up in the
  //    background (the holders serve meanwhile).
  Status merged;
  uint64_t pulled_shards = 0;
  catch_up_.clear();
  for (uint32_t s = 0; s < next.shards && merged.ok(); ++s) {
    const auto& holders = next.holders[s];
    const uint32_t me_rank = world_->rank();
    static const std::vector<uint32_t> kNone;  // a new world: nobody catches up
    const auto& behind = plan.catch_up.empty() ? kNone : plan.catch_up[s];  // no copy
    if (std::find(behind.begin(), behind.end(), me_rank) != behind.end()) {
      if (s < me.summaries.size() && me.summaries[s].count != 0) merged = ring_->DropShard(s);
      std::vector<uint32_t> from;
      for (uint32_t h : holders) {
        if (up_rank_[h] >= 0) from.push_back(static_cast<uint32_t>(up_rank_[h]));
      }
      catch_up_.push_back({s, std::move(from)});
      continue;
    }
    if (!std::binary_search(holders.begin(), holders.end(), static_cast<uint32_t>(my_index))) {
      continue;
    }
    const auto& sources = plan.sources[s];
    const bool is_source = std::find(sources.begin(), sources.end(), me_rank) != sources.end();
    ShardSummary mine = s < me.summaries.size() ? me.summaries[s] : ShardSummary{};
    if (!is_source && mine.count != 0) {
      merged = ring_->DropShard(s);  // a stale copy: replaced by the current ones
      mine = {};
    }
    std::vector<uint32_t> from;
    std::vector<ShardSummary> seen{mine};
    for (uint32_t src : sources) {
      const ShardSummary theirs =
          s < present[src].summaries.size() ? present[src].summaries[s] : ShardSummary{};
      if (src == me_rank || theirs.count == 0) continue;
      if (std::find(seen.begin(), seen.end(), theirs) != seen.end()) continue;
      seen.push_back(theirs);
      from.push_back(src);
    }
    if (merged.ok() && !from.empty()) {
      merged = MergeShard(s, from, &open_report_.records_pulled);
      pulled_shards++;
    }
  }
  SHOAL_RETURN_IF_ERROR(AgreeAll(merged, "merging metadata shards",
                                 std::max(deadline, options_.merge_timeout)));

  // 4. Record the epoch, then serve.
  SHOAL_RETURN_IF_ERROR(
      AgreeAll(ring_->SaveMembership(next), fmt::format("recording epoch {}", next.epoch), deadline));

  // 5. Copies nobody reads any more: retired now (listings leave them out), dropped in the
  //    background (O(records) each; the world need not wait). A close or crash before the drop
  //    ends leaves them to the next Open, which retires them again.
  retired_.clear();
  for (uint32_t s = 0; s < next.shards; ++s) {
    const auto& holders = next.holders[s];
    const auto& owners = next.owners[s];
    const uint32_t mi = static_cast<uint32_t>(my_index);
    if (std::binary_search(holders.begin(), holders.end(), mi) ||
        std::find(owners.begin(), owners.end(), mi) != owners.end()) {
      continue;
    }
    if (s < me.summaries.size() && me.summaries[s].count != 0) retired_.push_back(s);
  }
  service_->SetRetired(retired_);
  const uint64_t dropped = retired_.size();
  if (plan.collect_tombstones) {
    auto collected = ring_->CollectTombstones(next.shards, MemberService::VersionFloor(next.epoch));
    if (!collected.ok()) {
      Log(LogLevel::kWarn, "collecting tombstones: {}", collected.status().ToString());
    }
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                              started).count();
  uint32_t up = 0;
  for (const MemberEntry& m : next.members) up += m.up ? 1 : 0;
  open_report_.owner_moves = plan.owner_moves;
  open_report_.shards_merged = pulled_shards;
  open_report_.shards_dropped = dropped;
  open_report_.ms = ms;
  if (auto sums = ring_->Summaries(next.shards); sums.ok()) {
    for (uint32_t s = 0; s < sums->size(); ++s) {
      if (!std::binary_search(retired_.begin(), retired_.end(), s)) {
        open_report_.records_held += (*sums)[s].count;
      }
    }
  }
  open_report_.shards_behind = catch_up_.size();
  {
    std::vector<uint32_t> behind;
    for (const auto& c : catch_up_) behind.push_back(c.first);
    service_->SetBehind(behind);
  }
  // A repair begun at an earlier Open and cut short (a close or a crash) is done again even
  // when the membership did not change since; the record is cleared by a whole pass.
  bool repair = plan.membership_changed;
  if (auto pending = ring_->RepairPending(); !pending.ok()) {
    Log(LogLevel::kWarn, "reading the pending repair record: {}", pending.status().ToString());
    repair = true;
  } else if (*pending) {
    repair = true;
  }
  if (repair && options_.repair_rate != 0) {
    if (Status s = ring_->SetRepairPending(true); !s.ok()) {
      Log(LogLevel::kWarn, "recording the pending background repair: {}", s.ToString());
    }
  }
  StartBackground(repair);
  Log(world_->rank() == 0 ? LogLevel::kInfo : LogLevel::kDebug,
      "epoch {}: {} member(s), {} up, {} lost; {} shard ownership(s) moved; this member merged {} "
      "shard(s), retired {} ({:.1f} ms)",
      next.epoch, next.members.size(), up, next.lost.size(), plan.owner_moves, pulled_shards,
      dropped, ms);
  return Status::OK();
}

void Cluster::RouteShards() {
  shard_ranks_.assign(membership_.shards, {});
  shard_write_ranks_.assign(membership_.shards, {});
  for (uint32_t s = 0; s < membership_.shards; ++s) {
    shard_ranks_[s] = ComputeShardRanks(s);
    shard_write_ranks_[s] = ComputeShardWriteRanks(s);
  }
}

std::vector<uint32_t> Cluster::ComputeShardRanks(uint32_t shard) const {
  // The up holders: those among the owners first, primary first, then the others.
  std::vector<uint32_t> ranks;
  const auto& holders = membership_.holders[shard];
  for (uint32_t o : membership_.owners[shard]) {
    if (up_rank_[o] >= 0 && std::binary_search(holders.begin(), holders.end(), o)) {
      ranks.push_back(static_cast<uint32_t>(up_rank_[o]));
    }
  }
  for (uint32_t h : holders) {
    const auto& owners = membership_.owners[shard];
    if (up_rank_[h] >= 0 && std::find(owners.begin(), owners.end(), h) == owners.end()) {
      ranks.push_back(static_cast<uint32_t>(up_rank_[h]));
    }
  }
  return ranks;
}

std::vector<uint32_t> Cluster::ComputeShardWriteRanks(uint32_t shard) const {
  // The serving ranks, then the up owners still catching up (not holders).
  std::vector<uint32_t> ranks = ComputeShardRanks(shard);
  const auto& holders = membership_.holders[shard];
  for (uint32_t o : membership_.owners[shard]) {
    if (up_rank_[o] >= 0 && !std::binary_search(holders.begin(), holders.end(), o)) {
      ranks.push_back(static_cast<uint32_t>(up_rank_[o]));
    }
  }
  return ranks;
}

const std::vector<uint32_t>& Cluster::MetadataOwners(std::string_view path) const {
  return ShardRanks(ShardOf(path, membership_.shards));
}

const std::vector<uint32_t>& Cluster::MetadataWriters(std::string_view path) const {
  return ShardWriteRanks(ShardOf(path, membership_.shards));
}

}  // namespace shoal::engine
