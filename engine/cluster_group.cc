#include "engine/cluster_group.h"

#include <fmt/format.h>

#include <thread>

#include "base/bytes.h"
#include "base/log.h"
#include "engine/membership.h"

namespace shoal::engine {

Result<std::unique_ptr<ClusterGroup>> ClusterGroup::Start(std::vector<Member> members,
                                                          const WorldOptions& world,
                                                          transport::Rendezvous& rendezvous) {
  if (members.empty()) return Status::InvalidArgument("a rank serves at least one store");
  const auto n = static_cast<uint32_t>(members.size());
  transport::RendezvousGroup group(rendezvous, n);
  std::unique_ptr<ClusterGroup> g(new ClusterGroup());
  g->members_.resize(n);
  std::vector<Status> results(n);
  std::vector<std::thread> threads;
  for (uint32_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      WorldOptions wo = world;
      wo.slot = i;
      auto c = Cluster::Start(members[i].options, std::move(members[i].store), wo,
                              std::move(members[i].transport), group.member(i));
      if (c.ok()) {
        g->members_[i] = std::move(c).value();
      } else {
        results[i] = c.status().WithContext(fmt::format("store {} of this rank", i));
        group.Fail(results[i]);
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const Status& s : results) SHOAL_RETURN_IF_ERROR(s);
  return g;
}

ClusterGroup::~ClusterGroup() {
  observed_.reset();
  // The stores this rank serves for others go first; its own last.
  while (!members_.empty()) members_.pop_back();
}

void ClusterGroup::ServeObservers(std::unique_ptr<transport::Rendezvous> rendezvous) {
  if (rendezvous == nullptr) return;
  // The membership changes only at Open, which is over: reading it from the serving thread
  // races with nothing.
  const Cluster* home = members_[0].get();
  Status s = rendezvous->ServeObservers([home] {
    const std::string m = EncodeMembership(home->membership());
    const auto bytes = AsBytes(m);
    return transport::Blob(bytes.begin(), bytes.end());
  });
  if (!s.ok()) Log(LogLevel::kWarn, "observers not served: {}", s.ToString());
  observed_ = std::move(rendezvous);
}

Result<RepairReport> ClusterGroup::WaitForRepair(std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  RepairReport sum;
  for (auto& m : members_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    SHOAL_ASSIGN_OR_RETURN(RepairReport r,
                           m->WaitForRepair(std::max(left, std::chrono::milliseconds(0))));
    sum.objects += r.objects;
    sum.chunks_copied += r.chunks_copied;
    sum.bytes_copied += r.bytes_copied;
    sum.metadata_copied += r.metadata_copied;
    sum.lost.insert(sum.lost.end(), r.lost.begin(), r.lost.end());
  }
  return sum;
}

}  // namespace shoal::engine
