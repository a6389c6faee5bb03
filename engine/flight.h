// Flight: counts asynchronous calls in flight, at most `window` at a time. Acquire before
// starting a call, Release from its completion (any thread), Wait for all to finish.
//
// Thread-safety: all methods are thread-safe. Release notifies under the lock, so a waiter may
// destroy the Flight as soon as Wait returns.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>

#include "base/thread_annotations.h"

namespace shoal::engine {

class Flight {
 public:
  explicit Flight(size_t window) : window_(std::max<size_t>(1, window)) {}
  void Acquire() EXCLUDES(mu_) {
    MutexLock lk(&mu_);
    Await(cv_, &mu_, [&]() REQUIRES(mu_) { return n_ < window_; });
    ++n_;
  }
  void Release() EXCLUDES(mu_) {
    MutexLock lk(&mu_);
    --n_;
    cv_.notify_all();
  }
  void Wait() EXCLUDES(mu_) {
    MutexLock lk(&mu_);
    Await(cv_, &mu_, [&]() REQUIRES(mu_) { return n_ == 0; });
  }

 private:
  const size_t window_;
  Mutex mu_;
  std::condition_variable cv_;
  size_t n_ GUARDED_BY(mu_) = 0;
};

}  // namespace shoal::engine
