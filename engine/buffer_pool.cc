#include "engine/buffer_pool.h"

#include <cstdlib>
#include <new>

namespace shoal::engine {
namespace {

std::byte* AlignedAlloc(size_t size) {
  void* p = nullptr;
  if (posix_memalign(&p, kBlockSize, AlignUp(size, kBlockSize)) != 0) throw std::bad_alloc();
  return static_cast<std::byte*>(p);
}

}  // namespace

BufferPool::BufferPool(size_t buffer_size, size_t registered_count, size_t cache_limit)
    : buffer_size_(AlignUp(buffer_size, kBlockSize)), cache_limit_(cache_limit) {
  registered_.reserve(registered_count);
  for (size_t i = 0; i < registered_count; ++i) {
    registered_.push_back(AlignedAlloc(buffer_size_));
    free_registered_.push_back(static_cast<int32_t>(registered_count - 1 - i));
  }
}

BufferPool::~BufferPool() {
  for (std::byte* p : registered_) std::free(p);
  for (std::byte* p : free_unregistered_) std::free(p);
}

std::vector<iovec> BufferPool::RegistrableBuffers() const {
  std::vector<iovec> v;
  for (std::byte* p : registered_) v.push_back(iovec{p, buffer_size_});
  return v;
}

IoBuffer BufferPool::Acquire() {
  {
    std::lock_guard lk(mu_);
    if (!free_registered_.empty()) {
      int32_t i = free_registered_.back();
      free_registered_.pop_back();
      return IoBuffer{registered_[i], buffer_size_, i};
    }
    if (!free_unregistered_.empty()) {
      std::byte* p = free_unregistered_.back();
      free_unregistered_.pop_back();
      return IoBuffer{p, buffer_size_, -1};
    }
  }
  return IoBuffer{AlignedAlloc(buffer_size_), buffer_size_, -1};
}

void BufferPool::Release(IoBuffer buffer) {
  if (buffer.empty()) return;
  std::lock_guard lk(mu_);
  if (buffer.registered_index >= 0) {
    free_registered_.push_back(buffer.registered_index);
  } else if (free_unregistered_.size() < cache_limit_) {
    free_unregistered_.push_back(buffer.data);
  } else {
    std::free(buffer.data);
  }
}

IoBuffer BufferPool::AllocateRaw(size_t size) {
  size_t n = AlignUp(size == 0 ? 1 : size, kBlockSize);
  return IoBuffer{AlignedAlloc(n), n, -1};
}

void BufferPool::FreeRaw(IoBuffer buffer) { std::free(buffer.data); }

}  // namespace shoal::engine
