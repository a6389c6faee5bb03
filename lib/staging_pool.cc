#include "lib/staging_pool.h"

#include <cassert>

namespace shoal {

StagingPool::StagingPool(uint64_t capacity)
    : capacity_(capacity), buf_(std::make_unique_for_overwrite<std::byte[]>(capacity)) {}

std::span<std::byte> StagingPool::Acquire(uint64_t n) {
  assert(n >= 1 && n <= capacity_);
  std::unique_lock lk(mu_);
  uint64_t off = 0;
  cv_.wait(lk, [&] {
    if (live_.empty()) {
      off = 0;
      return true;
    }
    const uint64_t oldest = live_.front().first;
    const uint64_t end = live_.back().first + live_.back().second;
    if (!wrapped_) {
      if (capacity_ - end >= n) {
        off = end;
        return true;
      }
      if (oldest >= n) {  // the tail of the buffer is too short: start again at 0
        off = 0;
        wrapped_ = true;
        return true;
      }
      return false;
    }
    if (oldest - end >= n) {
      off = end;
      return true;
    }
    return false;
  });
  live_.emplace_back(off, n);
  return {buf_.get() + off, n};
}

void StagingPool::Release(std::span<std::byte> region) {
  std::lock_guard lk(mu_);
  assert(!live_.empty() && buf_.get() + live_.front().first == region.data());
  (void)region;
  const uint64_t released = live_.front().first;
  live_.pop_front();
  if (live_.empty() || live_.front().first < released) wrapped_ = false;
  cv_.notify_all();
}

}  // namespace shoal
