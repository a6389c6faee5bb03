// ClusterGroup: the members one rank serves. A store is a member of the world, not a rank: a
// job restarted with fewer ranks on the same nodes has each rank serve its own store and the
// node's stores no rank of this job opens (lib/bootstrap.h says which), so shrinking a job
// loses neither data nor availability. Each store served is a Cluster of its own — its own
// transport endpoint, metadata shards, background repair and scrub — and joins the world as its
// own member (engine/world.h: slot s of its rank). The rank's calls go through its first
// member, whose rank() and world_size() are the job's; the others only serve.
//
// Thread-safety: as Cluster (every method thread-safe).
#pragma once

#include <memory>
#include <vector>

#include "engine/cluster.h"
#include "transport/rendezvous.h"

namespace shoal::engine {

class ClusterGroup final : public ObjectApi {
 public:
  struct Member {
    ClusterOptions options;
    std::unique_ptr<ObjectStore> store;
    std::unique_ptr<transport::Transport> transport;
  };
  // Starts every member at once, each joining through its slot of a RendezvousGroup over the
  // rank's `rendezvous` (so every rank of the job must start a group, of one member where it
  // serves one store). `world.slot` is ignored: member i is slot i. The first error of any
  // member fails the whole group (the others are closed).
  static Result<std::unique_ptr<ClusterGroup>> Start(std::vector<Member> members,
                                                     const WorldOptions& world,
                                                     transport::Rendezvous& rendezvous);
  ~ClusterGroup() override;

  Status Create(std::string_view path, const CreateOptions& options) override {
    return home().Create(path, options);
  }
  Status CreateWhole(std::string_view path, const CreateOptions& options) override {
    return home().CreateWhole(path, options);
  }
  Status Write(std::string_view path, uint64_t offset, std::span<const std::byte> data) override {
    return home().Write(path, offset, data);
  }
  Status Seal(std::string_view path) override { return home().Seal(path); }
  Status Abort(std::string_view path) override { return home().Abort(path); }
  Status PutBatch(std::span<PutRequest> requests, const CreateOptions& options) override {
    return home().PutBatch(requests, options);
  }
  Status ReadBatch(std::span<ReadRequest> requests) override { return home().ReadBatch(requests); }
  Result<std::vector<LocalObject>> LocalObjects(std::string_view dir) override {
    return home().LocalObjects(dir);
  }
  Result<LocalSpace> GetLocalSpace() override { return home().GetLocalSpace(); }
  Result<Lease> TryLease(std::string_view name, uint64_t holder,
                         std::chrono::milliseconds ttl) override {
    return home().TryLease(name, holder, ttl);
  }
  Status ReleaseLease(std::string_view name, uint64_t holder) override {
    return home().ReleaseLease(name, holder);
  }
  Result<ObjectInfo> Stat(std::string_view path) override { return home().Stat(path); }
  Status StatBatch(std::span<StatRequest> requests) override { return home().StatBatch(requests); }
  Result<ListPage> List(std::string_view dir, const ListOptions& options) override {
    return home().List(dir, options);
  }
  Status Remove(std::string_view path) override { return home().Remove(path); }
  Result<std::vector<std::vector<uint32_t>>> Locate(std::string_view path) override {
    return home().Locate(path);
  }
  Result<RepairReport> Repair(std::string_view dir) override { return home().Repair(dir); }
  // Waits for the background repair of every member this rank serves; their reports summed.
  Result<RepairReport> WaitForRepair(std::chrono::milliseconds timeout) override;
  uint32_t rank() const override { return members_[0]->rank(); }
  uint32_t world_size() const override { return members_[0]->world_size(); }
  Status Barrier() override { return home().Barrier(); }
  Result<std::vector<std::vector<std::byte>>> AllGather(std::span<const std::byte> mine) override {
    return home().AllGather(mine);
  }
  std::string_view io_backend() const override { return members_[0]->io_backend(); }

  size_t size() const { return members_.size(); }
  Cluster& member(size_t slot) { return *members_.at(slot); }
  // Something the members' transports use that must outlive them (the in-process network of a
  // rank alone with several stores); released after the members.
  void KeepAlive(std::shared_ptr<void> thing) { keep_alive_ = std::move(thing); }
  // Keeps the rank's rendezvous for as long as the group lives and has it answer observers
  // (transport::Rendezvous::ServeObservers: on rank 0 of a TCP rendezvous) with the world's
  // membership record (EncodeMembership of this rank's first member). Stopped first when the
  // group closes.
  void ServeObservers(std::unique_ptr<transport::Rendezvous> rendezvous);

 private:
  ClusterGroup() = default;
  Cluster& home() { return *members_[0]; }
  std::shared_ptr<void> keep_alive_;  // declared first: destroyed after members_
  std::vector<std::unique_ptr<Cluster>> members_;
  std::unique_ptr<transport::Rendezvous> observed_;  // reads members_: stopped before them
};

}  // namespace shoal::engine
