// ObjectApi: the object API of include/shoal/engine.h, declared once below the public facade.
// Two implementations:
//   Cluster      (engine/cluster.h)       a world of any size, one member per rank — what every
//                                          Engine runs, a one-rank job included (a world of one,
//                                          over the in-process transport), so a store has one
//                                          layout whatever the size of the job that wrote it.
//   ObjectStore  (engine/object_store.h)  the local store of one member: the chunk holder's
//                                          objects, also usable alone (tests inject disk faults
//                                          through it) — it names objects by its own paths.
// Engine (lib/engine.cc) holds one ObjectApi and forwards every call; the contracts, errors and
// thread-safety are those of include/shoal/engine.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "shoal/engine.h"

namespace shoal::engine {

class ObjectApi {
 public:
  virtual ~ObjectApi() = default;

  virtual Status Create(std::string_view path, const CreateOptions& options) = 0;
  // Create for an object whose bytes all come in one Write before its Seal (Engine::Put). An
  // implementation may leave the name check to Seal where no byte reaches a disk before it:
  // the outcome of the Put is the same (AlreadyExists at Seal, then Abort), one round trip
  // less. By default, Create.
  virtual Status CreateWhole(std::string_view path, const CreateOptions& options) {
    return Create(path, options);
  }
  virtual Status Write(std::string_view path, uint64_t offset,
                       std::span<const std::byte> data) = 0;
  // Engine::PutBatch, once the batch and the options were checked (at most kMaxPutBatch
  // requests, options.size unknown, a valid chunk size).
  virtual Status PutBatch(std::span<PutRequest> requests, const CreateOptions& options) = 0;
  virtual Status Seal(std::string_view path) = 0;
  virtual Status Abort(std::string_view path) = 0;
  virtual Status ReadBatch(std::span<ReadRequest> requests) = 0;
  virtual Result<ObjectInfo> Stat(std::string_view path) = 0;
  // By default, a Stat per request.
  virtual Status StatBatch(std::span<StatRequest> requests) {
    for (StatRequest& r : requests) {
      auto info = Stat(r.path);
      r.status = info.status();
      if (info.ok()) r.info = std::move(info).value();
    }
    return Status::OK();
  }
  virtual Result<ListPage> List(std::string_view dir, const ListOptions& options) = 0;
  virtual Status Remove(std::string_view path) = 0;
  virtual Result<std::vector<std::vector<uint32_t>>> Locate(std::string_view path) = 0;
  virtual Result<RepairReport> Repair(std::string_view dir) = 0;
  // Waits up to `timeout` for this member's background repair (started by an Open whose
  // membership changed) to finish; its report, or OK with an empty one when none runs.
  virtual Result<RepairReport> WaitForRepair(std::chrono::milliseconds timeout) = 0;

  // Engine::TryLease (ttl checked) and Engine::ReleaseLease.
  virtual Result<Lease> TryLease(std::string_view name, uint64_t holder,
                                 std::chrono::milliseconds ttl) = 0;
  virtual Status ReleaseLease(std::string_view name, uint64_t holder) = 0;
  // Engine::LocalObjects and Engine::GetLocalSpace.
  virtual Result<std::vector<LocalObject>> LocalObjects(std::string_view dir) = 0;
  virtual Result<LocalSpace> GetLocalSpace() = 0;

  virtual uint32_t rank() const = 0;
  virtual uint32_t world_size() const = 0;
  virtual Status Barrier() = 0;
  virtual Result<std::vector<std::vector<std::byte>>> AllGather(
      std::span<const std::byte> mine) = 0;
  virtual std::string_view io_backend() const = 0;
};

}  // namespace shoal::engine
