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

// Each request asks the path's metadata writers in LookupInode's order (this member first), one
// round per writer: a round groups the requests still open by the writer they ask next and
// sends each writer its group in one call (MemberClient::MetaGetMany), all at once. A request
// is done at its first inode, at InvalidArgument, or when no writer is left: NotFound if one said
// so (a replica that lost its store says so too, hence the next), else the last error.
Status Cluster::StatBatch(std::span<StatRequest> requests) {
  const uint32_t me = world_->rank();
  const auto at = StatCache::Clock::now();
  struct Open {
    size_t index;
    std::vector<uint32_t> ask;  // the writers still to ask, in order
    bool local = false;
    bool not_found = false;
    Status last;
  };
  std::vector<Open> open;
  for (size_t i = 0; i < requests.size(); ++i) {
    StatRequest& r = requests[i];
    r.info = {};
    r.status = ValidateObjectPath(r.path);
    if (!r.status.ok()) continue;
    std::vector<uint32_t> ask = Writers(r.path);
    std::stable_partition(ask.begin(), ask.end(), [&](uint32_t w) { return w == me; });
    const bool local = Reachable(me) && !ask.empty() && ask.front() == me;
    if (!local) {
      if (auto hit = stat_cache_->Get(r.path, at)) {
        r.info = *std::move(hit);
        continue;
      }
    }
    std::reverse(ask.begin(), ask.end());  // asked from the back
    open.push_back(Open{i, std::move(ask), local, false, Status::OK()});
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
        StatRequest& r = requests[o.index];
        if (o.not_found) {
          r.status = Status::NotFound(fmt::format("no object \"{}\"", r.path));
        } else if (o.last.ok()) {
          r.status = Status::Unavailable(
              fmt::format("no live member holds the metadata of \"{}\"", r.path));
        } else {
          r.status = o.last;
        }
        continue;
      }
      const uint32_t w = o.ask.back();
      auto [it, fresh] = group_of.emplace(w, groups.size());
      if (fresh) {
        groups.push_back({w, {}});
        members.emplace_back();
      }
      groups[it->second].second.push_back(requests[o.index].path);
      members[it->second].push_back(k);
    }
    if (groups.empty()) break;
    std::vector<std::vector<Result<Inode>>> found = client_->MetaGetMany(groups);
    for (size_t g = 0; g < groups.size(); ++g) {
      for (size_t j = 0; j < members[g].size(); ++j) {
        Open& o = open[members[g][j]];
        StatRequest& r = requests[o.index];
        Result<Inode>& inode = found[g][j];
        o.ask.pop_back();
        if (inode.ok()) {
          r.info = InfoOf(r.path, *inode);
          if (!o.local) stat_cache_->Put(r.info, at);
          continue;
        }
        const Status& s = inode.status();
        if (s.code() == Code::kInvalidArgument) {
          r.status = s;
          continue;
        }
        if (s.code() == Code::kNotFound) {
          o.not_found = true;
        } else {
          o.last = s;
        }
        next.push_back(std::move(o));
      }
    }
    open = std::move(next);
  }
  return Status::OK();
}

}  // namespace shoal::engine
