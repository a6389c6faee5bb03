#include "benchmarks/progress.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace shoal::bench {

Progress::Progress(std::string label, uint64_t total)
    : label_(std::move(label)), total_(total), thread_([this] { Run(); }) {}

Progress::~Progress() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  if (printed_ && isatty(2)) std::fprintf(stderr, "\r%80s\r", "");
}

void Progress::Run() {
  using clock = std::chrono::steady_clock;
  const bool tty = isatty(2);
  const auto start = clock::now();
  auto next = start + std::chrono::seconds(2);  // short phases print nothing
  std::unique_lock lk(mu_);
  while (!cv_.wait_until(lk, next, [&] { return stop_; })) {
    double secs = std::chrono::duration<double>(clock::now() - start).count();
    uint64_t done = done_.load(std::memory_order_relaxed);
    double pct = total_ ? 100.0 * static_cast<double>(done) / static_cast<double>(total_) : 0;
    std::fprintf(stderr, "%s[%s] %5.1f%%  %8.1f MB/s  %5.1f s%s", tty ? "\r" : "", label_.c_str(),
                 pct, static_cast<double>(done) / 1e6 / secs, secs, tty ? "" : "\n");
    std::fflush(stderr);
    printed_ = true;
    next = clock::now() + (tty ? std::chrono::milliseconds(500) : std::chrono::seconds(5));
  }
}

}  // namespace shoal::bench
