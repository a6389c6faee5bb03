// The TCP rendezvous: checks its options, then plays the side of its rank.
#include <fmt/format.h>

#include <memory>

#include "transport/rendezvous.h"
#include "transport/rendezvous_tcp.h"

namespace shoal::transport {
namespace {

class TcpRendezvous final : public Rendezvous {
 public:
  explicit TcpRendezvous(TcpRendezvousOptions o) : o_(std::move(o)) {}

  Result<std::vector<Blob>> AllGather(const Blob& mine) override {
    if (o_.world_size == 0 || o_.rank >= o_.world_size) {
      return Status::InvalidArgument(
          fmt::format("rank {} outside a world of {}", o_.rank, o_.world_size));
    }
    if (mine.size() > kMaxBlobBytes) return Status::InvalidArgument("rendezvous blob too large");
    if (o_.world_size == 1) return std::vector<Blob>{mine};
    if (o_.port == 0) {
      return Status::InvalidArgument("rendezvous port is 0: set SHOAL_RENDEZVOUS_PORT or "
                                     "MASTER_PORT (docs/bootstrap.md)");
    }
    auto deadline = Clock::now() + o_.timeout;
    return o_.rank == 0 ? HostTcpRendezvous(o_, mine, deadline, &formed_)
                        : JoinTcpRendezvous(o_, mine, deadline);
  }

  Status ServeObservers(std::function<Blob()> info) override {
    if (formed_ != nullptr) formed_->ServeObservers(std::move(info));
    return Status::OK();
  }

 private:
  TcpRendezvousOptions o_;
  std::unique_ptr<FormedHost> formed_;  // rank 0, once the world formed
};

}  // namespace

std::unique_ptr<Rendezvous> NewTcpRendezvous(const TcpRendezvousOptions& options) {
  return std::make_unique<TcpRendezvous>(options);
}

Result<ObservedWorld> ObserveTcpRendezvous(const TcpRendezvousOptions& o) {
  if (o.port == 0) return Status::InvalidArgument("rendezvous port is 0: name rank 0's port");
  return ObserveTcpHost(o, Clock::now() + o.timeout);
}

}  // namespace shoal::transport
