#include "benchmarks/raw_ucx.h"

#include <fmt/format.h>
#include <ucp/api/ucp.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <map>
#include <thread>

#include "transport/ucx_status.h"

namespace shoal::bench {

using transport::UcxStatus;

struct RawUcx::Impl {
  ucp_context_h context = nullptr;
  ucp_worker_h worker = nullptr;
  ucp_mem_h memh = nullptr;
  void* owned = nullptr;  // std::aligned_alloc
  void* buffer = nullptr;
  size_t bytes = 0;
  std::byte* flag = nullptr;  // the page after the buffer: the reads a peer finished (Read)
  uint64_t reads_done = 0;     // this process's Reads so far, put into the peer's flag
  uint64_t put_value = 0;      // the put's source, alive until the put completes
  std::vector<std::byte> blob;
  struct Peer {
    ucp_ep_h ep = nullptr;
    ucp_rkey_h rkey = nullptr;
    uint64_t remote = 0;
    uint64_t remote_bytes = 0;
    uint64_t flag_offset = 0;  // of the peer's flag page from its buffer
  };
  std::map<uint32_t, Peer> peers;

  ~Impl() {
    for (auto& [r, p] : peers) {
      if (p.rkey != nullptr) ucp_rkey_destroy(p.rkey);
      if (p.ep != nullptr) {
        ucp_request_param_t param{};
        param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
        param.flags = UCP_EP_CLOSE_FLAG_FORCE;
        ucs_status_ptr_t req = ucp_ep_close_nbx(p.ep, &param);
        if (UCS_PTR_IS_PTR(req)) {
          while (ucp_request_check_status(req) == UCS_INPROGRESS) ucp_worker_progress(worker);
          ucp_request_free(req);
        }
      }
    }
    if (memh != nullptr) ucp_mem_unmap(context, memh);
    if (worker != nullptr) ucp_worker_destroy(worker);
    if (context != nullptr) ucp_cleanup(context);
    std::free(owned);
  }
};

RawUcx::RawUcx(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RawUcx::~RawUcx() = default;

Result<std::unique_ptr<RawUcx>> RawUcx::Create(size_t buffer_bytes) {
  auto impl = std::make_unique<Impl>();
  ucp_config_t* config = nullptr;
  ucs_status_t st = ucp_config_read(nullptr, nullptr, &config);
  if (st != UCS_OK) return UcxStatus(st, "ucp_config_read");
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES;
  params.features = UCP_FEATURE_RMA;
  st = ucp_init(&params, config, &impl->context);
  ucp_config_release(config);
  if (st != UCS_OK) return UcxStatus(st, "ucp_init");
  ucp_worker_params_t wp{};
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  wp.thread_mode = UCS_THREAD_MODE_SINGLE;
  st = ucp_worker_create(impl->context, &wp, &impl->worker);
  if (st != UCS_OK) return UcxStatus(st, "ucp_worker_create");

  ucp_mem_map_params_t mp{};
  mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH |
                  UCP_MEM_MAP_PARAM_FIELD_FLAGS;
  // The process's own memory, registered (as the engine's I/O buffers would be): memory that
  // UCX allocates itself comes from a shared-memory segment that its RMA copies through
  // (bcopy), where registered private memory gets the zero-copy lanes (CMA between local
  // processes, RDMA where present).
  const size_t mapped = (buffer_bytes + 4095) / 4096 * 4096 + 4096;  // + the flag's page
  impl->owned = std::aligned_alloc(4096, mapped);
  if (impl->owned == nullptr) return Status::Unavailable("raw UCX: no memory for the buffer");
  mp.address = impl->owned;
  mp.length = mapped;
  mp.flags = 0;
  st = ucp_mem_map(impl->context, &mp, &impl->memh);
  if (st != UCS_OK) return UcxStatus(st, "ucp_mem_map");
  ucp_mem_attr_t attr{};
  attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS | UCP_MEM_ATTR_FIELD_LENGTH;
  st = ucp_mem_query(impl->memh, &attr);
  if (st != UCS_OK) return UcxStatus(st, "ucp_mem_query");
  impl->buffer = attr.address;
  impl->bytes = buffer_bytes;
  impl->flag = static_cast<std::byte*>(impl->buffer) + mapped - 4096;
  auto* b = static_cast<unsigned char*>(impl->buffer);
  for (size_t i = 0; i < buffer_bytes; ++i) b[i] = static_cast<unsigned char>(i * 131 + 7);
  std::memset(impl->flag, 0, 4096);

  // Blob: u64 buffer address, u64 bytes, u32 address length, address, rkey.
  ucp_address_t* address = nullptr;
  size_t address_len = 0;
  st = ucp_worker_get_address(impl->worker, &address, &address_len);
  if (st != UCS_OK) return UcxStatus(st, "ucp_worker_get_address");
  void* rkey = nullptr;
  size_t rkey_len = 0;
  st = ucp_rkey_pack(impl->context, impl->memh, &rkey, &rkey_len);
  if (st != UCS_OK) {
    ucp_worker_release_address(impl->worker, address);
    return UcxStatus(st, "ucp_rkey_pack");
  }
  const uint64_t where = reinterpret_cast<uintptr_t>(impl->buffer);
  const uint64_t len = buffer_bytes;
  const uint32_t alen = static_cast<uint32_t>(address_len);
  auto& out = impl->blob;
  auto put = [&out](const void* p, size_t n) {
    const auto* c = static_cast<const std::byte*>(p);
    out.insert(out.end(), c, c + n);
  };
  put(&where, 8);
  put(&len, 8);
  put(&alen, 4);
  put(address, address_len);
  put(rkey, rkey_len);
  ucp_rkey_buffer_release(rkey);
  ucp_worker_release_address(impl->worker, address);
  return std::unique_ptr<RawUcx>(new RawUcx(std::move(impl)));
}

std::vector<std::byte> RawUcx::Blob() const { return impl_->blob; }

Status RawUcx::Connect(uint32_t peer, std::span<const std::byte> blob) {
  Impl::Peer p;
  uint32_t alen = 0;
  if (blob.size() < 20) return Status::InvalidArgument("raw UCX blob too short");
  std::memcpy(&p.remote, blob.data(), 8);
  std::memcpy(&p.remote_bytes, blob.data() + 8, 8);
  p.flag_offset = (p.remote_bytes + 4095) / 4096 * 4096;
  std::memcpy(&alen, blob.data() + 16, 4);
  if (blob.size() < 20 + static_cast<size_t>(alen)) {
    return Status::InvalidArgument("raw UCX blob shorter than its address");
  }
  ucp_ep_params_t ep{};
  ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS;
  ep.address = reinterpret_cast<const ucp_address_t*>(blob.data() + 20);
  ucs_status_t st = ucp_ep_create(impl_->worker, &ep, &p.ep);
  if (st != UCS_OK) return UcxStatus(st, "ucp_ep_create");
  st = ucp_ep_rkey_unpack(p.ep, blob.data() + 20 + alen, &p.rkey);
  if (st != UCS_OK) {
    impl_->peers[peer] = p;  // closed with the rest
    return UcxStatus(st, "ucp_ep_rkey_unpack");
  }
  impl_->peers[peer] = p;
  return Status::OK();
}

Result<double> RawUcx::Read(uint32_t peer, uint64_t total, uint32_t block, uint32_t window) {
  auto it = impl_->peers.find(peer);
  if (it == impl_->peers.end()) return Status::InvalidArgument("raw UCX: peer not connected");
  const Impl::Peer& p = it->second;
  if (block == 0 || block > impl_->bytes || block > p.remote_bytes || window == 0) {
    return Status::InvalidArgument("raw UCX: block larger than a buffer, or no window");
  }
  const uint32_t slots = static_cast<uint32_t>(impl_->bytes / block);
  struct Flight {
    uint32_t inflight = 0;
    ucs_status_t bad = UCS_OK;
  } flight;
  auto done = [](void* request, ucs_status_t status, void* user) {
    auto* f = static_cast<Flight*>(user);
    if (status != UCS_OK && f->bad == UCS_OK) f->bad = status;
    f->inflight--;
    ucp_request_free(request);  // freed before completion, it would never call back
  };
  ucp_request_param_t param{};
  param.op_attr_mask =
      UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_MEMH;
  param.cb.send = done;
  param.user_data = &flight;
  param.memh = impl_->memh;
  auto* local = static_cast<std::byte*>(impl_->buffer);
  const auto start = std::chrono::steady_clock::now();
  uint64_t n = 0;
  for (uint64_t got = 0; got < total && flight.bad == UCS_OK; got += block, ++n) {
    while (flight.inflight >= window) ucp_worker_progress(impl_->worker);
    const uint32_t len = static_cast<uint32_t>(std::min<uint64_t>(block, total - got));
    ucs_status_ptr_t req = ucp_get_nbx(p.ep, local + (n % slots) * block, len, p.remote, p.rkey,
                                       &param);
    if (UCS_PTR_IS_ERR(req)) return UcxStatus(UCS_PTR_STATUS(req), "ucp_get_nbx");
    if (UCS_PTR_IS_PTR(req)) flight.inflight++;  // done() frees it
  }
  while (flight.inflight > 0) ucp_worker_progress(impl_->worker);
  if (flight.bad != UCS_OK) return UcxStatus(flight.bad, "raw UCX get");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Tells the peer this read is over: the count of reads into its flag page. Only the put's
  // local completion is awaited (a flush would wait on the peer, which stops progressing as
  // soon as it sees the flag).
  impl_->put_value = ++impl_->reads_done;
  ucp_request_param_t pp{};
  ucs_status_ptr_t req = ucp_put_nbx(p.ep, &impl_->put_value, sizeof(impl_->put_value),
                                     p.remote + p.flag_offset, p.rkey, &pp);
  if (UCS_PTR_IS_ERR(req)) return UcxStatus(UCS_PTR_STATUS(req), "ucp_put_nbx");
  if (UCS_PTR_IS_PTR(req)) {
    while (ucp_request_check_status(req) == UCS_INPROGRESS) ucp_worker_progress(impl_->worker);
    const ucs_status_t st = ucp_request_check_status(req);
    ucp_request_free(req);
    if (st != UCS_OK) return UcxStatus(st, "raw UCX put of the flag");
  }
  return seconds;
}

Status RawUcx::ServeUntil(uint64_t reads, std::chrono::milliseconds deadline) {
  const auto give_up = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    uint64_t seen = 0;
    std::memcpy(&seen, impl_->flag, sizeof(seen));  // written by the peer's put
    std::atomic_thread_fence(std::memory_order_acquire);
    if (seen >= reads) return Status::OK();
    if (ucp_worker_progress(impl_->worker) == 0) {
      if (std::chrono::steady_clock::now() >= give_up) {
        return Status::Timeout("raw UCX: the reading peer did not finish");
      }
      std::this_thread::yield();
    }
  }
}

}  // namespace shoal::bench
