// ObserveWorld (lib/observer.h).
#include "lib/observer.h"

#include <fmt/format.h>

#include <thread>

#include "engine/member_info.h"
#include "engine/membership.h"
#include "lib/bootstrap.h"
#include "lib/engine_impl.h"
#include "transport/messenger.h"
#include "transport/rendezvous.h"

namespace shoal {

Result<ObservedWorld> ObserveWorld(const ObserveOptions& o) {
  transport::TcpRendezvousOptions t;
  SHOAL_RETURN_IF_ERROR(ParseTcpRendezvous(o.rendezvous, &t.host, &t.port));
  if (o.token.empty()) return Status::InvalidArgument("observing a world needs its job token");
  t.token = o.token;
  t.timeout = o.timeout;
  SHOAL_ASSIGN_OR_RETURN(transport::ObservedWorld seen, transport::ObserveTcpRendezvous(t));
  SHOAL_ASSIGN_OR_RETURN(std::vector<transport::Blob> blobs,
                         transport::UnpackMemberBlobs(seen.members));
  std::vector<engine::MemberInfo> members;
  for (const transport::Blob& b : blobs) {
    SHOAL_ASSIGN_OR_RETURN(engine::MemberInfo m, engine::DecodeMemberInfo(b));
    members.push_back(std::move(m));
  }
  if (members.empty()) return Status::InvalidArgument("rank 0 described a world of no member");
  uint64_t epoch = 0;
  if (!seen.info.empty()) {
    std::string_view info(reinterpret_cast<const char*>(seen.info.data()), seen.info.size());
    SHOAL_ASSIGN_OR_RETURN(engine::Membership m, engine::DecodeMembership(info));
    epoch = m.epoch;
  }
  const auto n = static_cast<uint32_t>(members.size());
  SHOAL_ASSIGN_OR_RETURN(auto messenger,
                         transport::Messenger::Create({.world_size = n,
                                                       .handler_threads = 1,
                                                       .default_deadline = o.timeout,
                                                       .guest_token = o.token,
                                                       .guest = true}));
  // Every member's hello at once: a member that is down costs one timeout, not one each.
  std::vector<Status> reached(n);
  {
    std::vector<std::thread> threads;
    for (uint32_t i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        reached[i] = messenger->Connect(i, members[i].ucx_address);
      });
    }
    for (auto& th : threads) th.join();
  }
  bool any = false;
  for (const Status& s : reached) any = any || s.ok();
  if (!any) {
    return reached[0].WithContext(
        fmt::format("no member of the world at {} answered this observer", o.rendezvous));
  }
  auto client = std::make_unique<engine::ObserverClient>(std::move(messenger), std::move(members),
                                                         epoch, o.deadline, reached);
  engine::ObserverClient* raw = client.get();
  ObservedWorld out{Engine::Impl::Wrap(std::move(client)), raw, std::move(reached)};
  return out;
}

}  // namespace shoal
