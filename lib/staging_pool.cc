#include "lib/staging_pool.h"

#include <algorithm>
#include <cassert>

#include "engine/buffer_pool.h"

namespace shoal {
namespace {

static_assert(StagingPool::kPage == engine::kBlockSize);  // AllocateRaw's alignment

// The least offset >= x that is `phase` mod the page.
uint64_t AtPhase(uint64_t x, uint64_t phase) {
  return x + (phase + StagingPool::kPage - x % StagingPool::kPage) % StagingPool::kPage;
}

}  // namespace

void StagingPool::Free::operator()(std::byte* p) const { engine::BufferPool::FreeRaw({p}); }

StagingPool::StagingPool(uint64_t capacity)
    : capacity_(std::max<uint64_t>(1, capacity)),
      buf_(engine::BufferPool::AllocateRaw(capacity_).data) {}

uint64_t StagingPool::UsablePhase(uint64_t n, uint64_t phase) const {
  phase %= kPage;
  return phase + n <= capacity_ ? phase : 0;  // else only phase 0 could ever fit
}

bool StagingPool::Fits(uint64_t n, uint64_t phase, uint64_t* off, bool* wrap) const {
  *wrap = false;
  if (live_.empty()) {
    *off = phase;
    return true;
  }
  const uint64_t oldest = live_.front().first;
  const uint64_t at = AtPhase(live_.back().first + live_.back().second, phase);
  if (!wrapped_) {
    if (at <= capacity_ && capacity_ - at >= n) {
      *off = at;
      return true;
    }
    if (oldest >= phase + n) {  // the tail of the buffer is too short: start again
      *off = phase;
      *wrap = true;
      return true;
    }
    return false;
  }
  *off = at;
  return at <= oldest && oldest - at >= n;
}

bool StagingPool::WouldWait(uint64_t n, uint64_t phase) {
  std::lock_guard lk(mu_);
  uint64_t off = 0;
  bool wrap = false;
  return !Fits(n, UsablePhase(n, phase), &off, &wrap);
}

std::span<std::byte> StagingPool::Acquire(uint64_t n, uint64_t phase) {
  assert(n >= 1 && n <= capacity_);
  std::unique_lock lk(mu_);
  uint64_t off = 0;
  bool wrap = false;
  phase = UsablePhase(n, phase);
  cv_.wait(lk, [&] { return Fits(n, phase, &off, &wrap); });
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
