// Cluster: read planning and failover. Every chunk range of a batch becomes a Piece with its
// candidate replicas, nearest first; rounds send every piece to its current candidate (remote
// ones in parallel, at most `window` in flight; local ones in one batch to this member's store)
// and move the failed pieces to their next candidate, until each piece is read or has no
// candidate left.
#include <boost/container/small_vector.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include "base/log.h"
#include "engine/cluster.h"
#include "engine/object_rules.h"
#include "engine/path.h"
#include "engine/store_layout.h"

namespace shoal::engine {

// One chunk range of a read and the replicas it may come from.
struct Cluster::Piece {
  size_t request = 0;
  uint32_t chunk_size = 0;
  uint64_t chunk = 0;
  uint32_t in_chunk = 0;
  uint32_t len = 0;
  std::byte* dst = nullptr;
  std::vector<Replica> candidates;  // nearest first
  size_t next = 0;
  Status status;

  protocol::ChunkRead From(const Replica& r) const {
    return {r.uid, chunk_size, chunk, in_chunk, len};
  }
};

std::vector<Cluster::Replica> Cluster::LiveReplicas(const Inode& inode,
                                                   const Placement& placement,
                                                   uint64_t chunk) const {
  const uint32_t me = world_->rank();
  const std::string& my_node = world_->members()[me].node;
  boost::container::small_vector<std::pair<int, Replica>, 8> ranked;  // no allocation per piece
  auto add = [&](const std::string& member_id, uint64_t uid) {
    const int64_t found = RankOfMember(member_id);
    if (found < 0) return;  // not in this world
    const uint32_t rank = static_cast<uint32_t>(found);
    if (!Reachable(rank)) return;
    for (auto& [d, r] : ranked) {
      if (r.rank == rank && r.uid == uid) return;
    }
    int distance = rank == me ? 0 : world_->members()[rank].node == my_node ? 1 : 2;
    ranked.push_back({distance, Replica{rank, uid}});
  };
  for (uint32_t idx : placement.ChunkHolders(inode.uid, chunk, inode.replicas, inode.home)) {
    add(placement.members()[idx].member_id, inode.uid);
  }
  for (const Inode::Copy& c : inode.copies) {
    if (c.chunk == chunk) add(c.member.member_id, c.uid);
  }
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Replica> out;
  out.reserve(ranked.size());
  for (auto& [d, r] : ranked) out.push_back(r);
  return out;
}

const Placement& Cluster::PlacementFor(const Inode& inode,
                                       std::unique_ptr<Placement>* scratch) const {
  if (inode.layout == placement_->members()) return *placement_;
  *scratch = std::make_unique<Placement>(inode.layout);
  return **scratch;
}

Status Cluster::ReadBatch(std::span<ReadRequest> requests) {
  std::vector<Piece> pieces;
  std::unique_ptr<Placement> scratch;
  // One metadata lookup per object, however many ranges of it the batch reads, all of them
  // grouped by the member each asks (LookupInodes: this member's own shard copies in one read
  // transaction, each other owner in one call, all at once).
  std::map<std::string_view, Result<Inode>> inodes;
  {
    std::vector<std::string_view> paths;
    for (ReadRequest& req : requests) {
      req.bytes_read = 0;
      req.status = ValidateObjectPath(req.path);
      if (!req.status.ok() || inodes.count(req.path) != 0) continue;
      inodes.emplace(req.path, Status::NotFound(""));  // a placeholder, set below
      paths.push_back(req.path);
    }
    std::vector<Result<Inode>> found = LookupInodes(paths);
    for (size_t i = 0; i < paths.size(); ++i) inodes.at(paths[i]) = std::move(found[i]);
  }
  for (size_t q = 0; q < requests.size(); ++q) {
    ReadRequest& req = requests[q];
    if (!req.status.ok()) continue;
    auto found = inodes.find(req.path);
    if (found == inodes.end()) found = inodes.emplace(req.path, LookupInode(req.path)).first;
    const Result<Inode>& inode = found->second;
    const std::optional<uint64_t> len = StartRead(req, inode);
    if (!len) continue;
    const uint64_t n = *len;
    if (!inode->is_striped) {
      req.status = Status::Corruption(fmt::format("\"{}\": metadata names no chunks", req.path));
      continue;
    }
    const Placement& placement = PlacementFor(*inode, &scratch);
    const uint64_t cs = inode->chunk_size;
    for (uint64_t pos = req.offset; pos < req.offset + n;) {
      const uint64_t chunk = pos / cs;
      const uint32_t in = static_cast<uint32_t>(pos - chunk * cs);
      const uint32_t take = static_cast<uint32_t>(std::min<uint64_t>(cs - in, req.offset + n - pos));
      std::byte* dst = req.dst.data() + (pos - req.offset);
      if (!inode->ChunkWritten(chunk)) {
        std::memset(dst, 0, take);
      } else {
        Piece p;
        p.request = q;
        p.chunk_size = static_cast<uint32_t>(cs);
        p.chunk = chunk;
        p.in_chunk = in;
        p.len = take;
        p.dst = dst;
        p.candidates = LiveReplicas(*inode, placement, chunk);
        pieces.push_back(std::move(p));
      }
      pos += take;
    }
  }

  std::vector<size_t> todo(pieces.size());
  for (size_t i = 0; i < todo.size(); ++i) todo[i] = i;
  const uint32_t me = world_->rank();
  while (!todo.empty()) {
    std::vector<size_t> local, remote;
    for (size_t i : todo) {
      Piece& p = pieces[i];
      if (p.next >= p.candidates.size()) {
        ReadRequest& req = requests[p.request];
        if (req.status.ok()) {
          req.status = p.status.ok()
                           ? Status::Unavailable(fmt::format(
                                 "chunk {} of \"{}\": no live member holds a replica", p.chunk,
                                 req.path))
                           : p.status.WithContext(fmt::format(
                                 "chunk {} of \"{}\", every replica failed", p.chunk, req.path));
        }
        continue;
      }
      (p.candidates[p.next].rank == me ? local : remote).push_back(i);
    }
    Flight flight(options_.window);
    for (size_t i : remote) {
      Piece* p = &pieces[i];
      const Replica& from = p->candidates[p->next];
      flight.Acquire();
      client_->ChunkReadAsync(from.rank, p->From(from), {p->dst, p->len},
                              [p, &flight](Status s) {
                                p->status = std::move(s);
                                flight.Release();
                              });
    }
    if (!local.empty()) {
      // This member's pieces in one batch to its store (it reads each chunk once).
      std::vector<ReadRequest> lr;
      for (size_t i : local) {
        Piece& p = pieces[i];
        lr.push_back({ChunkObjectName(p.candidates[p.next].uid),
                      p.chunk * p.chunk_size + p.in_chunk, std::span<std::byte>(p.dst, p.len), {},
                      0});
      }
      (void)store_->ReadBatch(lr);
      for (size_t k = 0; k < local.size(); ++k) {
        Piece& p = pieces[local[k]];
        p.status = lr[k].status;
        if (p.status.ok()) {
          std::memset(p.dst + lr[k].bytes_read, 0, p.len - lr[k].bytes_read);
          local_chunk_bytes_read_->Add(p.len);
        }
      }
    }
    flight.Wait();
    todo.clear();
    for (const std::vector<size_t>* group : {&local, &remote}) {
      for (size_t i : *group) {
        Piece& p = pieces[i];
        if (p.status.ok()) continue;
        Log(LogLevel::kWarn, "chunk {} of \"{}\" from rank {}: {}; trying the next replica",
            p.chunk, requests[p.request].path, p.candidates[p.next].rank, p.status.ToString());
        p.next++;
        read_failovers_->Add();
        todo.push_back(i);
      }
    }
  }
  for (ReadRequest& req : requests) {
    if (!req.status.ok()) req.bytes_read = 0;
  }
  return Status::OK();
}

}  // namespace shoal::engine
