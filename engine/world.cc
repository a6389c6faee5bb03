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
  if (transport->self() != o.rank || transport->world_size() != o.world_size) {
    return Status::InvalidArgument(fmt::format(
        "transport of member {} of {} for rank {} of {}", transport->self(),
        transport->world_size(), o.rank, o.world_size));
  }
  std::unique_ptr<World> w(new World());
  w->rank_ = o.rank;
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

  MemberInfo me{o.rank, o.member_id, o.node, w->transport_->address()};
  SHOAL_ASSIGN_OR_RETURN(auto table, rdzv.AllGather(EncodeMemberInfo(me)));
  if (table.size() != o.world_size) {
    return Status::InvalidArgument(fmt::format("rendezvous returned {} members, expected {}",
                                               table.size(), o.world_size));
  }
  std::set<std::string> ids;
  for (uint32_t r = 0; r < table.size(); ++r) {
    auto m = DecodeMemberInfo(table[r]);
    if (!m.ok()) return m.status().WithContext(fmt::format("member {}", r));
    if (m->rank != r) {
      return Status::InvalidArgument(fmt::format("member {} claims rank {}", r, m->rank));
    }
    if (!ids.insert(m->member_id).second) {
      return Status::InvalidArgument(fmt::format(
          "ranks share member id {}: two ranks opened the same store directory", m->member_id));
    }
    w->members_.push_back(std::move(m).value());
  }
  for (uint32_t r = 0; r < w->members_.size(); ++r) {
    SHOAL_RETURN_IF_ERROR(w->transport_->Connect(r, w->members_[r].ucx_address));
  }
  SHOAL_RETURN_IF_ERROR(w->Barrier(o.timeout).WithContext("joining the world"));
  Log(LogLevel::kInfo, "world: rank {} of {} joined (member {}, node {})", o.rank, o.world_size,
      o.member_id, o.node);
  return w;
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
  Status bad = protocol::Decode(payload, size(), &res);
  if (!bad.ok()) return {bad, {}};
  std::lock_guard lk(mu_);
  results_[res.seq] = std::move(res.table);
  cv_.notify_all();
  return {Status::OK(), {}};
}

Status World::Barrier(std::chrono::milliseconds deadline) {
  return AllGather({}, deadline).status();
}

Result<std::vector<Blob>> World::AllGather(const Blob& mine, std::chrono::milliseconds deadline) {
  if (mine.size() > kMaxCollectiveBlob) {
    return Status::InvalidArgument("all-gather contribution above 1 MiB");
  }
  uint64_t epoch;
  {
    std::lock_guard lk(mu_);
    epoch = epoch_++;
    if (rank_ != 0) {
      contributions_[epoch] = mine;
      cv_.notify_all();
    }
  }
  if (rank_ != 0) {
    std::unique_lock lk(mu_);
    if (!cv_.wait_for(lk, deadline, [&] { return results_.count(epoch) != 0; })) {
      contributions_.erase(epoch);
      return Status::Timeout(fmt::format("collective {}: no result from rank 0", epoch));
    }
    auto table = std::move(results_[epoch]);
    results_.erase(epoch);
    return table;
  }

  // Rank 0: collect every contribution, then hand every member the table.
  const uint32_t n = size();
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
      transport_->CallAsync(r, Wire(Op::kCollectiveContribute), req, deadline,
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
        first = p.status().WithContext(fmt::format("collective {} at member {}", epoch, r));
      }
    }
    if (!first.ok() || !again) break;
  }
  SHOAL_RETURN_IF_ERROR(first);
  Blob result = protocol::Encode(protocol::CollectiveResult{epoch, table});
  std::vector<std::promise<Result<Payload>>> acks(n);
  for (uint32_t r = 1; r < n; ++r) {
    transport_->CallAsync(r, Wire(Op::kCollectiveResult), result, deadline,
                          [&acks, r](Result<Payload> p) { acks[r].set_value(std::move(p)); });
  }
  for (uint32_t r = 1; r < n; ++r) {
    auto p = acks[r].get_future().get();
    if (!p.ok() && first.ok()) first = p.status().WithContext(fmt::format("member {}", r));
  }
  SHOAL_RETURN_IF_ERROR(first);
  return table;
}

}  // namespace shoal::engine
