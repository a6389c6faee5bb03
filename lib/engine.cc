#include "shoal/engine.h"

#include "lib/engine_impl.h"

namespace shoal {

Result<std::unique_ptr<Engine>> Engine::Open(const Options& options) {
  SHOAL_ASSIGN_OR_RETURN(auto store, engine::ObjectStore::Open(options));
  return std::make_unique<Engine>(std::make_unique<Impl>(std::move(store)));
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

Status Engine::Create(std::string_view path, const CreateOptions& options) {
  return impl_->store().Create(path, options);
}

Status Engine::Write(std::string_view path, uint64_t offset, std::span<const std::byte> data) {
  return impl_->store().Write(path, offset, data);
}

Status Engine::Seal(std::string_view path) { return impl_->store().Seal(path); }

Status Engine::Abort(std::string_view path) { return impl_->store().Abort(path); }

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
  SHOAL_RETURN_IF_ERROR(impl_->store().ReadBatch({&req, 1}));
  if (!req.status.ok()) return req.status;
  return req.bytes_read;
}

Status Engine::ReadBatch(std::span<ReadRequest> requests) {
  return impl_->store().ReadBatch(requests);
}

Result<ObjectInfo> Engine::Stat(std::string_view path) { return impl_->store().Stat(path); }

Result<ListPage> Engine::List(std::string_view dir, const ListOptions& options) {
  return impl_->store().List(dir, options);
}

Status Engine::Remove(std::string_view path) { return impl_->store().Remove(path); }

std::string_view Engine::io_backend() const { return impl_->store().io_backend(); }

}  // namespace shoal
