#include "engine/world.h"

#include <fmt/format.h>

#include <future>
#include <set>

#include "base/bytes.h"
#include "base/log.h"
#include "engine/protocol.h"

namespace shoal::engine {
namespace {

using protocol::Op;
using protocol::Wire;
using transport::Blob;
using transport::Payload;
using transport::Reply;

using protocol::kMaxCollectiveBlob;

}  // namespace

Result<std::unique_ptr<World>> World::Join(const WorldOptions& o,
                                           std::unique_ptr<transport::Transport> transport,
                                           transport::Rendezvous& rdzv) {
  if (o.world_size == 0 || o.rank >= o.world_size) {
    return Status::InvalidArgument(
        fmt::format("rank {} outside a job of {} ranks", o.rank, o.world_size));
  }
  std::unique_ptr<World> w(new World());
  w->collect_wait_ = o.timeout;
  w->transport_ = std::move(transport);
  World* self = w.get();
  w->transport_->SetHandler(Wire(Op::kCollectiveContribute),
                            [self](uint32_t, std::span<const std::byte> p) {
                              return self->OnContribute(p);
                            });
  w->transport_->SetHandler(Wire(Op::kCollectiveResult),
                            [self](uint32_t, std::span<const std::byte> p) {
                              return self->OnResult(p);
                            });
  if (o.install_handlers) o.install_handlers(*w->transport_);

  MemberInfo me{o.rank, o.slot, o.member_id, o.node, w->transport_->address()};
  SHOAL_ASSIGN_OR_RETURN(auto table, rdzv.AllGather(EncodeMemberInfo(me)));
  // The table lists rank 0's stores in slot order, then rank 1's, ...: check that shape, and
  // find this member in it.
  std::set<std::string> ids;
  int64_t mine = -1;
  for (uint32_t i = 0; i < table.size(); ++i) {
    auto m = DecodeMemberInfo(table[i]);
    if (!m.ok()) return m.status().WithContext(fmt::format("member {}", i));
    const bool next_slot = i > 0 && m->job_rank == w->members_.back().job_rank &&
                           m->slot == w->members_.back().slot + 1;
    const bool next_rank = m->slot == 0 && m->job_rank == (i == 0 ? 0 : w->members_.back().job_rank + 1);
    if (!next_slot && !next_rank) {
      return Status::InvalidArgument(fmt::format(
          "member {} claims rank {} slot {}, out of order", i, m->job_rank, m->slot));
    }
    if (!ids.insert(m->member_id).second) {
      return Status::InvalidArgument(fmt::format(
          "members share member id {}: one store directory was opened twice", m->member_id));
    }
    if (m->job_rank == o.rank && m->slot == o.slot) {
      if (m->member_id != o.member_id) {
        return Status::InvalidArgument(fmt::format(
            "rank {} slot {} in the rendezvous table has member id {}, this store's is {}",
            o.rank, o.slot, m->member_id, o.member_id));
      }
      mine = i;
    }
    if (m->slot == 0) w->rank_heads_.push_back(i);
    w->all_.push_back(i);
    w->members_.push_back(std::move(m).value());
  }
  if (w->rank_heads_.size() != o.world_size || mine < 0) {
    return Status::InvalidArgument(fmt::format(
        "rendezvous returned {} members of {} ranks, expected {} ranks including rank {} slot "
        "{}",
        table.size(), w->rank_heads_.size(), o.world_size, o.rank, o.slot));
  }
  w->rank_ = static_cast<uint32_t>(mine);
  SHOAL_RETURN_IF_ERROR(w->transport_->Bind(w->rank_, w->size()));
  for (uint32_t r = 0; r < w->members_.size(); ++r) {
    SHOAL_RETURN_IF_ERROR(w->transport_->Connect(r, w->members_[r].ucx_address));
  }
  SHOAL_RETURN_IF_ERROR(w->Barrier(o.timeout).WithContext("joining the world"));
  Log(LogLevel::kInfo, "world: member {} of {} joined (rank {} of {}, store {} of its rank, "
      "member id {}, node {})",
      w->rank_, w->size(), o.rank, o.world_size, o.slot, o.member_id, o.node);
  return w;
}

const std::vector<uint32_t>& World::Participants(Group group) const {
  return group == Group::kRanks ? rank_heads_ : all_;
}

World::~World() { transport_.reset(); }

Reply World::OnContribute(std::span<const std::byte> payload) {
  protocol::Contribute req;
  Status bad = protocol::Decode(payload, &req);
  if (!bad.ok()) return {bad, {}};
  const uint64_t epoch = req.seq;
  std::unique_lock lk(mu_);
  // Rank 0 may ask before this member reached the collective: wait for it.
  if (!cv_.wait_for(lk, collect_wait_, [&] { return contributions_.count(epoch) != 0; })) {
    return {Status::Timeout(fmt::format("member {} never reached collective {}", rank_, epoch)),
            {}};
  }
  Blob b = std::move(contributions_[epoch]);
  contributions_.erase(epoch);
  return {Status::OK(), std::move(b)};
}

Reply World::OnResult(std::span<const std::byte> payload) {
  protocol::CollectiveResult res;
  ByteReader peek(payload);
  uint64_t seq = 0;
  if (!peek.Get(&seq)) return {Status::InvalidArgument("collective result: no sequence"), {}};
  const auto expected = static_cast<uint32_t>(Participants(GroupOfSeq(seq)).size());
  Status bad = protocol::Decode(payload, expected, &res);
  if (!bad.ok()) return {bad, {}};
  std::lock_guard lk(mu_);
  results_[res.seq] = std::move(res.table);
  cv_.notify_all();
  return {Status::OK(), {}};
}

Status World::Barrier(std::chrono::milliseconds deadline, Group group) {
  return AllGather({}, deadline, group).status();
}

Result<std::vector<Blob>> World::AllGather(const Blob& mine, std::chrono::milliseconds deadline,
                                           Group group) {
  if (mine.size() > kMaxCollectiveBlob) {
    return Status::InvalidArgument("all-gather contribution above 1 MiB");
  }
  if (group == Group::kRanks && !rank_head()) {
    return Status::FailedPrecondition(fmt::format(
        "member {} serves store {} of rank {}: only a rank's first store takes part in the "
        "job's collectives",
        rank_, members_[rank_].slot, job_rank()));
  }
  const std::vector<uint32_t>& who = Participants(group);
  uint64_t epoch;
  {
    std::lock_guard lk(mu_);
    const auto g = static_cast<size_t>(group);
    epoch = epoch_[g]++ | (uint64_t{g} << 63);
    if (rank_ != 0) {
      contributions_[epoch] = mine;
      cv_.notify_all();
    }
  }
  if (rank_ != 0) {
    // Until rank 0's result, the deadline or rank 0's end: a member that died (its endpoint
    // failed) ends the wait at the next check, not at the deadline (every 100 ms, so that a
    // flag the transport publishes just after Connect is never read too early).
    const auto give_up = std::chrono::steady_clock::now() + deadline;
    std::unique_lock lk(mu_);
    while (results_.count(epoch) == 0) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= give_up) {
        contributions_.erase(epoch);
        return Status::Timeout(fmt::format("collective {}: no result from rank 0", epoch));
      }
      const auto slice = std::min<std::chrono::steady_clock::duration>(
          give_up - now, std::chrono::milliseconds(100));
      if (!cv_.wait_for(lk, slice, [&] { return results_.count(epoch) != 0; }) &&
          !transport_->peer_up(who[0])) {
        contributions_.erase(epoch);
        return Status::Unavailable(
            fmt::format("collective {}: member {} (rank 0) is down", epoch, who[0]));
      }
    }
    auto table = std::move(results_[epoch]);
    results_.erase(epoch);
    return table;
  }

  // Member 0: collect every participant's contribution, then hand every one the table.
  const auto n = static_cast<uint32_t>(who.size());
  std::vector<Blob> table(n);
  table[0] = mine;
  Blob req = protocol::Encode(protocol::Contribute{epoch});
  // A member answers once it reached the collective, or with Timeout after waiting collect_wait_
  // for it: a member that is slow to get there (a long merge at Open) is asked again until this
  // collective's deadline; any other error (a dead member) ends it.
  const auto give_up = std::chrono::steady_clock::now() + deadline;
  std::vector<bool> have(n, false);
  have[0] = true;
  Status first;
  for (;;) {
    std::vector<std::promise<Result<Payload>>> replies(n);
    std::vector<uint32_t> asked;
    for (uint32_t r = 1; r < n; ++r) {
      if (have[r]) continue;
      asked.push_back(r);
      transport_->CallAsync(who[r], Wire(Op::kCollectiveContribute), req, deadline,
                            [&replies, r](Result<Payload> p) { replies[r].set_value(std::move(p)); });
    }
    bool again = false;
    for (uint32_t r : asked) {
      auto p = replies[r].get_future().get();
      if (p.ok()) {
        table[r] = std::move(p).value();
        have[r] = true;
      } else if (p.status().code() == Code::kTimeout && std::chrono::steady_clock::now() < give_up) {
        again = true;
      } else if (first.ok()) {
        first = p.status().WithContext(fmt::format("collective {} at member {}", epoch, who[r]));
      }
    }
    if (!first.ok() || !again) break;
  }
  SHOAL_RETURN_IF_ERROR(first);
  Blob result = protocol::Encode(protocol::CollectiveResult{epoch, table});
  std::vector<std::promise<Result<Payload>>> acks(n);
  for (uint32_t r = 1; r < n; ++r) {
    transport_->CallAsync(who[r], Wire(Op::kCollectiveResult), result, deadline,
                          [&acks, r](Result<Payload> p) { acks[r].set_value(std::move(p)); });
  }
  for (uint32_t r = 1; r < n; ++r) {
    auto p = acks[r].get_future().get();
    if (!p.ok() && first.ok()) first = p.status().WithContext(fmt::format("member {}", who[r]));
  }
  SHOAL_RETURN_IF_ERROR(first);
  return table;
}

}  // namespace shoal::engine
