// ObserverClient: the object API (engine/object_api.h) of a guest attached to a live world
// (engine/observer_protocol.h) — what the shoal CLI's live mode runs its commands against,
// wrapped in an Engine (lib/observer.h makes one).
//
// Every read-only call goes to one member (the first that answers: a member that is down
// moves the calls to the next), which runs it through its own client paths; ReadBatch reads
// in pieces of at most kMaxGuestRead. The observer holds no data and is no member, so writes,
// removes, leases, collectives and repair are refused with FailedPrecondition (an operator
// changes a live world from inside the job, or stops it and uses the offline commands);
// LocalObjects and GetLocalSpace too (Report gives each member's). Report and Scrub ask one
// member about itself.
//
// Threads: every method is thread-safe (the transport's calls are).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "engine/member_info.h"
#include "engine/object_api.h"
#include "engine/observer_protocol.h"
#include "transport/transport.h"

namespace shoal::engine {

class ObserverClient final : public ObjectApi {
 public:
  // `transport` is a guest of the members in `members` (in the world's order); `reached[i]`
  // says whether member i answered its hello (a member that did not is never asked; Report
  // gives that status).
  ObserverClient(std::unique_ptr<transport::Transport> transport, std::vector<MemberInfo> members,
                 uint64_t epoch, std::chrono::milliseconds deadline, std::vector<Status> reached);

  const std::vector<MemberInfo>& members() const { return members_; }
  uint64_t epoch() const { return epoch_; }
  Result<observer::MemberReport> Report(uint32_t member);
  // Waits up to `deadline` for the member's pass over its chunks.
  Result<observer::ScrubReport> Scrub(uint32_t member, std::chrono::milliseconds deadline);

  Status Create(std::string_view path, const CreateOptions& options) override;
  Status Write(std::string_view path, uint64_t offset, std::span<const std::byte> data) override;
  Status PutBatch(std::span<PutRequest> requests, const CreateOptions& options) override;
  Status Seal(std::string_view path) override;
  Status Abort(std::string_view path) override;
  Status ReadBatch(std::span<ReadRequest> requests) override;
  Result<ObjectInfo> Stat(std::string_view path) override;
  Result<ListPage> List(std::string_view dir, const ListOptions& options) override;
  Status Remove(std::string_view path) override;
  Result<std::vector<std::vector<uint32_t>>> Locate(std::string_view path) override;
  Result<RepairReport> Repair(std::string_view dir) override;
  Result<RepairReport> WaitForRepair(std::chrono::milliseconds timeout) override;
  Result<Lease> TryLease(std::string_view name, uint64_t holder,
                         std::chrono::milliseconds ttl) override;
  Status ReleaseLease(std::string_view name, uint64_t holder) override;
  Result<std::vector<LocalObject>> LocalObjects(std::string_view dir) override;
  Result<LocalSpace> GetLocalSpace() override;
  // No rank of the job: rank() is the job's size (one past its last rank).
  uint32_t rank() const override { return ranks_; }
  uint32_t world_size() const override { return ranks_; }
  Status Barrier() override;
  Result<std::vector<std::vector<std::byte>>> AllGather(std::span<const std::byte> mine) override;
  std::string_view io_backend() const override { return "observer"; }

 private:
  // The op's reply from the first member that answers, starting with the last one that did.
  Result<observer::Bytes> Ask(observer::GuestOp op, const observer::Bytes& request,
                              std::chrono::milliseconds deadline = {});
  Result<observer::Bytes> AskMember(uint32_t member, observer::GuestOp op,
                                    const observer::Bytes& request,
                                    std::chrono::milliseconds deadline);
  Status ReadOne(ReadRequest& r);

  std::unique_ptr<transport::Transport> transport_;
  std::vector<MemberInfo> members_;
  uint64_t epoch_ = 0;
  uint32_t ranks_ = 0;
  std::chrono::milliseconds deadline_;
  std::vector<Status> reached_;
  std::atomic<uint32_t> proxy_{0};
};

}  // namespace shoal::engine
