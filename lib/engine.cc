#include "shoal/engine.h"

#include <fmt/format.h>

#include "lib/bootstrap.h"
#include "lib/engine_impl.h"

namespace shoal {

Result<std::unique_ptr<Engine>> Engine::Open(const Options& options) {
  if (options.replicas < 1 || options.replicas > 16) {
    return Status::InvalidArgument(fmt::format("Options: replicas {} not in 1..16", options.replicas));
  }
  if (options.window < 1 || options.window > 1024) {
    return Status::InvalidArgument(fmt::format("Options: window {} not in 1..1024", options.window));
  }
  SHOAL_ASSIGN_OR_RETURN(BootstrapPlan plan, PlanBootstrap(options));
  Options local = options;
  local.store_dir = plan.store_dir;
  SHOAL_ASSIGN_OR_RETURN(auto store, engine::ObjectStore::Open(local));
  if (plan.alone) return std::make_unique<Engine>(std::make_unique<Impl>(std::move(store)));

  engine::ClusterOptions co;
  co.replicas = options.replicas;
  co.window = options.window;
  co.deadline = std::chrono::milliseconds(options.request_timeout_ms);
  co.inline_threshold = options.inline_threshold;
  co.chunk_size = options.chunk_size;
  co.metadata_map_size = options.metadata_map_size;
  co.ring_dir = local.store_dir + "/ring";
  SHOAL_ASSIGN_OR_RETURN(auto cluster, engine::Cluster::Start(co, std::move(store), plan.world,
                                                             *plan.rendezvous));
  return std::make_unique<Engine>(std::make_unique<Impl>(std::move(cluster)));
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

Status Engine::Create(std::string_view path, const CreateOptions& options) {
  return impl_->Serve([&](auto& s) { return s.Create(path, options); });
}

Status Engine::Write(std::string_view path, uint64_t offset, std::span<const std::byte> data) {
  return impl_->Serve([&](auto& s) { return s.Write(path, offset, data); });
}

Status Engine::Seal(std::string_view path) {
  return impl_->Serve([&](auto& s) { return s.Seal(path); });
}

Status Engine::Abort(std::string_view path) {
  return impl_->Serve([&](auto& s) { return s.Abort(path); });
}

Status Engine::Put(std::string_view path, std::span<const std::byte> data,
                   const CreateOptions& options) {
  CreateOptions co = options;
  if (co.size == kUnknownSize) co.size = data.size();
  SHOAL_RETURN_IF_ERROR(Create(path, co));
  Status s = Write(path, 0, data);
  if (s.ok()) s = Seal(path);
  if (!s.ok()) (void)Abort(path);
  return s;
}

Result<uint64_t> Engine::Read(std::string_view path, uint64_t offset, std::span<std::byte> dst) {
  ReadRequest req{std::string(path), offset, dst, {}, 0};
  SHOAL_RETURN_IF_ERROR(ReadBatch({&req, 1}));
  if (!req.status.ok()) return req.status;
  return req.bytes_read;
}

Status Engine::ReadBatch(std::span<ReadRequest> requests) {
  return impl_->Serve([&](auto& s) { return s.ReadBatch(requests); });
}

Result<ObjectInfo> Engine::Stat(std::string_view path) {
  return impl_->Serve([&](auto& s) { return s.Stat(path); });
}

Result<ListPage> Engine::List(std::string_view dir, const ListOptions& options) {
  return impl_->Serve([&](auto& s) { return s.List(dir, options); });
}

Status Engine::Remove(std::string_view path) {
  return impl_->Serve([&](auto& s) { return s.Remove(path); });
}

Result<std::vector<std::vector<uint32_t>>> Engine::Locate(std::string_view path) {
  return impl_->Serve([&](auto& s) { return s.Locate(path); });
}

Result<RepairReport> Engine::Repair(std::string_view dir) {
  if (impl_->cluster() == nullptr) {
    SHOAL_RETURN_IF_ERROR(impl_->store().List(dir, {}).status());
    return RepairReport{};
  }
  return impl_->cluster()->Repair(dir);
}

std::string_view Engine::io_backend() const { return impl_->store().io_backend(); }

uint32_t Engine::rank() const { return impl_->cluster() ? impl_->cluster()->world().rank() : 0; }

uint32_t Engine::world_size() const {
  return impl_->cluster() ? impl_->cluster()->world().size() : 1;
}

Status Engine::Barrier() {
  return impl_->cluster() ? impl_->cluster()->world().Barrier() : Status::OK();
}

Result<std::vector<std::vector<std::byte>>> Engine::AllGather(std::span<const std::byte> mine) {
  std::vector<std::byte> blob(mine.begin(), mine.end());
  if (!impl_->cluster()) return std::vector<std::vector<std::byte>>{std::move(blob)};
  return impl_->cluster()->world().AllGather(blob);
}

}  // namespace shoal
