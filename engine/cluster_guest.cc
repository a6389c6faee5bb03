// Cluster: the observer service (engine/observer_protocol.h). A guest's call runs through this
// member's own client paths — the Stat, List or Read its rank would make — so a guest holds no
// data, owns no shard, is never chosen as a holder and starts no epoch; the member also says
// what it is and holds (Report), and scrubs its chunks on request (ScrubNow).
#include <fmt/format.h>

#include "engine/cluster.h"

namespace shoal::engine {
namespace {

using observer::Bytes;
using observer::GuestOp;

}  // namespace

void Cluster::InstallGuestOps(transport::Transport& t) {
  auto serve = [this, &t](GuestOp op, std::function<Result<Bytes>(std::span<const std::byte>)> fn) {
    t.SetGuestHandler(observer::Wire(op),
                      [this, fn = std::move(fn)](uint32_t, std::span<const std::byte> p) {
                        {
                          MutexLock lk(&guests_mu_);
                          if (!guests_served_) {
                            return transport::Reply{
                                Status::Unavailable("this member is opening or closing"), {}};
                          }
                          guests_running_++;
                        }
                        Result<Bytes> r = fn(p);
                        {
                          MutexLock lk(&guests_mu_);
                          guests_running_--;
                        }
                        guests_cv_.notify_all();
                        if (!r.ok()) return transport::Reply{r.status(), {}};
                        return transport::Reply{Status::OK(), std::move(r).value()};
                      });
  };
  serve(GuestOp::kStat, [this](std::span<const std::byte> p) -> Result<Bytes> {
    observer::PathRequest q;
    SHOAL_RETURN_IF_ERROR(observer::Decode(p, &q));
    SHOAL_ASSIGN_OR_RETURN(ObjectInfo info, Stat(q.path));
    return observer::Encode(info);
  });
  serve(GuestOp::kList, [this](std::span<const std::byte> p) -> Result<Bytes> {
    observer::ListRequest q;
    SHOAL_RETURN_IF_ERROR(observer::Decode(p, &q));
    SHOAL_ASSIGN_OR_RETURN(ListPage page, List(q.dir, q.options));
    return observer::Encode(page);
  });
  serve(GuestOp::kRead, [this](std::span<const std::byte> p) -> Result<Bytes> {
    observer::ReadRequestMsg q;
    SHOAL_RETURN_IF_ERROR(observer::Decode(p, &q));
    // Never more than the object holds past the offset: a guest's length is only a limit.
    SHOAL_ASSIGN_OR_RETURN(ObjectInfo info, Stat(q.path));
    const uint64_t n = q.offset >= info.size ? 0 : std::min(q.length, info.size - q.offset);
    Bytes out(n);
    ReadRequest rq{q.path, q.offset, {out.data(), out.size()}, {}, 0};
    if (n != 0) {
      (void)ReadBatch({&rq, 1});
      SHOAL_RETURN_IF_ERROR(rq.status);
      out.resize(rq.bytes_read);
    }
    return out;
  });
  serve(GuestOp::kLocate, [this](std::span<const std::byte> p) -> Result<Bytes> {
    observer::PathRequest q;
    SHOAL_RETURN_IF_ERROR(observer::Decode(p, &q));
    SHOAL_ASSIGN_OR_RETURN(auto holders, Locate(q.path));
    return observer::Encode(holders);
  });
  serve(GuestOp::kMember, [this](std::span<const std::byte>) -> Result<Bytes> {
    return observer::Encode(Report());
  });
  serve(GuestOp::kScrub, [this](std::span<const std::byte>) -> Result<Bytes> {
    return observer::Encode(ScrubNow());
  });
}

void Cluster::StopGuests() {
  MutexLock lk(&guests_mu_);
  guests_served_ = false;
  // A guest's scrub ends at bg_stop_ (set before); its other calls are short.
  Await(guests_cv_, &guests_mu_, [&]() REQUIRES(guests_mu_) { return guests_running_ == 0; });
}

observer::MemberReport Cluster::Report() {
  observer::MemberReport r;
  r.member = world_->rank();
  r.members = world_->size();
  r.rank = world_->job_rank();
  r.ranks = world_->job_size();
  r.node = world_->members()[r.member].node;
  r.member_id = store_->member_id();
  r.epoch = membership_.epoch;
  r.lost = static_cast<uint32_t>(membership_.lost.size());
  r.replicas = replicas_;
  if (auto objects = LocalObjects(""); objects.ok()) {
    r.objects = objects->size();
    for (const LocalObject& o : *objects) r.bytes += o.bytes;
  }
  if (auto space = store_->GetLocalSpace(); space.ok()) r.space = *space;
  r.io_backend = std::string(store_->io_backend());
  {
    MutexLock lk(&bg_mu_);
    r.background_running = bg_running_;
    r.background = bg_report_;
  }
  r.scrubbed_bytes = scrubbed_bytes_->value();
  r.scrub_damaged = scrub_bad_->value();
  r.stats = metrics().Snapshot();
  return r;
}

observer::ScrubReport Cluster::ScrubNow() {
  observer::ScrubReport report;
  ScrubPass(0, &report);
  return report;
}

}  // namespace shoal::engine
