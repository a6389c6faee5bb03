// UringDisk: chunk I/O through one io_uring. Submitters serialize on the submission queue and
// submit a whole batch with one io_uring_submit; a reaper thread waits on the completion queue
// and calls the sinks. A counting semaphore keeps at most `queue_depth` ops in flight, so the
// completion queue can never overflow. Buffers registered once are used with READ/WRITE_FIXED.
#include <liburing.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <semaphore>
#include <thread>
#include <vector>

#include "engine/disk.h"
#include "engine/errno_status.h"

namespace shoal::engine {
namespace {

constexpr uint64_t kStopTag = 0;  // user_data of the NOP that ends the reaper

class UringDisk final : public Disk {
 public:
  explicit UringDisk(uint32_t queue_depth) : depth_(queue_depth), slots_(queue_depth) {}

  Status Init() {
    int rc = io_uring_queue_init(depth_ + 1, &ring_, 0);
    if (rc < 0) return ErrnoStatus(-rc, "io_uring_queue_init");
    initialized_ = true;
    reaper_ = std::thread([this] { Reap(); });
    return Status::OK();
  }

  ~UringDisk() override {
    if (!initialized_) return;
    {
      std::lock_guard lk(sq_mu_);
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      while (sqe == nullptr) {  // cannot happen with the slot bound, but never spin forever
        io_uring_submit(&ring_);
        sqe = io_uring_get_sqe(&ring_);
      }
      io_uring_prep_nop(sqe);
      io_uring_sqe_set_data64(sqe, kStopTag);
      io_uring_submit(&ring_);
    }
    reaper_.join();
    io_uring_queue_exit(&ring_);
  }

  std::string_view name() const override { return "io_uring"; }

  bool RegisterBuffers(std::span<const iovec> buffers) override {
    if (buffers.empty()) return false;
    std::lock_guard lk(sq_mu_);
    int rc = io_uring_register_buffers(&ring_, buffers.data(), static_cast<unsigned>(buffers.size()));
    registered_ = rc == 0;
    return registered_;
  }

  void Submit(std::span<const IoOp> ops) override {
    size_t i = 0;
    while (i < ops.size()) {
      // Take one slot (blocking), then as many more as are free without blocking, and submit
      // that group with a single syscall.
      slots_.acquire();
      size_t n = 1;
      while (i + n < ops.size() && slots_.try_acquire()) ++n;
      std::lock_guard lk(sq_mu_);
      for (size_t k = 0; k < n; ++k) {
        const IoOp& op = ops[i + k];
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        auto* copy = new IoOp(op);
        bool fixed = registered_ && op.buf_index >= 0;
        if (op.kind == IoOp::Kind::kRead) {
          if (fixed) io_uring_prep_read_fixed(sqe, op.fd, op.buf, op.len, op.offset, op.buf_index);
          else io_uring_prep_read(sqe, op.fd, op.buf, op.len, op.offset);
        } else {
          if (fixed) io_uring_prep_write_fixed(sqe, op.fd, op.buf, op.len, op.offset, op.buf_index);
          else io_uring_prep_write(sqe, op.fd, op.buf, op.len, op.offset);
        }
        io_uring_sqe_set_data(sqe, copy);
      }
      int rc = io_uring_submit(&ring_);
      if (rc < 0) {
        // Nothing was consumed by the kernel in this case only for errors like EBADR; report
        // every op of the group as failed so no caller waits forever.
        for (size_t k = 0; k < n; ++k) {
          ops[i + k].sink->OnComplete(ops[i + k].tag, rc);
          slots_.release();
        }
      }
      i += n;
    }
  }

 private:
  void Reap() {
    while (true) {
      io_uring_cqe* cqe = nullptr;
      int rc = io_uring_wait_cqe(&ring_, &cqe);
      if (rc == -EINTR) continue;
      if (rc < 0) continue;
      uint64_t data = io_uring_cqe_get_data64(cqe);
      int32_t res = cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
      if (data == kStopTag) return;
      auto* op = reinterpret_cast<IoOp*>(data);
      op->sink->OnComplete(op->tag, res);
      delete op;
      slots_.release();
    }
  }

  const uint32_t depth_;
  std::counting_semaphore<> slots_;
  io_uring ring_{};
  bool initialized_ = false;
  bool registered_ = false;
  std::mutex sq_mu_;
  std::thread reaper_;
};

}  // namespace

Result<std::unique_ptr<Disk>> NewUringDisk(uint32_t queue_depth) {
  auto disk = std::make_unique<UringDisk>(queue_depth == 0 ? 1 : queue_depth);
  SHOAL_RETURN_IF_ERROR(disk->Init().WithContext("io_uring"));
  return std::unique_ptr<Disk>(std::move(disk));
}

}  // namespace shoal::engine
