#include "engine/membership.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

#include "base/bytes.h"
#include "base/crc32c.h"

namespace shoal::engine {
namespace {

// Version 2 ends with a CRC32C of the bytes before it (LMDB keeps no checksums: a damaged
// record must not pass for another membership); version 1 (store format 3) has none.
constexpr uint32_t kRecordVersion = 2;
constexpr uint32_t kRecordVersionWithoutCrc = 1;
constexpr size_t kMaxIdBytes = 64;
constexpr size_t kMaxNodeBytes = 255;
constexpr uint32_t kMaxMembers = 1u << 16;

Status Bad(std::string_view what) {
  return Status::Corruption(fmt::format("membership record: {}", what));
}

bool GetString(ByteReader* r, size_t max, std::string* out) {
  std::span<const std::byte> b;
  if (!r->Prefixed(max, &b)) return false;
  out->assign(AsChars(b));
  return true;
}

void PutIndices(ByteWriter* w, const std::vector<uint32_t>& v) {
  w->Put<uint16_t>(static_cast<uint16_t>(v.size()));
  for (uint32_t i : v) w->Put<uint32_t>(i);
}

bool GetIndices(ByteReader* r, size_t members, std::vector<uint32_t>* out) {
  uint16_t n = 0;
  if (!r->Get(&n) || n > members || r->left() < size_t{n} * 4) return false;
  out->resize(n);
  for (uint32_t& i : *out) {
    if (!r->Get(&i) || i >= members) return false;
  }
  std::vector<uint32_t> sorted = *out;
  std::sort(sorted.begin(), sorted.end());
  return std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end();  // no repeats
}

uint64_t Tie(uint32_t shard, const std::string& id) {
  uint64_t seed = shard;
  return XXH3_64bits_withSeed(id.data(), id.size(), seed);
}

std::string Describe(const MemberEntry& m) { return fmt::format("{} (node {})", m.id, m.node); }

}  // namespace

int64_t Membership::IndexOf(std::string_view id) const {
  auto it = std::lower_bound(members.begin(), members.end(), id,
                             [](const MemberEntry& m, std::string_view v) { return m.id < v; });
  if (it == members.end() || it->id != id) return -1;
  return it - members.begin();
}

std::string EncodeMembership(const Membership& m) {
  ByteWriter w;
  w.Put<uint32_t>(kRecordVersion);
  w.Put<uint64_t>(m.epoch);
  w.Put<uint32_t>(m.shards);
  w.Put<uint32_t>(static_cast<uint32_t>(m.members.size()));
  for (const MemberEntry& e : m.members) {
    w.Prefixed(e.id);
    w.Prefixed(e.node);
    w.Put<uint8_t>(e.up ? 1 : 0);
  }
  w.Put<uint32_t>(static_cast<uint32_t>(m.lost.size()));
  for (const std::string& id : m.lost) w.Prefixed(id);
  for (uint32_t s = 0; s < m.shards; ++s) {
    PutIndices(&w, m.owners[s]);
    PutIndices(&w, m.holders[s]);
  }
  std::string out = w.TakeString();
  const uint32_t crc = Crc32c(out.data(), out.size());
  out.append(reinterpret_cast<const char*>(&crc), sizeof(crc));
  return out;
}

Result<Membership> DecodeMembership(std::string_view bytes) {
  uint32_t version = 0;
  if (bytes.size() >= sizeof(version)) std::memcpy(&version, bytes.data(), sizeof(version));
  if (version == kRecordVersion) {
    uint32_t crc = 0;
    if (bytes.size() < 2 * sizeof(crc)) return Bad("truncated");
    std::memcpy(&crc, bytes.data() + bytes.size() - sizeof(crc), sizeof(crc));
    bytes.remove_suffix(sizeof(crc));
    if (Crc32c(bytes.data(), bytes.size()) != crc) return Bad("checksum mismatch");
  }
  ByteReader r(bytes);
  Membership m;
  uint32_t members = 0, lost = 0;
  if (!r.Get(&version) || (version != kRecordVersion && version != kRecordVersionWithoutCrc)) {
    return Bad("unknown version");
  }
  if (!r.Get(&m.epoch) || !r.Get(&m.shards) || m.shards == 0 || m.shards > kMaxShards) {
    return Bad("epoch or shard count");
  }
  if (!r.Get(&members) || members == 0 || members > kMaxMembers || members > r.left() / 9) {
    return Bad("member count");
  }
  m.members.resize(members);
  for (MemberEntry& e : m.members) {
    uint8_t up = 0;
    if (!GetString(&r, kMaxIdBytes, &e.id) || e.id.empty() ||
        !GetString(&r, kMaxNodeBytes, &e.node) || !r.Get(&up) || up > 1) {
      return Bad("member entry");
    }
    e.up = up == 1;
  }
  for (size_t i = 1; i < m.members.size(); ++i) {
    if (!(m.members[i - 1].id < m.members[i].id)) return Bad("members not sorted by id");
  }
  if (!r.Get(&lost) || lost > r.left() / 4) return Bad("lost count");
  m.lost.resize(lost);
  for (std::string& id : m.lost) {
    if (!GetString(&r, kMaxIdBytes, &id) || id.empty()) return Bad("lost entry");
  }
  if (r.left() / 4 < m.shards) return Bad("shard table");
  m.owners.resize(m.shards);
  m.holders.resize(m.shards);
  for (uint32_t s = 0; s < m.shards; ++s) {
    if (!GetIndices(&r, members, &m.owners[s]) || m.owners[s].empty() ||
        !GetIndices(&r, members, &m.holders[s])) {
      return Bad(fmt::format("owners of shard {}", s));
    }
  }
  if (!r.done()) return Bad("trailing bytes");
  return m;
}

uint32_t ShardOf(std::string_view path, uint32_t shards) {
  return static_cast<uint32_t>(XXH3_64bits(path.data(), path.size()) % shards);
}

std::vector<std::vector<uint32_t>> AssignOwners(const std::vector<MemberEntry>& members,
                                                std::vector<std::vector<uint32_t>> owners,
                                                uint32_t shards, uint32_t replicas,
                                                uint64_t* moves) {
  const uint32_t n = static_cast<uint32_t>(members.size());
  const uint32_t r = std::clamp<uint32_t>(replicas, 1, n);
  const bool fresh = owners.empty();
  owners.resize(shards);
  std::vector<uint64_t> load(n, 0);
  for (auto& o : owners) {
    if (o.size() > r) o.resize(r);
    for (uint32_t m : o) load[m]++;
  }
  auto has = [](const std::vector<uint32_t>& o, uint32_t m) {
    return std::find(o.begin(), o.end(), m) != o.end();
  };
  auto node_used = [&](const std::vector<uint32_t>& o, uint32_t m, uint32_t except) {
    for (uint32_t x : o) {
      if (x != except && members[x].node == members[m].node) return true;
    }
    return false;
  };
  // Fill: every shard gets r owners, the least loaded first (on new nodes first).
  for (uint32_t s = 0; s < shards; ++s) {
    while (owners[s].size() < r) {
      int64_t best = -1;
      std::tuple<bool, bool, uint64_t, uint64_t> best_key;
      for (uint32_t m = 0; m < n; ++m) {
        if (has(owners[s], m)) continue;
        auto key = std::make_tuple(!members[m].up, node_used(owners[s], m, n), load[m],
                                   Tie(s, members[m].id));
        if (best < 0 || key < best_key) {
          best = m;
          best_key = key;
        }
      }
      owners[s].push_back(static_cast<uint32_t>(best));
      load[best]++;
      if (!fresh) ++*moves;
    }
  }
  // Balance: one shard at a time from the most to the least loaded member.
  for (;;) {
    uint32_t hi = 0, lo = 0;
    for (uint32_t m = 1; m < n; ++m) {
      if (load[m] > load[hi]) hi = m;
      if (load[m] < load[lo]) lo = m;
    }
    if (load[hi] <= load[lo] + 1) break;
    int64_t pick = -1;
    bool pick_clean = false;
    for (uint32_t s = 0; s < shards; ++s) {
      if (!has(owners[s], hi) || has(owners[s], lo)) continue;
      bool clean = !node_used(owners[s], lo, hi);
      if (pick < 0 || (clean && !pick_clean)) {
        pick = s;
        pick_clean = clean;
        if (clean) break;
      }
    }
    if (pick < 0) break;
    std::replace(owners[pick].begin(), owners[pick].end(), hi, lo);
    load[hi]--;
    load[lo]++;
    ++*moves;
  }
  return owners;
}

Result<OpenPlan> PlanOpen(const std::vector<MemberState>& present, uint32_t replicas,
                          const std::vector<std::string>& declare_lost, uint32_t shards) {
  if (present.empty()) return Status::InvalidArgument("no member is present");
  if (shards == 0 || shards > kMaxShards) {
    return Status::InvalidArgument(fmt::format("shard count {} not in 1..{}", shards, kMaxShards));
  }
  std::map<std::string, uint32_t> at;  // present id -> index in `present`
  for (uint32_t i = 0; i < present.size(); ++i) {
    if (!at.emplace(present[i].id, i).second) {
      return Status::InvalidArgument(
          fmt::format("store of member {} is opened by two ranks", present[i].id));
    }
  }
  // A record of epoch X was served only if every member up in it recorded it (the world serves
  // once all of them did). A present member that was up in X but holds an older record, or
  // another one of epoch X, proves that X never served (an Open that failed while recording):
  // such a record is set aside, and
  // its store counts as holding no record beyond its membership. The base is the newest record
  // left; two different ones of one epoch left are two worlds.
  uint64_t newest_seen = 0;
  std::set<std::string> unserved;  // ids of present members whose record is set aside
  for (const MemberState& p : present) {
    newest_seen = std::max(newest_seen, p.latest.epoch);
    if (p.latest.epoch == 0) continue;
    for (const MemberEntry& m : p.latest.members) {
      if (!m.up) continue;
      auto it = at.find(m.id);
      if (it == at.end()) continue;
      const Membership& theirs = present[it->second].latest;
      // An older record, or another one of the same epoch (a newer one proves nothing).
      if (theirs.epoch < p.latest.epoch || (theirs.epoch == p.latest.epoch && !(theirs == p.latest))) {
        unserved.insert(p.id);
        break;
      }
    }
  }
  const Membership* base = nullptr;
  for (const MemberState& p : present) {
    if (p.latest.epoch == 0 || unserved.count(p.id) != 0) continue;
    if (base == nullptr || p.latest.epoch > base->epoch) {
      base = &p.latest;
    } else if (p.latest.epoch == base->epoch && !(p.latest == *base)) {
      return Status::FailedPrecondition(fmt::format(
          "stores of different worlds: member {} (node {}) has another record of epoch {} than "
          "other present members (open each world on its own stores)",
          p.id, p.node, p.latest.epoch));
    }
  }
  if (base == nullptr && !unserved.empty()) {
    return Status::FailedPrecondition(
        "every present store holds a record of an Open that never served, and no other: start "
        "the stores of the world's last served epoch");
  }
  auto summary = [&](uint32_t i, uint32_t s) {
    const auto& v = present[i].summaries;
    return s < v.size() ? v[s] : ShardSummary{};
  };

  OpenPlan plan;
  Membership& next = plan.next;
  if (base == nullptr) {
    // A new world (or stores from before versioned membership: their records merge).
    if (!declare_lost.empty()) {
      return Status::InvalidArgument("a new world has no members to declare lost");
    }
    next.epoch = 1;
    next.shards = shards;
    for (const MemberState& p : present) next.members.push_back({p.id, p.node, true});
    std::sort(next.members.begin(), next.members.end(),
              [](const MemberEntry& a, const MemberEntry& b) { return a.id < b.id; });
    next.owners = AssignOwners(next.members, {}, shards, replicas, &plan.owner_moves);
    next.holders.resize(shards);
    plan.sources.resize(shards);
    for (uint32_t s = 0; s < shards; ++s) {
      next.holders[s] = next.owners[s];
      std::sort(next.holders[s].begin(), next.holders[s].end());
      for (uint32_t i = 0; i < present.size(); ++i) {
        if (summary(i, s).count != 0) plan.sources[s].push_back(i);
      }
    }
    plan.collect_tombstones = true;
    return plan;
  }

  const Membership& prev = *base;
  plan.base_epoch = prev.epoch;
  std::set<std::string> lost(prev.lost.begin(), prev.lost.end());
  std::set<std::string> lost_now;
  for (const std::string& id : declare_lost) {
    if (at.count(id) != 0) {
      return Status::InvalidArgument(
          fmt::format("member {} is present: a store that is opened cannot be declared lost", id));
    }
    if (lost.count(id) != 0) continue;
    if (prev.IndexOf(id) < 0) {
      return Status::InvalidArgument(
          fmt::format("{} is not a member of the world (epoch {})", id, prev.epoch));
    }
    lost_now.insert(id);
  }
  for (const MemberState& p : present) {
    if (lost.count(p.id) != 0) {
      return Status::FailedPrecondition(fmt::format(
          "the store of member {} (node {}) was declared lost; it cannot rejoin the world (to "
          "reuse the disk, wipe the store: it joins as a new, empty member)",
          p.id, p.node));
    }
    // A store that is not a member joins as a new one if it never recorded an epoch: records
    // it has (from a join whose Open failed half-way) are not trusted: the shards it serves are
    // merged again from their holders and the others dropped.
    if (prev.IndexOf(p.id) < 0) {
      if (p.latest.epoch != 0 && unserved.count(p.id) == 0) {
        return Status::FailedPrecondition(fmt::format(
            "the store of member {} (node {}) belongs to another world (its newest epoch is {}, "
            "this world's is {} without it)",
            p.id, p.node, p.latest.epoch, prev.epoch));
      }
    }
  }
  // A strict majority of the members of epoch E (those declared lost now excepted).
  uint32_t voters = 0, here = 0;
  std::vector<std::string> absent;
  for (const MemberEntry& m : prev.members) {
    if (lost_now.count(m.id) != 0) continue;
    voters++;
    if (at.count(m.id) != 0) here++;
    else absent.push_back(Describe(m));
  }
  if (voters > 0 && 2 * here <= voters) {
    return Status::Unavailable(fmt::format(
        "epoch {} had {} member(s); {} of them are present, a majority is needed to start epoch "
        "{}. Absent: {}. Start those stores, or declare the ones that will never return lost",
        prev.epoch, voters, here, prev.epoch + 1, fmt::join(absent, ", ")));
  }
  // Every shard needs a present copy holding all it acknowledged: a holder of E, or an owner of
  // E that caught up during E.
  plan.sources.resize(prev.shards);
  std::set<std::string> needed;
  for (uint32_t s = 0; s < prev.shards; ++s) {
    bool any_alive = false;
    for (uint32_t h : prev.holders[s]) {
      const MemberEntry& m = prev.members[h];
      auto it = at.find(m.id);
      if (it != at.end()) plan.sources[s].push_back(it->second);
      else if (lost_now.count(m.id) == 0) any_alive = true;
    }
    for (uint32_t o : prev.owners[s]) {
      auto it = at.find(prev.members[o].id);
      if (it == at.end() || unserved.count(prev.members[o].id) != 0) continue;
      const MemberState& p = present[it->second];
      if (p.caught_up_epoch == prev.epoch &&
          std::binary_search(p.caught_up.begin(), p.caught_up.end(), s) &&
          std::find(plan.sources[s].begin(), plan.sources[s].end(), it->second) ==
              plan.sources[s].end()) {
        plan.sources[s].push_back(it->second);
      }
    }
    if (!plan.sources[s].empty()) continue;
    if (any_alive) {
      for (uint32_t h : prev.holders[s]) {
        if (lost_now.count(prev.members[h].id) == 0) needed.insert(Describe(prev.members[h]));
      }
      continue;
    }
    if (!prev.holders[s].empty()) {
      // Every holder was declared lost: the best left are the stale copies of the others.
      for (uint32_t i = 0; i < present.size(); ++i) {
        if (summary(i, s).count != 0) plan.sources[s].push_back(i);
      }
      plan.warnings.push_back(fmt::format(
          "metadata shard {}: every member holding its current copy was declared lost; {} "
          "stale cop{} merged instead (records written since may be missing)",
          s, plan.sources[s].size(), plan.sources[s].size() == 1 ? "y is" : "ies are"));
    }
  }
  if (!needed.empty()) {
    return Status::Unavailable(fmt::format(
        "metadata shards whose current copies are only on absent members: start {}, or declare "
        "them lost (their records are then lost too)",
        fmt::join(needed, ", ")));
  }

  next.epoch = std::max(prev.epoch, newest_seen) + 1;  // never the number of a set-aside record
  next.shards = prev.shards;
  for (const MemberEntry& m : prev.members) {
    if (lost_now.count(m.id) != 0) continue;
    auto it = at.find(m.id);
    next.members.push_back({m.id, it != at.end() ? present[it->second].node : m.node,
                            it != at.end()});
  }
  for (const MemberState& p : present) {
    if (prev.IndexOf(p.id) < 0) next.members.push_back({p.id, p.node, true});
  }
  std::sort(next.members.begin(), next.members.end(),
            [](const MemberEntry& a, const MemberEntry& b) { return a.id < b.id; });
  lost.insert(lost_now.begin(), lost_now.end());
  next.lost.assign(lost.begin(), lost.end());

  auto remap = [&](const std::vector<uint32_t>& old) {
    std::vector<uint32_t> out;
    for (uint32_t i : old) {
      int64_t j = next.IndexOf(prev.members[i].id);
      if (j >= 0) out.push_back(static_cast<uint32_t>(j));
    }
    return out;
  };
  std::vector<std::vector<uint32_t>> previous(prev.shards);
  for (uint32_t s = 0; s < prev.shards; ++s) previous[s] = remap(prev.owners[s]);
  next.owners = AssignOwners(next.members, std::move(previous), next.shards, replicas,
                             &plan.owner_moves);
  next.holders.resize(next.shards);
  plan.catch_up.resize(next.shards);
  for (uint32_t s = 0; s < next.shards; ++s) {
    // An up owner's copy is current when it is a source, or equal to the sources' (one distinct
    // non-empty copy among them, or none and its own empty).
    std::vector<uint32_t> source_ids;  // next indices of the present sources
    std::set<std::pair<uint64_t, uint64_t>> distinct;
    for (uint32_t src : plan.sources[s]) {
      int64_t j = next.IndexOf(present[src].id);
      if (j >= 0) source_ids.push_back(static_cast<uint32_t>(j));
      const ShardSummary sum = summary(src, s);
      if (sum.count != 0) distinct.insert({sum.count, sum.hash});
    }
    std::vector<uint32_t> current, behind;
    for (uint32_t o : next.owners[s]) {
      if (!next.members[o].up) continue;
      const uint32_t i = at.at(next.members[o].id);
      const ShardSummary sum = summary(i, s);
      const bool is_source =
          std::find(source_ids.begin(), source_ids.end(), o) != source_ids.end();
      const bool same = distinct.empty() ? sum.count == 0
                                         : distinct.size() == 1 &&
                                               *distinct.begin() == std::pair{sum.count, sum.hash};
      if (is_source || same || plan.sources[s].empty()) {
        current.push_back(o);
      } else {
        behind.push_back(o);
        plan.catch_up[s].push_back(i);
      }
    }
    // The current up owners serve the shard, with the present sources while some owner
    // catches up; when no owner is up, the present holders of E go on serving it; when none of
    // those either, the holders stay what they were.
    next.holders[s] = current;
    if (!behind.empty()) {
      for (uint32_t h : source_ids) {
        if (std::find(current.begin(), current.end(), h) == current.end()) {
          next.holders[s].push_back(h);
        }
      }
    }
    // No owner up: the present sources (E's holders, or, when every holder was declared lost,
    // the stale copies merged instead) go on holding it; none either: unchanged (unavailable).
    if (next.holders[s].empty()) next.holders[s] = source_ids;
    if (next.holders[s].empty()) next.holders[s] = remap(prev.holders[s]);
    std::sort(next.holders[s].begin(), next.holders[s].end());
    next.holders[s].erase(std::unique(next.holders[s].begin(), next.holders[s].end()),
                          next.holders[s].end());
  }
  plan.collect_tombstones = std::all_of(next.members.begin(), next.members.end(),
                                        [](const MemberEntry& m) { return m.up; });
  plan.membership_changed = !lost_now.empty() || next.members.size() != prev.members.size();
  for (size_t i = 0; i < next.members.size() && !plan.membership_changed; ++i) {
    plan.membership_changed = next.members[i].id != prev.members[i].id ||
                              next.members[i].up != prev.members[i].up;
  }
  return plan;
}

}  // namespace shoal::engine
