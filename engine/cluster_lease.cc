// Cluster::TryLease and ReleaseLease: advisory leases at the name's first reachable metadata
// owner, primary first, held in that member's memory (engine/lease_table.h, Engine::TryLease).
#include <fmt/format.h>

#include "engine/cluster.h"
#include "engine/path.h"

namespace shoal::engine {

Result<Lease> Cluster::TryLease(std::string_view name, uint64_t holder,
                                std::chrono::milliseconds ttl) {
  SHOAL_RETURN_IF_ERROR(ValidateObjectPath(name));
  Status last = Status::Unavailable(fmt::format("no live owner of \"{}\"", name));
  for (uint32_t owner : Owners(name)) {
    if (!Reachable(owner)) continue;
    auto r = client_->Lease(owner, protocol::LeaseRequest{name, holder,
                                                          static_cast<uint32_t>(ttl.count()), false});
    if (r.ok()) return Lease{r->granted, r->holder, r->age_ms};
    last = r.status();
  }
  return last.WithContext(fmt::format("lease of \"{}\"", name));
}

Status Cluster::ReleaseLease(std::string_view name, uint64_t holder) {
  SHOAL_RETURN_IF_ERROR(ValidateObjectPath(name));
  Status last = Status::Unavailable(fmt::format("no live owner of \"{}\"", name));
  for (uint32_t owner : Owners(name)) {
    if (!Reachable(owner)) continue;
    auto r = client_->Lease(owner, protocol::LeaseRequest{name, holder, 0, true});
    if (r.ok()) return Status::OK();
    last = r.status();
  }
  return last.WithContext(fmt::format("release of the lease of \"{}\"", name));
}

}  // namespace shoal::engine
