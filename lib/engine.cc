#include "shoal/engine.h"

#include <cstdlib>
#include <fmt/format.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>

#include "base/log.h"
#include "engine/cluster_group.h"
#include "engine/inode.h"
#include "engine/protocol.h"
#include "engine/store_layout.h"
#include "lib/bootstrap.h"
#include "lib/engine_impl.h"
#include "transport/inproc_transport.h"
#include "transport/messenger.h"

namespace shoal {
namespace {

// Counts forks of this process: a child sees a larger value than the engines its parent opened.
std::atomic<uint64_t> fork_generation{0};

uint64_t ForkGeneration() {
  static const bool installed = [] {
    ::pthread_atfork(nullptr, nullptr,
                     [] { fork_generation.fetch_add(1, std::memory_order_relaxed); });
    return true;
  }();
  (void)installed;
  return fork_generation.load(std::memory_order_relaxed);
}

}  // namespace

Engine::Impl::Impl(std::unique_ptr<engine::ObjectApi> api,
                   std::unique_ptr<metrics::Registry> metrics)
    : metrics_(metrics ? std::move(metrics) : std::make_unique<metrics::Registry>()),
      api_(std::move(api)),
      fork_generation_(ForkGeneration()),
      pid_(::getpid()) {
  static constexpr const char* kNames[kCalls] = {"create", "write", "seal", "abort",
                                                 "read",   "stat",  "list", "remove"};
  for (size_t i = 0; i < kCalls; ++i) {
    const std::string base = fmt::format("engine.{}", kNames[i]);
    calls_[i].ops = &metrics_->counter(base + ".ops");
    calls_[i].bytes = &metrics_->counter(base + ".bytes");
    calls_[i].latency = i == kStat ? nullptr : &metrics_->histogram(base + ".latency_ns");
  }
  for (size_t c = 0; c < errors_.size(); ++c) {
    errors_[c] = &metrics_->counter(
        fmt::format("engine.errors.{}", CodeName(static_cast<Code>(c))));
  }
}

std::unique_ptr<Engine> Engine::Impl::Wrap(std::unique_ptr<engine::ObjectApi> api,
                                           std::unique_ptr<metrics::Registry> metrics) {
  return std::unique_ptr<Engine>(
      new Engine(std::make_unique<Impl>(std::move(api), std::move(metrics))));
}

namespace {

const Status& StatusOf(const Status& s) { return s; }
template <typename T>
Status StatusOf(const Result<T>& r) {
  return r.status();
}

// Records one call into its counters and histogram: ops, bytes, errors, latency.
template <typename Fn>
auto Recorded(Engine::Impl& impl, size_t which, uint64_t bytes, Fn&& fn) {
  Engine::Impl::Call& c = impl.call(which);
  c.ops->Add();
  if (c.latency == nullptr) {
    auto r = fn();
    impl.CountError(StatusOf(r));
    return r;
  }
  metrics::ScopedTimer timer(*c.latency);
  auto r = fn();
  impl.CountError(StatusOf(r));
  if (bytes != 0 && StatusOf(r).ok()) c.bytes->Add(bytes);
  return r;
}

}  // namespace

bool Engine::Impl::forked() const {
  return fork_generation.load(std::memory_order_relaxed) != fork_generation_;
}

Status Engine::Impl::Usable() const {
  if (!forked()) return Status::OK();
  return Status::FailedPrecondition(fmt::format(
      "this Engine was opened by process {}, and process {} is a fork of it: an Engine's "
      "threads, transport and I/O rings do not survive fork; open an Engine in the child (on "
      "its own store) or use it from the parent (docs/python.md)",
      pid_, ::getpid()));
}

Result<std::unique_ptr<Engine>> Engine::Open(const Options& options) {
  SHOAL_RETURN_IF_ERROR(ValidateOptions(options));
  std::string listen = options.metrics_listen;
  if (const char* env = std::getenv("SHOAL_METRICS_LISTEN"); listen.empty() && env != nullptr) {
    listen = env;
  }
  if (!listen.empty()) SHOAL_RETURN_IF_ERROR(ParseListenAddress(listen).status());
  SHOAL_ASSIGN_OR_RETURN(BootstrapPlan plan, PlanBootstrap(options));
  std::vector<std::string> dirs{plan.store_dir};
  dirs.insert(dirs.end(), plan.more_store_dirs.begin(), plan.more_store_dirs.end());
  const auto k = static_cast<uint32_t>(dirs.size());

  engine::ClusterOptions co;
  co.replicas = options.replicas;
  co.window = options.window;
  co.deadline = std::chrono::milliseconds(options.request_timeout_ms);
  co.inline_threshold = options.inline_threshold;
  co.chunk_size = options.chunk_size;
  co.metadata_map_size = options.metadata_map_size;
  co.declare_lost = options.lost_members;
  co.repair_rate = uint64_t{options.repair_rate_mib_s} << 20;
  co.repair_parallelism = options.repair_parallelism;
  co.scrub_rate = uint64_t{options.scrub_rate_mib_s} << 20;
  co.stat_lease = std::chrono::milliseconds(options.stat_lease_ms);
  co.stat_cache_entries = options.stat_cache_entries;
  if (const char* env = std::getenv("SHOAL_LOST_MEMBERS"); env != nullptr) {
    std::string_view list(env);
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view id = list.substr(0, comma);
      if (!id.empty()) co.declare_lost.emplace_back(id);
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    }
  }
  auto registry = std::make_unique<metrics::Registry>();
  co.metrics = registry.get();  // shared: the counters sum over the stores this rank serves

  // A rank alone serving one store is a world of size one over an in-process transport (the
  // same layout on disk, no network, no UCX); alone with several stores, an in-process network
  // joins them.
  std::shared_ptr<transport::InProcNetwork> local_net;
  if (plan.alone && k > 1) local_net = std::make_shared<transport::InProcNetwork>(k);
  std::vector<engine::ClusterGroup::Member> members;
  for (uint32_t i = 0; i < k; ++i) {
    Options local = options;
    local.store_dir = dirs[i];
    engine::ClusterGroup::Member m;
    SHOAL_ASSIGN_OR_RETURN(m.store, engine::ObjectStore::Open(local));
    m.options = co;
    m.options.ring_dir = engine::StorePath(local.store_dir, engine::kRingDir);
    if (plan.alone) {
      m.transport = k == 1 ? transport::NewSoloTransport() : local_net->Endpoint(i);
    } else {
      // Created before its index is known (the rendezvous tells): World::Join binds it.
      SHOAL_ASSIGN_OR_RETURN(
          m.transport,
          transport::Messenger::Create(
              {.self = 0,
               .world_size = 0,
               .handler_threads = std::max<uint32_t>(plan.world.handler_threads, 4),
               .guest_token = plan.token}));
    }
    members.push_back(std::move(m));
  }
  std::unique_ptr<transport::Rendezvous> solo;
  transport::Rendezvous* rendezvous = plan.rendezvous.get();
  if (plan.alone) {
    solo = transport::NewCallbackRendezvous(
        [](const transport::Blob& mine) -> Result<std::vector<transport::Blob>> {
          return std::vector<transport::Blob>{mine};
        },
        1);
    rendezvous = solo.get();
  }
  SHOAL_ASSIGN_OR_RETURN(auto group,
                         engine::ClusterGroup::Start(std::move(members), plan.world, *rendezvous));
  group->KeepAlive(std::move(local_net));
  group->ServeObservers(std::move(plan.rendezvous));
  auto engine = Impl::Wrap(std::move(group), std::move(registry));
  if (!listen.empty()) {
    auto launch = transport::LaunchInfoFromEnv();
    const uint32_t local_rank = launch.ok() ? launch->local_rank : 0;
    SHOAL_RETURN_IF_ERROR(engine->impl_->ServeMetrics(
        listen, local_rank,
        {{"rank", std::to_string(plan.world.rank)}, {"node", plan.world.node}}));
  }
  return engine;
}

Status Engine::Impl::ServeMetrics(const std::string& listen, uint32_t local_rank,
                                  MetricLabels labels) {
  SHOAL_ASSIGN_OR_RETURN(auto address, ParseListenAddress(listen));
  uint32_t port = address.second == 0 ? 0 : address.second + local_rank;
  if (port > 65535) {
    return Status::InvalidArgument(fmt::format(
        "metrics port {} + local rank {} is above 65535", address.second, local_rank));
  }
  metrics::Registry* reg = metrics_.get();
  SHOAL_ASSIGN_OR_RETURN(
      http_, MetricsHttpServer::Start(address.first, static_cast<uint16_t>(port),
                                      [reg, labels = std::move(labels)] {
                                        return PrometheusText(reg->Snapshot(), labels);
                                      }));
  Log(LogLevel::kInfo, "metrics at http://{}:{}/metrics", address.first, http_->port());
  return Status::OK();
}

Stats Engine::GetStats() const { return impl_->metrics().Snapshot(); }
uint16_t Engine::metrics_port() const { return impl_->metrics_port(); }

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Engine::~Engine() {
  if (impl_ && impl_->forked()) impl_->Leak();
}

Status Engine::Create(std::string_view path, const CreateOptions& options) {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  return Recorded(*impl_, Impl::kCreate, 0, [&] { return impl_->api().Create(path, options); });
}

Status Engine::Write(std::string_view path, uint64_t offset, std::span<const std::byte> data) {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  return Recorded(*impl_, Impl::kWrite, data.size(),
                  [&] { return impl_->api().Write(path, offset, data); });
}

Status Engine::Seal(std::string_view path) {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  return Recorded(*impl_, Impl::kSeal, 0, [&] { return impl_->api().Seal(path); });
}

Status Engine::Abort(std::string_view path) {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  return Recorded(*impl_, Impl::kAbort, 0, [&] { return impl_->api().Abort(path); });
}

Status Engine::Put(std::string_view path, std::span<const std::byte> data,
                   const CreateOptions& options) {
  CreateOptions co = options;
  if (co.size == kUnknownSize) co.size = data.size();
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  SHOAL_RETURN_IF_ERROR(Recorded(*impl_, Impl::kCreate, 0,
                                 [&] { return impl_->api().CreateWhole(path, co); }));
  Status s = Write(path, 0, data);
  if (s.ok()) s = Seal(path);
  if (!s.ok()) (void)Abort(path);
  return s;
}

Result<std::vector<LocalObject>> Engine::LocalObjects(std::string_view dir) {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  return impl_->api().LocalObjects(dir);
}

Result<Lease> Engine::TryLease(std::string_view name, uint64_t holder,
                               std::chrono::milliseconds ttl) {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  if (holder == 0) return Status::InvalidArgument("a lease's holder is not 0");
  if (ttl.count() < 1 || ttl.count() > engine::protocol::kMaxLeaseMs) {
    return Status::InvalidArgument(
        fmt::format("lease ttl {} ms not in 1..{}", ttl.count(), engine::protocol::kMaxLeaseMs));
  }
  return impl_->api().TryLease(name, holder, ttl);
}

Status Engine::ReleaseLease(std::string_view name, uint64_t holder) {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  if (holder == 0) return Status::InvalidArgument("a lease's holder is not 0");
  return impl_->api().ReleaseLease(name, holder);
}

Result<LocalSpace> Engine::GetLocalSpace() {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  return impl_->api().GetLocalSpace();
}

Status Engine::PutBatch(std::span<PutRequest> requests, const CreateOptions& options) {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  if (requests.size() > kMaxPutBatch) {
    return Status::InvalidArgument(
        fmt::format("a batch of {} objects: at most {}", requests.size(), kMaxPutBatch));
  }
  if (options.size != kUnknownSize) {
    return Status::InvalidArgument("a batch's options give no size: each object has its own");
  }
  if (options.chunk_size != 0 && !engine::IsValidChunkSize(options.chunk_size)) {
    return Status::InvalidArgument(fmt::format(
        "chunk size {} is not a power of two in 64 KiB..1 GiB", options.chunk_size));
  }
  if (options.replicas > 16) {
    return Status::InvalidArgument(fmt::format("replicas {} not in 0..16", options.replicas));
  }
  if (requests.empty()) return Status::OK();
  Impl::Call& c = impl_->call(Impl::kCreate);
  c.ops->Add(requests.size());
  metrics::ScopedTimer timer(*c.latency);
  Status s = impl_->api().PutBatch(requests, options);
  impl_->CountError(s);
  Impl::Call& w = impl_->call(Impl::kWrite);
  for (const PutRequest& r : requests) {
    impl_->CountError(r.status);
    if (r.status.ok()) w.bytes->Add(r.data.size());
  }
  return s;
}

Result<uint64_t> Engine::Read(std::string_view path, uint64_t offset, std::span<std::byte> dst) {
  ReadRequest req{std::string(path), offset, dst, {}, 0};
  SHOAL_RETURN_IF_ERROR(ReadBatch({&req, 1}));
  if (!req.status.ok()) return req.status;
  return req.bytes_read;
}

Status Engine::ReadBatch(std::span<ReadRequest> requests) {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  Impl::Call& c = impl_->call(Impl::kRead);
  c.ops->Add(requests.size());
  metrics::ScopedTimer timer(*c.latency);
  Status s = impl_->api().ReadBatch(requests);
  impl_->CountError(s);
  for (const ReadRequest& r : requests) {
    impl_->CountError(r.status);
    c.bytes->Add(r.bytes_read);
  }
  return s;
}

Result<ObjectInfo> Engine::Stat(std::string_view path) {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  return Recorded(*impl_, Impl::kStat, 0, [&] { return impl_->api().Stat(path); });
}

Status Engine::StatBatch(std::span<StatRequest> requests) {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  Impl::Call& c = impl_->call(Impl::kStat);
  c.ops->Add(requests.size());
  Status s = impl_->api().StatBatch(requests);
  impl_->CountError(s);
  for (const StatRequest& r : requests) impl_->CountError(r.status);
  return s;
}

Result<ListPage> Engine::List(std::string_view dir, const ListOptions& options) {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  return Recorded(*impl_, Impl::kList, 0, [&] { return impl_->api().List(dir, options); });
}

Status Engine::Remove(std::string_view path) {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  return Recorded(*impl_, Impl::kRemove, 0, [&] { return impl_->api().Remove(path); });
}

Result<std::vector<std::vector<uint32_t>>> Engine::Locate(std::string_view path) {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  return impl_->api().Locate(path);
}

Result<RepairReport> Engine::Repair(std::string_view dir) {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  return impl_->api().Repair(dir);
}

Result<RepairReport> Engine::WaitForRepair(uint32_t timeout_ms) {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  return impl_->api().WaitForRepair(std::chrono::milliseconds(timeout_ms));
}

std::string_view Engine::io_backend() const { return impl_->api().io_backend(); }
uint32_t Engine::rank() const { return impl_->api().rank(); }
uint32_t Engine::world_size() const { return impl_->api().world_size(); }

Status Engine::Barrier() {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  return impl_->api().Barrier();
}

Result<std::vector<std::vector<std::byte>>> Engine::AllGather(std::span<const std::byte> mine) {
  SHOAL_RETURN_IF_ERROR(impl_->Usable());
  return impl_->api().AllGather(mine);
}

}  // namespace shoal
