// StagingPool: the bounded memory an async checkpoint save copies the caller's bytes into.
//
// One contiguous buffer used as a ring: one producer (the thread calling Save) takes regions in
// order, one consumer (the background writer) gives them back in the same order. Acquire blocks
// while the ring has no contiguous room, so memory never grows past the pool's capacity however
// much is saved.
//
// A region starts at a chosen `phase` within a page (its address mod 4096): the producer asks
// for the phase of the bytes it will copy in, because glibc's memcpy runs at a third of its
// speed when source and destination sit a few bytes apart within a page (512 MiB from a
// page-aligned source on this VM: 12.4-13.8 GB/s to +0 or +4096, 4.1-4.4 to +16, 3.5-3.7 to
// +64; benchmarks/memcpy_alignment.cc).
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
  static constexpr uint64_t kPage = 4096;
  explicit StagingPool(uint64_t capacity);  // bytes, at least 1; the buffer is page-aligned

  uint64_t capacity() const { return capacity_; }

  // A region of `n` bytes (1 <= n <= capacity()) whose address is `phase` mod kPage (unless
  // only a region at phase 0 could ever fit), waiting until the ring has room.
  std::span<std::byte> Acquire(uint64_t n, uint64_t phase = 0);
  // True when Acquire(n, phase) would wait now (only the producer calls Acquire, so a false
  // answer stays true until it does).
  bool WouldWait(uint64_t n, uint64_t phase = 0);
  // Gives back the oldest region not given back yet (`region` must be it).
  void Release(std::span<std::byte> region);

 private:
  // Whether n bytes at `phase` fit now; where, and whether that starts the ring again.
  bool Fits(uint64_t n, uint64_t phase, uint64_t* off, bool* wrap) const;
  uint64_t UsablePhase(uint64_t n, uint64_t phase) const;

  struct Free {
    void operator()(std::byte* p) const;
  };
  const uint64_t capacity_;
  std::unique_ptr<std::byte[], Free> buf_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<uint64_t, uint64_t>> live_;  // (offset, length), oldest first
  bool wrapped_ = false;  // the newest regions start again at 0, before the oldest
};

}  // namespace shoal
