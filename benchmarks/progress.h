// Progress: a line on stderr for phases longer than a couple of seconds. On a terminal it is
// redrawn in place twice a second; otherwise a line is printed every 5 s (readable CI logs).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace shoal::bench {

class Progress {
 public:
  // `total` bytes are expected; callers Add() as they go.
  Progress(std::string label, uint64_t total);
  ~Progress();  // stops and clears the line
  void Add(uint64_t bytes) { done_.fetch_add(bytes, std::memory_order_relaxed); }

 private:
  void Run();
  std::string label_;
  uint64_t total_;
  std::atomic<uint64_t> done_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool printed_ = false;
  std::thread thread_;
};

}  // namespace shoal::bench
