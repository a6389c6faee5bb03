// World: the members of one job, connected. Built once per rank by Join: the rendezvous
// exchanges each member's identity (persistent member id from its store, node name, transport
// address), every member connects to every other over the transport (UCX between processes,
// in-process in tests and for a world of one), and a barrier makes sure all are reachable before
// Join returns.
//
// Collectives (Barrier, AllGather) run over the same messenger, rooted at rank 0. Every member
// must call them in the same order; one collective at a time per member.
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
  uint32_t rank = 0;
  uint32_t world_size = 1;
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

  uint32_t rank() const { return rank_; }
  uint32_t size() const { return static_cast<uint32_t>(members_.size()); }
  const std::vector<MemberInfo>& members() const { return members_; }
  transport::Transport& transport() { return *transport_; }

  Status Barrier(std::chrono::milliseconds deadline = std::chrono::milliseconds(60000));
  // Every member's `mine`, in rank order. Up to 1 MiB per member.
  Result<std::vector<transport::Blob>> AllGather(
      const transport::Blob& mine,
      std::chrono::milliseconds deadline = std::chrono::milliseconds(60000));

 private:
  World() = default;
  transport::Reply OnContribute(std::span<const std::byte> payload);
  transport::Reply OnResult(std::span<const std::byte> payload);

  uint32_t rank_ = 0;
  std::vector<MemberInfo> members_;
  std::unique_ptr<transport::Transport> transport_;

  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t epoch_ = 0;                                  // collectives started here
  std::map<uint64_t, transport::Blob> contributions_;   // mine, until rank 0 collects it
  std::map<uint64_t, std::vector<transport::Blob>> results_;  // from rank 0
  std::chrono::milliseconds collect_wait_{60000};
};

}  // namespace shoal::engine
