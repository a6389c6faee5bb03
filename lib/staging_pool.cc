#include "lib/staging_pool.h"

#include <algorithm>
#include <cassert>

namespace shoal {

StagingPool::StagingPool(uint64_t capacity)
    : capacity_(std::max<uint64_t>(1, capacity)),
      buf_(std::make_unique_for_overwrite<std::byte[]>(capacity_)) {}

bool StagingPool::Fits(uint64_t n, uint64_t* off, bool* wrap) const {
  *wrap = false;
  if (live_.empty()) {
    *off = 0;
    return true;
  }
  const uint64_t oldest = live_.front().first;
  const uint64_t end = live_.back().first + live_.back().second;
  if (!wrapped_) {
    if (capacity_ - end >= n) {
      *off = end;
      return true;
    }
    if (oldest >= n) {  // the tail of the buffer is too short: start again at 0
      *off = 0;
      *wrap = true;
      return true;
    }
    return false;
  }
  *off = end;
  return oldest - end >= n;
}

bool StagingPool::WouldWait(uint64_t n) {
  std::lock_guard lk(mu_);
  uint64_t off = 0;
  bool wrap = false;
  return !Fits(n, &off, &wrap);
}

std::span<std::byte> StagingPool::Acquire(uint64_t n) {
  assert(n >= 1 && n <= capacity_);
  std::unique_lock lk(mu_);
  uint64_t off = 0;
  bool wrap = false;
  cv_.wait(lk, [&] { return Fits(n, &off, &wrap); });
  if (wrap) wrapped_ = true;
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
