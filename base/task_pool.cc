#include "base/task_pool.h"

#include <algorithm>

namespace shoal {

TaskPool::TaskPool(uint32_t threads) {
  for (uint32_t i = 0; i < std::max<uint32_t>(1, threads); ++i) {
    threads_.emplace_back([this] { Run(); });
  }
}

bool TaskPool::Submit(std::function<void()> task) {
  MutexLock lk(&mu_);
  if (stop_) return false;
  tasks_.push_back(std::move(task));
  cv_.notify_one();
  return true;
}

void TaskPool::Stop() {
  {
    MutexLock lk(&mu_);
    if (joined_) return;
    joined_ = true;
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void TaskPool::Run() {
  MutexLock lk(&mu_);
  while (true) {
    Await(cv_, &mu_, [&]() REQUIRES(mu_) { return stop_ || !tasks_.empty(); });
    if (tasks_.empty()) return;
    auto task = std::move(tasks_.front());
    tasks_.pop_front();
    mu_.Unlock();
    task();
    mu_.Lock();
  }
}

}  // namespace shoal
