// The raw-UCX baseline of shoal-bench's world rows: UCX at its best, as ucx_perftest's ucp_get
// test runs it. Each process maps one buffer with ucp_mem_map (registered once, reused); a reader
// moves `block`-sized pieces out of a peer's buffer into its own with one-sided gets
// (ucp_get_nbx with both memory handles: zero-copy RMA where the transports offer it, shared
// memory's CMA between local processes, UCX's own emulation over TCP), `window` in flight. No
// messages, no headers, no copies after the transfer: the ceiling a remote chunk read is
// measured against. (The messenger-plus-memcpy baseline before it measured shoal's own
// transport, not the machine.)
//
// Threads: a RawUcx is used by one thread at a time. While a peer reads from it, the process
// serves (ServeUntil) until that peer says it is done, and only then: a progress loop beside
// the engine's own measurement would take a core from it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "shoal/result.h"

namespace shoal::bench {

class RawUcx {
 public:
  // A UCX context with RMA, one worker and a registered buffer of `buffer_bytes` (filled with a
  // pattern, so a read of it moves real bytes).
  static Result<std::unique_ptr<RawUcx>> Create(size_t buffer_bytes);
  ~RawUcx();

  // What a peer needs to read this process's buffer: the worker's address, the buffer's address
  // and its packed remote key.
  std::vector<std::byte> Blob() const;
  // Connects to the peer whose Blob() is `blob` (an endpoint and its unpacked remote key).
  Status Connect(uint32_t peer, std::span<const std::byte> blob);

  // Reads `total` bytes from `peer`'s buffer in `block`-sized gets (block <= both buffers),
  // at most `window` in flight, each into the next block-sized slot of this buffer (wrapping).
  // Returns the seconds the gets took; then tells the peer (a put of this process's count of
  // Reads into the page after the peer's buffer, which ServeUntil watches).
  Result<double> Read(uint32_t peer, uint64_t total, uint32_t block, uint32_t window);

  // Progresses the worker (UCX's TCP emulation of RMA needs the target's progress) until a
  // peer's Read told this process it finished its `reads`-th read; Timeout after `deadline`.
  Status ServeUntil(uint64_t reads, std::chrono::milliseconds deadline);

 private:
  struct Impl;
  explicit RawUcx(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal::bench
