// TaskPool: a fixed set of threads running submitted tasks in order of submission. Used by the
// transports to run request handlers off their delivery threads. Stop (or the destructor) runs
// what was submitted, then joins; Submit after Stop drops the task.
//
// Thread-safety: all methods are thread-safe; Stop must not be called from a pool thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "base/thread_annotations.h"

namespace shoal {

class TaskPool {
 public:
  explicit TaskPool(uint32_t threads);
  ~TaskPool() { Stop(); }
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  // False (task dropped) once the pool is stopping.
  bool Submit(std::function<void()> task) EXCLUDES(mu_);
  void Stop() EXCLUDES(mu_);

 private:
  void Run() EXCLUDES(mu_);

  Mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;  // set in the constructor, joined once by Stop
  bool joined_ GUARDED_BY(mu_) = false;
};

}  // namespace shoal
