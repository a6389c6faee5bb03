// Cluster::Stat and Cluster::StatBatch: metadata lookups of sealed objects, with the lease of
// engine/stat_cache.h on those answered by other members.
#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "engine/cluster.h"
#include "engine/path.h"

namespace shoal::engine {

Result<ObjectInfo> Cluster::Stat(std::string_view path) {
  SHOAL_RETURN_IF_ERROR(ValidateObjectPath(path));
  const uint32_t me = world_->rank();
  const std::vector<uint32_t>& writers = Writers(path);
  const bool local = Reachable(me) && std::find(writers.begin(), writers.end(), me) != writers.end();
  const auto at = StatCache::Clock::now();
  if (!local) {
    if (auto hit = stat_cache_->Get(path, at)) return *std::move(hit);
  }
  SHOAL_ASSIGN_OR_RETURN(Inode inode, LookupInode(path));
  ObjectInfo info = InfoOf(path, inode);
  if (!local) stat_cache_->Put(info, at);
  return info;
}

// Each path asks its metadata writers in LookupInode's order (this member first), one round
// per writer: a round groups the paths still open by the writer they ask next and sends each
// writer its group in one call (MemberClient::MetaGetMany; this member's own shards answer
// directly), all at once. A path is done at its first inode, at InvalidArgument, or when no
// writer is left: NotFound if one said so (a replica that lost its store says so too, hence the
// next), else the last error.
std::vector<Result<Inode>> Cluster::LookupInodes(std::span<const std::string_view> paths) {
  const uint32_t me = world_->rank();
  std::vector<Result<Inode>> out(paths.size(), Status::Unavailable("not looked up"));
  struct Open {
    size_t index;
    std::vector<uint32_t> ask;  // the writers still to ask, in order
    bool not_found = false;
    Status last;
  };
  std::vector<Open> open;
  open.reserve(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) {
    std::vector<uint32_t> ask = Writers(paths[i]);
    std::stable_partition(ask.begin(), ask.end(), [&](uint32_t w) { return w == me; });
    std::reverse(ask.begin(), ask.end());  // asked from the back
    open.push_back(Open{i, std::move(ask), false, Status::OK()});
  }
  while (!open.empty()) {
    std::map<uint32_t, size_t> group_of;
    std::vector<MemberClient::PathGroup> groups;
    std::vector<std::vector<size_t>> members;  // per group: indices into `open`
    std::vector<Open> next;
    for (size_t k = 0; k < open.size(); ++k) {
      Open& o = open[k];
      while (!o.ask.empty() && !Reachable(o.ask.back())) o.ask.pop_back();
      if (o.ask.empty()) {  // no writer left: the verdict
        const std::string_view path = paths[o.index];
        if (o.not_found) {
          out[o.index] = Status::NotFound(fmt::format("no object \"{}\"", path));
        } else if (o.last.ok()) {
          out[o.index] = Status::Unavailable(
              fmt::format("no live member holds the metadata of \"{}\"", path));
        } else {
          out[o.index] = o.last;
        }
        continue;
      }
      const uint32_t w = o.ask.back();
      auto [it, fresh] = group_of.emplace(w, groups.size());
      if (fresh) {
        groups.push_back({w, {}});
        members.emplace_back();
      }
      groups[it->second].second.push_back(paths[o.index]);
      members[it->second].push_back(k);
    }
    if (groups.empty()) break;
    std::vector<std::vector<Result<Inode>>> found = client_->MetaGetMany(groups);
    for (size_t g = 0; g < groups.size(); ++g) {
      for (size_t j = 0; j < members[g].size(); ++j) {
        Open& o = open[members[g][j]];
        Result<Inode>& inode = found[g][j];
        o.ask.pop_back();
        if (inode.ok() || inode.status().code() == Code::kInvalidArgument) {
          out[o.index] = std::move(inode);
          continue;
        }
        if (inode.status().code() == Code::kNotFound) {
          o.not_found = true;
        } else {
          o.last = inode.status();
        }
        next.push_back(std::move(o));
      }
    }
    open = std::move(next);
  }
  return out;
}

// The lookups in one LookupInodes; what is not this member's own metadata is taken from the
// lease (engine/stat_cache.h) when it has it, and put there when it was looked up.
Status Cluster::StatBatch(std::span<StatRequest> requests) {
  const uint32_t me = world_->rank();
  const auto at = StatCache::Clock::now();
  std::vector<std::string_view> ask;
  std::vector<size_t> asked;
  std::vector<bool> local(requests.size(), false);
  for (size_t i = 0; i < requests.size(); ++i) {
    StatRequest& r = requests[i];
    r.info = {};
    r.status = ValidateObjectPath(r.path);
    if (!r.status.ok()) continue;
    const std::vector<uint32_t>& writers = Writers(r.path);
    local[i] = Reachable(me) && std::find(writers.begin(), writers.end(), me) != writers.end();
    if (!local[i]) {
      if (auto hit = stat_cache_->Get(r.path, at)) {
        r.info = *std::move(hit);
        continue;
      }
    }
    ask.push_back(r.path);
    asked.push_back(i);
  }
  std::vector<Result<Inode>> found = LookupInodes(ask);
  for (size_t k = 0; k < asked.size(); ++k) {
    StatRequest& r = requests[asked[k]];
    if (!found[k].ok()) {
      r.status = found[k].status();
      continue;
    }
    r.info = InfoOf(r.path, *found[k]);
    if (!local[asked[k]]) stat_cache_->Put(r.info, at);
  }
  return Status::OK();
}

}  // namespace shoal::engine
