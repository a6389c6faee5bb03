// RendezvousGroup: the members one rank serves take part in the rank's one rendezvous
// (transport/rendezvous.h). The last member to arrive runs the rank-level exchange for all.
#include <fmt/format.h>

#include <condition_variable>
#include <mutex>
#include <optional>

#include "base/bytes.h"
#include "transport/rendezvous.h"

namespace shoal::transport {
namespace {

constexpr uint32_t kMaxMembersPerRank = 4096;
constexpr uint32_t kMaxWorldMembers = 1u << 16;

}  // namespace

Blob PackMemberBlobs(const std::vector<Blob>& members) {
  ByteWriter w;
  w.Put<uint32_t>(static_cast<uint32_t>(members.size()));
  for (const Blob& b : members) w.Prefixed(b);
  return w.Take();
}

Result<std::vector<Blob>> UnpackMemberBlobs(const std::vector<Blob>& ranks) {
  std::vector<Blob> table;
  for (size_t r = 0; r < ranks.size(); ++r) {
    ByteReader rd(ranks[r]);
    uint32_t n = 0;
    if (!rd.Get(&n) || n == 0 || n > kMaxMembersPerRank) {
      return Status::InvalidArgument(
          fmt::format("rendezvous: rank {} brings {} stores (1 .. {} allowed)", r, n,
                      kMaxMembersPerRank));
    }
    if (table.size() + n > kMaxWorldMembers) {
      return Status::InvalidArgument(
          fmt::format("rendezvous: more than {} members in the world", kMaxWorldMembers));
    }
    for (uint32_t i = 0; i < n; ++i) {
      std::span<const std::byte> b;
      if (!rd.Prefixed(kMaxBlobBytes, &b)) {
        return Status::InvalidArgument(
            fmt::format("rendezvous: rank {}'s blob of {} members is cut short", r, n));
      }
      table.emplace_back(b.begin(), b.end());
    }
    if (!rd.done()) {
      return Status::InvalidArgument(
          fmt::format("rendezvous: rank {}'s blob has bytes after its {} members", r, n));
    }
  }
  return table;
}

struct RendezvousGroup::State {
  State(Rendezvous& rl, uint32_t n) : rank_level(rl), blobs(n) {}
  Rendezvous& rank_level;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::optional<Blob>> blobs;
  uint32_t arrived = 0;
  std::optional<Result<std::vector<Blob>>> result;
};

class RendezvousGroup::Member final : public Rendezvous {
 public:
  Member(std::shared_ptr<State> state, uint32_t slot) : state_(std::move(state)), slot_(slot) {}

  Result<std::vector<Blob>> AllGather(const Blob& mine) override {
    State& s = *state_;
    std::unique_lock lk(s.mu);
    if (s.blobs[slot_].has_value()) {
      return Status::FailedPrecondition(fmt::format("rendezvous: slot {} joined twice", slot_));
    }
    s.blobs[slot_] = mine;
    s.arrived++;
    if (s.arrived == s.blobs.size() && !s.result.has_value()) {
      // The last member to arrive speaks for the rank (outside the lock: it blocks).
      std::vector<Blob> mine_all;
      for (auto& b : s.blobs) mine_all.push_back(*b);
      lk.unlock();
      auto ranks = s.rank_level.AllGather(PackMemberBlobs(mine_all));
      Result<std::vector<Blob>> table =
          ranks.ok() ? UnpackMemberBlobs(*ranks) : Result<std::vector<Blob>>(ranks.status());
      lk.lock();
      if (!s.result.has_value()) s.result = std::move(table);
      s.cv.notify_all();
    }
    s.cv.wait(lk, [&] { return s.result.has_value(); });
    return *s.result;
  }

 private:
  std::shared_ptr<State> state_;
  uint32_t slot_;
};

RendezvousGroup::RendezvousGroup(Rendezvous& rank_level, uint32_t members)
    : state_(std::make_shared<State>(rank_level, members)) {
  for (uint32_t i = 0; i < members; ++i) members_.push_back(std::make_unique<Member>(state_, i));
}

RendezvousGroup::~RendezvousGroup() = default;

Rendezvous& RendezvousGroup::member(uint32_t slot) { return *members_.at(slot); }

void RendezvousGroup::Fail(const Status& why) {
  std::lock_guard lk(state_->mu);
  if (!state_->result.has_value()) {
    state_->result = Result<std::vector<Blob>>(
        why.WithContext("a store of this rank could not join"));
  }
  state_->cv.notify_all();
}

}  // namespace shoal::transport
