// StagingPool: the bounded memory an async checkpoint save copies the caller's bytes into.
//
// One contiguous buffer used as a ring: one producer (the thread calling Save) takes regions in
// order, one consumer (the background writer) gives them back in the same order. Acquire blocks
// while the ring has no contiguous room, so memory never grows past the pool's capacity however
// much is saved.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>

namespace shoal {

class StagingPool {
 public:
  explicit StagingPool(uint64_t capacity);  // bytes, at least 1

  uint64_t capacity() const { return capacity_; }

  // A region of `n` bytes (1 <= n <= capacity()), waiting until the ring has room.
  std::span<std::byte> Acquire(uint64_t n);
  // True when Acquire(n) would wait now (only the producer calls Acquire, so a false answer
  // stays true until it does).
  bool WouldWait(uint64_t n);
  // Gives back the oldest region not given back yet (`region` must be it).
  void Release(std::span<std::byte> region);

 private:
  // Whether n bytes fit now; where, and whether that starts the ring again at 0.
  bool Fits(uint64_t n, uint64_t* off, bool* wrap) const;

  const uint64_t capacity_;
  std::unique_ptr<std::byte[]> buf_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<uint64_t, uint64_t>> live_;  // (offset, length), oldest first
  bool wrapped_ = false;  // the newest regions start again at 0, before the oldest
};

}  // namespace shoal
