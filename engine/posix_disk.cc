// PosixDisk: chunk I/O with pread/pwrite on a pool of threads, one op per thread at a time, so
// `queue_depth` threads keep that many I/Os in flight. The fallback where io_uring is blocked.
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/disk.h"

namespace shoal::engine {
namespace {

class PosixDisk final : public Disk {
 public:
  explicit PosixDisk(uint32_t queue_depth) : capacity_(queue_depth) {
    for (uint32_t i = 0; i < queue_depth; ++i) threads_.emplace_back([this] { Worker(); });
  }
  ~PosixDisk() override {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

  std::string_view name() const override { return "posix"; }

  void Submit(std::span<const IoOp> ops) override {
    std::unique_lock lk(mu_);
    for (const IoOp& op : ops) {
      // Bound what is queued to what the threads can run, like an io_uring queue depth.
      space_cv_.wait(lk, [&] { return queued_ + running_ < 2 * capacity_; });
      queue_.push_back(op);
      ++queued_;
      cv_.notify_one();
    }
  }

 private:
  static int32_t Run(const IoOp& op) {
    auto* p = static_cast<char*>(op.buf);
    uint64_t done = 0;
    while (done < op.len) {
      ssize_t n = op.kind == IoOp::Kind::kRead
                      ? ::pread(op.fd, p + done, op.len - done, static_cast<off_t>(op.offset + done))
                      : ::pwrite(op.fd, p + done, op.len - done, static_cast<off_t>(op.offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return -errno;
      if (n == 0) break;  // end of file: short read
      done += static_cast<uint64_t>(n);
    }
    return static_cast<int32_t>(done);
  }

  void Worker() {
    std::unique_lock lk(mu_);
    while (true) {
      cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and drained
      IoOp op = queue_.front();
      queue_.pop_front();
      --queued_;
      ++running_;
      lk.unlock();
      int32_t res = Run(op);
      op.sink->OnComplete(op.tag, res);
      lk.lock();
      --running_;
      space_cv_.notify_one();
    }
  }

  const uint32_t capacity_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable space_cv_;
  std::deque<IoOp> queue_;
  uint32_t queued_ = 0;
  uint32_t running_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace

std::unique_ptr<Disk> NewPosixDisk(uint32_t queue_depth) {
  return std::make_unique<PosixDisk>(queue_depth == 0 ? 1 : queue_depth);
}

}  // namespace shoal::engine
