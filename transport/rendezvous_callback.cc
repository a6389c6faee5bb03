// The callback rendezvous: the caller's own all-gather (e.g. over torch.distributed), checked
// for the world's size.
#include <fmt/format.h>

#include <memory>

#include "transport/rendezvous.h"

namespace shoal::transport {
namespace {

class CallbackRendezvous final : public Rendezvous {
 public:
  CallbackRendezvous(AllGatherFn fn, uint32_t world) : fn_(std::move(fn)), world_(world) {}
  Result<std::vector<Blob>> AllGather(const Blob& mine) override {
    SHOAL_ASSIGN_OR_RETURN(auto table, fn_(mine));
    if (table.size() != world_) {
      return Status::InvalidArgument(fmt::format("all-gather returned {} entries for a world of {}",
                                                 table.size(), world_));
    }
    return table;
  }
 private:
  AllGatherFn fn_;
  uint32_t world_;
};

}  // namespace

std::unique_ptr<Rendezvous> NewCallbackRendezvous(AllGatherFn fn, uint32_t world_size) {
  return std::make_unique<CallbackRendezvous>(std::move(fn), world_size);
}

}  // namespace shoal::transport
