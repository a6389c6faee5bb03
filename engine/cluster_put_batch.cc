// Cluster::PutBatch: many small whole objects, each member's part in one transaction.
//
// 1. Every object gets its inode here (inline up to the inline threshold, else one chunk of a
//    fresh uid) and its chunk holders from the placement.
// 2. Each holder gets its objects' bytes in one ChunkPutMany per 32 MiB (every call in flight at
//    once), stored in one write pass and one commit (ObjectStore::PutMany): a holder has all of
//    a call's objects or none. Nothing is visible yet: a holder's local objects without a record
//    are orphans the background sweep removes.
// 3. The primary metadata owner of each object gets its records in one MetaInsertMany (one
//    transaction; it decides a race with another creator and assigns the versions), then every
//    other owner gets them with those versions. A record committed at its primary is the
//    object's commit point, as for Seal; a failure at another owner rolls the record back.
// Objects that failed at a holder or at the primary have their bytes dropped from the holders
// that took them.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_set>

#include "base/crc32c.h"
#include "engine/cluster.h"
#include "engine/object_rules.h"
#include "engine/path.h"

namespace shoal::engine {

namespace {

constexpr uint64_t kMaxCallBytes = 32ull << 20;  // object bytes per ChunkPutMany call

}  // namespace

Status Cluster::PutBatch(std::span<PutRequest> requests, const CreateOptions& co) {
  const uint32_t cs = co.chunk_size == 0 ? options_.chunk_size : co.chunk_size;
  const bool own_replicas = co.replicas != 0;
  const uint32_t replicas =
      own_replicas ? std::clamp<uint32_t>(co.replicas, 1, static_cast<uint32_t>(rank_of_.size()))
                   : replicas_;
  const int32_t home = co.local_first ? my_index_ : -1;

  struct Item {
    PutRequest* req = nullptr;
    Inode inode;
    std::vector<uint32_t> holders;
    uint64_t version = 0;
  };
  std::vector<Item> items;
  items.reserve(requests.size());
  {
    std::unordered_set<std::string_view> seen;
    MutexLock lk(&open_mu_);
    for (PutRequest& r : requests) {
      r.status = CheckBatchObject(r.path, r.data.size(), cs);
      if (r.status.ok() && !seen.insert(r.path).second) {
        r.status = Status::AlreadyExists(fmt::format("\"{}\" comes twice in the batch", r.path));
      }
      if (r.status.ok() && open_.count(r.path) != 0) {
        r.status = Status::AlreadyExists(fmt::format("object \"{}\" is being written", r.path));
      }
      if (r.status.ok()) items.push_back(Item{&r, {}, {}, 0});
    }
  }
  StatCache* cache = stat_cache_.get();
  struct ForgetAll {
    StatCache* cache;
    std::vector<Item>* items;
    ~ForgetAll() {
      for (const Item& it : *items) cache->Forget(it.req->path);
    }
  } forget{cache, &items};

  const int64_t now = SealTimeNs();
  for (Item& it : items) {
    Inode& in = it.inode;
    in.size = it.req->data.size();
    in.chunk_size = cs;
    in.seal_time_ns = now;
    if (in.size <= options_.inline_threshold) {
      in.is_inline = true;
      in.inline_data.assign(reinterpret_cast<const char*>(it.req->data.data()), in.size);
      in.inline_crc = Crc32c(in.inline_data.data(), in.size);
      continue;
    }
    in.is_striped = true;
    in.uid = NewUid();
    in.replicas = replicas;
    in.own_replicas = own_replicas;
    in.layout = placement_->members();
    in.home = home;
    in.written = {1};
    for (uint32_t idx : placement_->ChunkHolders(in.uid, 0, replicas, home)) {
      it.holders.push_back(rank_of_[idx]);
    }
  }
  auto fail = [](Item& it, const Status& s) {
    if (it.req->status.ok()) it.req->status = s;
  };

  // A world of one, or objects this member alone holds and owns: bytes and records in one
  // transaction. A refusal there (a name taken) sends the batch down the general path, which
  // gives each object its own outcome.
  const uint32_t me = world_->rank();
  bool alone = !items.empty();
  for (const Item& it : items) {
    const std::vector<uint32_t>& writers = Writers(it.req->path);
    if (writers.size() != 1 || writers[0] != me || Owners(it.req->path).empty() ||
        std::any_of(it.holders.begin(), it.holders.end(), [&](uint32_t r) { return r != me; })) {
      alone = false;
      break;
    }
  }
  if (alone) {
    protocol::ChunkPutMany chunks{cs, {}};
    std::vector<protocol::MetaInsert> records;
    records.reserve(items.size());
    for (const Item& it : items) {
      if (it.inode.is_striped) chunks.items.push_back({it.inode.uid, it.req->path, it.req->data});
      records.push_back({it.req->path, 0, it.inode});
    }
    auto versions = service_->ChunkPutManyWithRecords(chunks, records);
    if (versions.ok()) return Status::OK();
    const Code c = versions.status().code();
    if (c != Code::kAlreadyExists && c != Code::kFailedPrecondition &&
        c != Code::kInvalidArgument) {
      for (Item& it : items) fail(it, versions.status().WithContext("storing the batch"));
      return Status::OK();
    }
  }

  // 2. The bytes, to every holder.
  std::vector<MemberClient::ChunkPutCall> calls;
  std::vector<std::vector<size_t>> call_items;
  {
    std::map<uint32_t, size_t> open_call;  // holder -> its call being filled
    std::vector<uint64_t> call_bytes;
    for (size_t i = 0; i < items.size(); ++i) {
      const Item& it = items[i];
      for (uint32_t rank : it.holders) {
        auto found = open_call.find(rank);
        if (found == open_call.end() || call_bytes[found->second] + it.inode.size > kMaxCallBytes ||
            call_items[found->second].size() == kMaxPutBatch) {
          calls.push_back({rank, protocol::ChunkPutMany{cs, {}}});
          call_items.emplace_back();
          call_bytes.push_back(0);
          found = open_call.insert_or_assign(rank, calls.size() - 1).first;
        }
        const size_t c = found->second;
        calls[c].second.items.push_back({it.inode.uid, it.req->path, it.req->data});
        call_items[c].push_back(i);
        call_bytes[c] += it.inode.size;
      }
    }
  }
  std::vector<std::set<uint32_t>> stored(items.size());  // holders that took each object
  if (!calls.empty()) {
    std::vector<Status> results = client_->ChunkPutMany(calls);
    for (size_t c = 0; c < calls.size(); ++c) {
      for (size_t i : call_items[c]) {
        if (results[c].ok()) {
          stored[i].insert(calls[c].first);
        } else {
          fail(items[i], results[c].WithContext(fmt::format(
                             "storing \"{}\" on rank {}", items[i].req->path, calls[c].first)));
        }
      }
    }
  }
  auto drop = [&](size_t i) {
    if (!stored[i].empty()) DropEverywhere(items[i].inode.uid, stored[i]);
    stored[i].clear();
  };

  // 3. The records: at each object's primary owner, then at its other owners.
  std::map<uint32_t, size_t> group_of;
  std::vector<MemberClient::InsertGroup> groups;
  std::vector<std::vector<size_t>> group_items;
  auto add = [&](uint32_t rank, size_t i, uint64_t version) {
    auto [g, fresh] = group_of.try_emplace(rank, groups.size());
    if (fresh) {
      groups.push_back({rank, {}});
      group_items.emplace_back();
    }
    groups[g->second].second.push_back(
        protocol::MetaInsert{items[i].req->path, version, items[i].inode});
    group_items[g->second].push_back(i);
  };
  for (size_t i = 0; i < items.size(); ++i) {
    Item& it = items[i];
    if (!it.req->status.ok()) {
      drop(i);
      continue;
    }
    const std::vector<uint32_t>& writers = Writers(it.req->path);
    if (writers.empty() || Owners(it.req->path).empty()) {
      fail(it, Status::Unavailable(fmt::format(
                   "storing \"{}\": no member serving its metadata is up", it.req->path)));
      drop(i);
      continue;
    }
    add(writers[0], i, 0);
  }
  std::vector<std::vector<Result<uint64_t>>> versions = client_->MetaInsertMany(groups);
  for (size_t g = 0; g < groups.size(); ++g) {
    for (size_t k = 0; k < group_items[g].size(); ++k) {
      const size_t i = group_items[g][k];
      if (versions[g][k].ok()) {
        items[i].version = *versions[g][k];
        continue;
      }
      fail(items[i], versions[g][k].status().WithContext(
                         fmt::format("storing \"{}\"", items[i].req->path)));
      // A primary that gave no answer may hold the record: its bytes stay (as Seal leaves
      // them; the background sweep removes them if it does not).
      const Code c = versions[g][k].status().code();
      if (c == Code::kAlreadyExists || c == Code::kFailedPrecondition ||
          c == Code::kInvalidArgument) {
        drop(i);
      }
    }
  }
  group_of.clear();
  groups.clear();
  group_items.clear();
  for (size_t i = 0; i < items.size(); ++i) {
    if (!items[i].req->status.ok()) continue;
    const std::vector<uint32_t>& writers = Writers(items[i].req->path);
    for (size_t w = 1; w < writers.size(); ++w) add(writers[w], i, items[i].version);
  }
  if (groups.empty()) return Status::OK();
  versions = client_->MetaInsertMany(groups);
  std::map<size_t, Status> rolled_back;  // item -> the first owner's failure
  for (size_t g = 0; g < groups.size(); ++g) {
    for (size_t k = 0; k < group_items[g].size(); ++k) {
      if (!versions[g][k].ok()) rolled_back.try_emplace(group_items[g][k], versions[g][k].status());
    }
  }
  for (auto& [i, why] : rolled_back) {
    // As Seal does: the records inserted go (only this object's), leaving tombstones; an owner
    // that gave no answer may hold one, so the bytes stay.
    Item& it = items[i];
    const std::vector<uint32_t>& writers = Writers(it.req->path);
    (void)client_->MetaRemoveAll(ReachableOf(writers), it.req->path, it.inode.uid, 0);
    fail(it, why.WithContext(fmt::format("storing \"{}\" (metadata replica)", it.req->path)));
  }
  return Status::OK();
}

}  // namespace shoal::engine
