// World: the members of one job, connected. A member is a store: a rank serves one store, or
// several (a job restarted with fewer ranks on the same nodes serves every store of its nodes),
// and each store it serves joins as a member of its own — its own transport endpoint, its own
// index. Built once per member by Join: the rendezvous exchanges each member's identity (the
// job rank serving it and its slot there, persistent member id from its store, node name,
// transport address), every member connects to every other over the transport (UCX between
// processes, in-process in tests and for a rank alone), and a barrier makes sure all are
// reachable before Join returns. Members are indexed by (job rank, slot): rank 0's stores
// first.
//
// Collectives (Barrier, AllGather) run over the same transport, rooted at member 0 (rank 0's
// first store), among every member (Group::kMembers: the Open of an epoch) or among one member
// per job rank (Group::kRanks: slot 0 of each; the job's own collectives, e.g. a checkpoint's
// commit). Every participant must call them in the same order; one collective at a time per
// member and group.
//
// Thread-safety: members(), rank(), size() and transport() are safe from any thread;
// collectives are serialized by the caller.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/member_info.h"
#include "shoal/result.h"
#include "transport/rendezvous.h"
#include "transport/transport.h"

namespace shoal::engine {

struct WorldOptions {
  uint32_t rank = 0;        // the job rank serving this member
  uint32_t world_size = 1;  // ranks in the job
  // Which of its rank's stores this member is (0 .. slots-1). With slots > 1 (or whenever the
  // ranks' rendezvous packs several members per rank: transport::RendezvousGroup) the member's
  // index is learned from the rendezvous and given to the transport by Transport::Bind.
  uint32_t slot = 0;
  std::string node;
  std::string member_id;
  std::chrono::milliseconds timeout{120000};  // for the barrier that ends Join
  uint32_t handler_threads = 2;  // for the transport the caller makes (lib/engine.cc)
  // Called with the transport before any endpoint exists: the place to install the handlers of
  // the layers above (engine/member_service.h), so no request can arrive before its handler.
  std::function<void(transport::Transport&)> install_handlers;
};

class World {
 public:
  // Joins through `rendezvous` (TCP hosted by rank 0, file, or the caller's all-gather) over
  // `transport` (whose self() and world_size() must match the options).
  static Result<std::unique_ptr<World>> Join(const WorldOptions& options,
                                             std::unique_ptr<transport::Transport> transport,
                                             transport::Rendezvous& rendezvous);
  ~World();

  // This member's index, and the number of members (stores) in the world.
  uint32_t rank() const { return rank_; }
  uint32_t size() const { return static_cast<uint32_t>(members_.size()); }
  const std::vector<MemberInfo>& members() const { return members_; }
  transport::Transport& transport() { return *transport_; }
  // The job rank serving this member, the job's number of ranks, and whether this member is
  // its rank's first store (the one taking part in Group::kRanks collectives).
  uint32_t job_rank() const { return members_[rank_].job_rank; }
  uint32_t job_size() const { return static_cast<uint32_t>(rank_heads_.size()); }
  bool rank_head() const { return members_[rank_].slot == 0; }

  enum class Group : uint8_t { kMembers = 0, kRanks = 1 };
  Status Barrier(std::chrono::milliseconds deadline = std::chrono::milliseconds(60000),
                 Group group = Group::kMembers);
  // Every participant's `mine`, in index order (kRanks: in job rank order). Up to 1 MiB each.
  // A kRanks collective called by a member that is not its rank's first store fails with
  // FailedPrecondition. Timeout when the deadline passes; Unavailable as soon as (within
  // 100 ms of) the transport sees member 0, the root, down, or a participant member 0 asks
  // is down.
  Result<std::vector<transport::Blob>> AllGather(
      const transport::Blob& mine,
      std::chrono::milliseconds deadline = std::chrono::milliseconds(60000),
      Group group = Group::kMembers);

 private:
  World() = default;
  transport::Reply OnContribute(std::span<const std::byte> payload);
  transport::Reply OnResult(std::span<const std::byte> payload);

  // The members taking part in `group`'s collectives, and that group's count of members.
  const std::vector<uint32_t>& Participants(Group group) const;
  static Group GroupOfSeq(uint64_t seq) { return static_cast<Group>(seq >> 63); }

  uint32_t rank_ = 0;
  std::vector<MemberInfo> members_;
  std::vector<uint32_t> all_;         // 0 .. size()-1
  std::vector<uint32_t> rank_heads_;  // index of each job rank's first store
  std::unique_ptr<transport::Transport> transport_;

  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t epoch_[2] = {0, 0};  // collectives started here, per group (the group in bit 63)
  std::map<uint64_t, transport::Blob> contributions_;   // mine, until rank 0 collects it
  std::map<uint64_t, std::vector<transport::Blob>> results_;  // from rank 0
  std::chrono::milliseconds collect_wait_{60000};
};

}  // namespace shoal::engine
