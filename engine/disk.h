// Disk: the seam between the chunk store and the kernel. Synchronous file operations plus
// asynchronous chunk I/O with completion callbacks. Implementations: UringDisk (io_uring,
// registered buffers, batched submission), PosixDisk (pread/pwrite on a thread pool), and
// FaultDisk (wraps another and injects ENOSPC / EIO for tests).
//
// Thread-safety: every method may be called from any thread. Completions are delivered on a
// backend thread; an IoSink must not block for long, and a caller must not hold a lock that its
// sink takes while calling Submit (Submit may block waiting for a free queue slot).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "shoal/options.h"
#include "shoal/result.h"
#include "shoal/status.h"

namespace shoal::engine {

class IoSink {
 public:
  virtual ~IoSink() = default;
  // `result` is the byte count transferred (possibly short) or -errno.
  virtual void OnComplete(uint64_t tag, int32_t result) = 0;
};

struct IoOp {
  enum class Kind : uint8_t { kRead, kWrite };
  Kind kind = Kind::kRead;
  int fd = -1;
  uint64_t offset = 0;
  void* buf = nullptr;
  uint32_t len = 0;
  int32_t buf_index = -1;  // registered buffer index, or -1
  IoSink* sink = nullptr;
  uint64_t tag = 0;
};

class Disk {
 public:
  virtual ~Disk() = default;

  virtual std::string_view name() const = 0;

  // Opens (creating when asked, mode 0600) a file for read/write. With `direct`, O_DIRECT is
  // requested; if the file system refuses it, the file is opened buffered and *direct_used is
  // false.
  virtual Result<int> OpenFile(const std::string& path, bool create, bool direct,
                               bool* direct_used);
  virtual void CloseFile(int fd);
  // Reserves [offset, offset+len) (fallocate mode 0: extends the file size).
  virtual Status Allocate(int fd, uint64_t offset, uint64_t len);
  virtual Status Sync(int fd);  // fdatasync
  virtual Status PunchHole(int fd, uint64_t offset, uint64_t len);
  virtual Status Truncate(int fd, uint64_t len);
  virtual Result<uint64_t> FileSize(int fd);
  // Bytes of the file backed by storage (st_blocks), holes and unallocated tails excluded.
  virtual Result<uint64_t> AllocatedBytes(int fd);
  virtual Status RemoveFile(const std::string& path);

  // Registers buffers for fixed I/O; false if the backend has no such notion or refused.
  virtual bool RegisterBuffers(std::span<const iovec> buffers) {
    (void)buffers;
    return false;
  }

  // Queues the operations; returns once all are submitted (blocking while queue_depth ops are
  // in flight). Each op's sink is called exactly once, also when submission fails.
  virtual void Submit(std::span<const IoOp> ops) = 0;

  // Runs `count` ops with at most the queue depth in flight and returns when all completed.
  // prepare(i, &op) fills the i-th op just before it is submitted (sink and tag are ignored);
  // complete(i, result) is called for each, on the calling thread. The default submits through
  // Submit and waits; io_uring runs the batch on a ring owned by the calling thread for its
  // duration, so completions reach the caller without a thread hand-off.
  virtual void Execute(size_t count, const std::function<void(size_t, IoOp*)>& prepare,
                       const std::function<void(size_t, int32_t)>& complete);
};

// pread/pwrite on `queue_depth` threads.
std::unique_ptr<Disk> NewPosixDisk(uint32_t queue_depth);
// io_uring with `queue_depth` entries; Unavailable if io_uring cannot be set up.
Result<std::unique_ptr<Disk>> NewUringDisk(uint32_t queue_depth);
// The backend Options ask for (kAuto: io_uring, else POSIX with a log line).
Result<std::unique_ptr<Disk>> NewDisk(IoBackend backend, uint32_t queue_depth);

}  // namespace shoal::engine
