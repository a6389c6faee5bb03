// Cluster: repair. Walks the namespace below a directory; for every striped object, chunks with
// fewer live replicas than the object was written with (or than this world's replica count,
// for objects a smaller world wrote) get copies on other live members (nodes
// without a replica first), recorded in the inode on its owners. (Metadata records need no
// repair: every Open merges each shard's copies on the members that serve it, cluster_open.cc.)
#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "base/log.h"
#include "engine/cluster.h"
#include "engine/path.h"

namespace shoal::engine {

Result<RepairReport> Cluster::Repair(std::string_view dir) {
  SHOAL_RETURN_IF_ERROR(ValidateDirPath(dir));
  RepairReport report;
  // Depth-first over the namespace below `dir`, one listing page at a time.
  std::vector<std::string> dirs{std::string(dir)};
  while (!dirs.empty()) {
    std::string d = std::move(dirs.back());
    dirs.pop_back();
    ListOptions lo;
    for (;;) {
      auto page = List(d, lo);
      if (!page.ok()) {
        if (page.status().code() == Code::kNotFound) break;  // removed meanwhile
        return page.status().WithContext(fmt::format("repair: listing \"{}\"", d));
      }
      for (const DirEntry& e : page->entries) {
        std::string child = d.empty() ? e.name : d + "/" + e.name;
        if (e.is_dir) {
          dirs.push_back(std::move(child));
        } else {
          SHOAL_RETURN_IF_ERROR(RepairObject(child, &report));
        }
      }
      if (!page->truncated) break;
      lo.start_after = page->next_start_after;
    }
  }
  return report;
}

Result<bool> Cluster::RepairChunks(const std::string& path, Inode* inode,
                                   RepairReport* report) {
  std::unique_ptr<Placement> scratch;
  const Placement& placement = PlacementFor(*inode, &scratch);
  std::map<uint32_t, uint64_t> target_uid;  // rank -> uid of its new local object
  std::vector<Inode::Copy> added;
  // Copies on members declared lost (or no longer members) can never be read again: drop them.
  // A member that is merely down keeps its copies named: it may come back, and its copy may be
  // the last one then.
  const size_t before = inode->copies.size();
  std::erase_if(inode->copies, [&](const Inode::Copy& c) {
    return membership_.IndexOf(c.member.member_id) < 0;
  });
  bool changed = inode->copies.size() != before;
  bool lost = false;
  uint64_t copied_bytes = 0;
  std::vector<std::byte> buf;
  // A live member may still lack a replica: it came back with an older copy of its store (its
  // member id is the same, so placement still names it). Each holder is asked once per local
  // object whether it has it; one that answers NotFound holds nothing of the object.
  std::map<std::pair<uint32_t, uint64_t>, bool> has;
  auto holds = [&](const Replica& r) {
    auto [it, fresh] = has.try_emplace({r.rank, r.uid}, true);
    if (fresh) {
      std::byte probe[1];
      Status s = client_->ChunkRead(r.rank, {r.uid, inode->chunk_size, 0, 0, 1}, probe);
      it->second = s.code() != Code::kNotFound;
    }
    return it->second;
  };
  for (uint64_t chunk = 0; chunk < inode->NumChunks(); ++chunk) {
    if (!inode->ChunkWritten(chunk)) continue;
    std::vector<Replica> live = LiveReplicas(*inode, placement, chunk);
    std::erase_if(live, [&](const Replica& r) { return !holds(r); });
    if (live.empty()) {
      lost = true;
      continue;
    }
    // Objects written by a smaller world (fewer members than the replicas asked) get the
    // count this world can give; an object whose creator chose its count keeps it.
    const uint32_t want = inode->own_replicas
                              ? std::min<uint32_t>(inode->replicas, rank_of_.size())
                              : std::max(inode->replicas, replicas_);
    if (live.size() >= want) continue;
    // Placement indices of the members holding it now and of those that cannot take it.
    std::vector<uint32_t> holding, unusable;
    for (uint32_t idx = 0; idx < rank_of_.size(); ++idx) {
      const uint32_t rank = rank_of_[idx];
      bool holds = std::any_of(live.begin(), live.end(),
                               [&](const Replica& r) { return r.rank == rank; });
      if (holds) holding.push_back(idx);
      else if (!Reachable(rank)) unusable.push_back(idx);
    }
    std::vector<uint32_t> targets;
    for (uint32_t idx : placement_->MoreHolders(
             inode->uid, chunk, holding, unusable,
             want - static_cast<uint32_t>(live.size()))) {
      targets.push_back(rank_of_[idx]);
    }
    if (targets.empty()) continue;  // no member left to hold another copy
    const uint32_t length = inode->ChunkLength(chunk);
    buf.resize(length);
    Status read = Status::Unavailable("no replica");
    for (const Replica& from : live) {
      read = client_->ChunkRead(from.rank, {from.uid, inode->chunk_size, chunk, 0, length}, buf);
      if (read.ok()) break;
    }
    if (!read.ok()) {
      Log(LogLevel::kWarn, "repair: chunk {} of \"{}\" unreadable: {}", chunk, path,
          read.ToString());
      lost = true;
      continue;
    }
    for (uint32_t rank : targets) {
      auto [it, fresh] = target_uid.try_emplace(rank, 0);
      if (fresh) it->second = NewUid();
      Status wrote = client_->ChunkWrite(rank, {it->second, inode->chunk_size, chunk, 0, buf});
      if (!wrote.ok()) {
        return wrote.WithContext(
            fmt::format("repair: copying chunk {} of \"{}\" to rank {}", chunk, path, rank));
      }
      const MemberInfo& m = world_->members()[rank];
      added.push_back({chunk, PlacementMember{m.member_id, m.node}, it->second});
      copied_bytes += buf.size();
    }
  }
  if (lost) report->lost.push_back(path);
  for (auto& [rank, uid] : target_uid) {
    Status committed = client_->ChunkCommitAll({rank}, uid, path)[0];
    if (!committed.ok()) return committed.WithContext(fmt::format("repair of \"{}\"", path));
  }
  if (!added.empty() || changed) {
    inode->copies.insert(inode->copies.end(), added.begin(), added.end());
    // The primary assigns the record's next version; the other owners get the same one (one
    // that misses it keeps the older record, which the next Open's merge replaces).
    const std::vector<uint32_t> owners = Writers(path);
    auto version = owners.empty() ? Result<uint64_t>(Status::Unavailable("no owner"))
                                  : client_->MetaReplace(owners[0], path, inode->uid, *inode, 0);
    if (version.ok()) {
      const std::vector<uint32_t> rest = ReachableOf({owners.begin() + 1, owners.end()});
      (void)client_->MetaReplaceAll(rest, path, inode->uid, *inode, *version);
    }
    if (!version.ok()) {
      // The object was removed or replaced meanwhile: the new copies belong to nobody.
      for (auto& [rank, uid] : target_uid) DropEverywhere(uid, {rank});
      return false;
    }
    report->chunks_copied += added.size();
    repair_chunks_copied_->Add(added.size());
    report->bytes_copied += copied_bytes;
  }
  return true;
}

Status Cluster::RepairObject(const std::string& path, RepairReport* report) {
  auto found = LookupInode(path);
  if (!found.ok()) {
    if (found.status().code() == Code::kNotFound) return Status::OK();  // removed meanwhile
    return found.status().WithContext("repair");
  }
  Inode inode = std::move(found).value();
  report->objects++;

  if (inode.is_striped) {
    SHOAL_ASSIGN_OR_RETURN(bool still_there, RepairChunks(path, &inode, report));
    if (!still_there) return Status::OK();
  }

  return Status::OK();
}

}  // namespace shoal::engine
