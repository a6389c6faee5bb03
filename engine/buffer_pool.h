// Page-aligned I/O buffers for O_DIRECT, recycled so the data path never page-faults fresh
// memory in. The first `registered_count` buffers of the pool's size are registered with the
// io_uring backend (fixed buffers: the kernel skips pinning per I/O); buffers handed out beyond
// them are plain aligned allocations, cached up to `cache_limit` and freed past it.
//
// Thread-safety: all methods are thread-safe.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace shoal::engine {

inline constexpr size_t kBlockSize = 4096;  // alignment and size granule of O_DIRECT I/O

inline constexpr uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

struct IoBuffer {
  std::byte* data = nullptr;
  size_t size = 0;
  int32_t registered_index = -1;  // >= 0: fixed buffer index of the io_uring backend
  bool empty() const { return data == nullptr; }
};

class BufferPool {
 public:
  BufferPool(size_t buffer_size, size_t registered_count, size_t cache_limit);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  size_t buffer_size() const { return buffer_size_; }

  // iovecs of the buffers that may be registered with the disk backend, index = fixed index.
  std::vector<iovec> RegistrableBuffers() const;

  // Never blocks: a registered buffer when one is free, else a cached or new aligned one.
  // Aborts only if the process is out of memory (std::bad_alloc semantics of operator new).
  IoBuffer Acquire();
  void Release(IoBuffer buffer);

  // An aligned buffer of any size, outside the pool (for odd chunk sizes). Free with FreeRaw.
  static IoBuffer AllocateRaw(size_t size);
  static void FreeRaw(IoBuffer buffer);

 private:
  const size_t buffer_size_;
  const size_t cache_limit_;
  std::vector<std::byte*> registered_;
  std::mutex mu_;
  std::vector<int32_t> free_registered_;
  std::vector<std::byte*> free_unregistered_;
};

}  // namespace shoal::engine
