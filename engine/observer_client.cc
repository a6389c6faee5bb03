// ObserverClient (engine/observer_client.h).
#include "engine/observer_client.h"

#include <fmt/format.h>

#include <algorithm>

namespace shoal::engine {
namespace {

using observer::Bytes;
using observer::GuestOp;

Status ReadOnly(std::string_view what) {
  return Status::FailedPrecondition(fmt::format(
      "{}: an observer of a live world is read-only (change it from the job, or use the "
      "offline commands once it stopped)",
      what));
}

}  // namespace

ObserverClient::ObserverClient(std::unique_ptr<transport::Transport> transport,
                               std::vector<MemberInfo> members, uint64_t epoch,
                               std::chrono::milliseconds deadline, std::vector<Status> reached)
    : transport_(std::move(transport)),
      members_(std::move(members)),
      epoch_(epoch),
      deadline_(deadline),
      reached_(std::move(reached)) {
  reached_.resize(members_.size());
  for (const MemberInfo& m : members_) ranks_ = std::max(ranks_, m.job_rank + 1);
}

Result<Bytes> ObserverClient::AskMember(uint32_t member, GuestOp op, const Bytes& request,
                                        std::chrono::milliseconds deadline) {
  if (member >= members_.size()) {
    return Status::InvalidArgument(
        fmt::format("member {} outside a world of {}", member, members_.size()));
  }
  if (!reached_[member].ok()) return reached_[member];
  return transport_->Call(member, observer::Wire(op), Bytes(request),
                          deadline.count() > 0 ? deadline : deadline_);
}

Result<Bytes> ObserverClient::Ask(GuestOp op, const Bytes& request,
                                  std::chrono::milliseconds deadline) {
  const auto n = static_cast<uint32_t>(members_.size());
  const uint32_t first = proxy_.load();
  Status last = Status::Unavailable("no member to ask");
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t m = (first + i) % n;
    if (!reached_[m].ok() || !transport_->peer_up(m)) continue;
    auto r = AskMember(m, op, request, deadline);
    if (r.ok() || (r.status().code() != Code::kUnavailable &&
                   r.status().code() != Code::kTimeout)) {
      proxy_.store(m);
      return r;
    }
    last = r.status().WithContext(fmt::format("member {}", m));
  }
  return last;
}

Result<observer::MemberReport> ObserverClient::Report(uint32_t member) {
  SHOAL_ASSIGN_OR_RETURN(Bytes b, AskMember(member, GuestOp::kMember, observer::EncodeEmpty(), {}));
  observer::MemberReport r;
  SHOAL_RETURN_IF_ERROR(observer::Decode(b, &r));
  return r;
}

Result<observer::ScrubReport> ObserverClient::Scrub(uint32_t member,
                                                    std::chrono::milliseconds deadline) {
  SHOAL_ASSIGN_OR_RETURN(Bytes b,
                         AskMember(member, GuestOp::kScrub, observer::EncodeEmpty(), deadline));
  observer::ScrubReport r;
  SHOAL_RETURN_IF_ERROR(observer::Decode(b, &r));
  return r;
}

Status ObserverClient::ReadOne(ReadRequest& r) {
  r.bytes_read = 0;
  while (r.bytes_read < r.dst.size()) {
    const uint64_t want = std::min<uint64_t>(r.dst.size() - r.bytes_read, observer::kMaxGuestRead);
    SHOAL_ASSIGN_OR_RETURN(
        Bytes b, Ask(GuestOp::kRead, observer::Encode(observer::ReadRequestMsg{
                                         r.path, r.offset + r.bytes_read, want})));
    if (b.size() > want) {
      return Status::Corruption(
          fmt::format("observer read of \"{}\": {} bytes for {} asked", r.path, b.size(), want));
    }
    std::copy(b.begin(), b.end(), r.dst.begin() + static_cast<ptrdiff_t>(r.bytes_read));
    r.bytes_read += b.size();
    if (b.size() < want) break;  // the object's end
  }
  return Status::OK();
}

Status ObserverClient::ReadBatch(std::span<ReadRequest> requests) {
  Status first;
  for (ReadRequest& r : requests) {
    r.status = ReadOne(r);
    if (first.ok() && !r.status.ok()) first = r.status;
  }
  return first;
}

Result<ObjectInfo> ObserverClient::Stat(std::string_view path) {
  SHOAL_ASSIGN_OR_RETURN(Bytes b,
                         Ask(GuestOp::kStat, observer::Encode(observer::PathRequest{std::string(path)})));
  ObjectInfo info;
  SHOAL_RETURN_IF_ERROR(observer::Decode(b, &info));
  return info;
}

Result<ListPage> ObserverClient::List(std::string_view dir, const ListOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(
      Bytes b, Ask(GuestOp::kList, observer::Encode(observer::ListRequest{std::string(dir), options})));
  ListPage page;
  SHOAL_RETURN_IF_ERROR(observer::Decode(b, &page));
  return page;
}

Result<std::vector<std::vector<uint32_t>>> ObserverClient::Locate(std::string_view path) {
  SHOAL_ASSIGN_OR_RETURN(
      Bytes b, Ask(GuestOp::kLocate, observer::Encode(observer::PathRequest{std::string(path)})));
  std::vector<std::vector<uint32_t>> holders;
  SHOAL_RETURN_IF_ERROR(observer::Decode(b, &holders));
  return holders;
}

Status ObserverClient::Create(std::string_view path, const CreateOptions&) {
  return ReadOnly(fmt::format("create \"{}\"", path));
}
Status ObserverClient::Write(std::string_view path, uint64_t, std::span<const std::byte>) {
  return ReadOnly(fmt::format("write \"{}\"", path));
}
Status ObserverClient::PutBatch(std::span<PutRequest> requests, const CreateOptions&) {
  Status s = ReadOnly("put");
  for (PutRequest& r : requests) r.status = s;
  return s;
}
Status ObserverClient::Seal(std::string_view path) {
  return ReadOnly(fmt::format("seal \"{}\"", path));
}
Status ObserverClient::Abort(std::string_view path) {
  return ReadOnly(fmt::format("abort \"{}\"", path));
}
Status ObserverClient::Remove(std::string_view path) {
  return ReadOnly(fmt::format("remove \"{}\"", path));
}
Result<RepairReport> ObserverClient::Repair(std::string_view) { return ReadOnly("repair"); }
Result<RepairReport> ObserverClient::WaitForRepair(std::chrono::milliseconds) {
  return ReadOnly("waiting for repair");
}
Result<Lease> ObserverClient::TryLease(std::string_view name, uint64_t,
                                       std::chrono::milliseconds) {
  return ReadOnly(fmt::format("lease \"{}\"", name));
}
Status ObserverClient::ReleaseLease(std::string_view name, uint64_t) {
  return ReadOnly(fmt::format("lease \"{}\"", name));
}
Result<std::vector<LocalObject>> ObserverClient::LocalObjects(std::string_view) {
  return Status::FailedPrecondition("an observer holds no objects (each member's Report does)");
}
Result<LocalSpace> ObserverClient::GetLocalSpace() {
  return Status::FailedPrecondition("an observer has no store (each member's Report has its space)");
}
Status ObserverClient::Barrier() {
  return Status::FailedPrecondition("an observer takes no part in the job's collectives");
}
Result<std::vector<std::vector<std::byte>>> ObserverClient::AllGather(std::span<const std::byte>) {
  return Status::FailedPrecondition("an observer takes no part in the job's collectives");
}

}  // namespace shoal::engine
