// File operations shared by every Disk backend (plain syscalls; errno mapped once).
#include "engine/disk.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "base/errno_status.h"
#include "base/log.h"

namespace shoal::engine {

Result<int> Disk::OpenFile(const std::string& path, bool create, bool direct, bool* direct_used) {
  int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0);
  int fd = ::open(path.c_str(), flags | (direct ? O_DIRECT : 0), 0600);
  if (fd < 0 && direct && errno == EINVAL) {
    Log(LogLevel::kWarn, "O_DIRECT refused for {}; using buffered I/O with fdatasync", path);
    fd = ::open(path.c_str(), flags, 0600);
    direct = false;
  }
  if (fd < 0) return ErrnoStatus(errno, "open " + path);
  if (direct_used != nullptr) *direct_used = direct;
  return fd;
}

void Disk::CloseFile(int fd) { ::close(fd); }

Status Disk::Allocate(int fd, uint64_t offset, uint64_t len) {
  int rc = ::fallocate(fd, 0, static_cast<off_t>(offset), static_cast<off_t>(len));
  if (rc != 0 && errno == EOPNOTSUPP) return Status::OK();  // space is then taken on write
  if (rc != 0) return ErrnoStatus(errno, "fallocate");
  return Status::OK();
}

Status Disk::Sync(int fd) {
  if (::fdatasync(fd) != 0) return ErrnoStatus(errno, "fdatasync");
  return Status::OK();
}

Status Disk::PunchHole(int fd, uint64_t offset, uint64_t len) {
  int rc = ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                       static_cast<off_t>(len));
  if (rc != 0 && errno != EOPNOTSUPP) return ErrnoStatus(errno, "punch hole");
  return Status::OK();
}

Status Disk::Truncate(int fd, uint64_t len) {
  if (::ftruncate(fd, static_cast<off_t>(len)) != 0) return ErrnoStatus(errno, "ftruncate");
  return Status::OK();
}

Result<uint64_t> Disk::FileSize(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, "fstat");
  return static_cast<uint64_t>(st.st_size);
}

Result<uint64_t> Disk::AllocatedBytes(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, "fstat");
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

Status Disk::RemoveFile(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, "unlink " + path);
  return Status::OK();
}

namespace {

// Collects completions for Disk::Execute.
class WaitSink final : public IoSink {
 public:
  void OnComplete(uint64_t tag, int32_t result) override {
    std::lock_guard lk(mu_);
    ready_.emplace_back(tag, result);
    cv_.notify_one();
  }
  std::vector<std::pair<uint64_t, int32_t>> Wait() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return !ready_.empty(); });
    return std::exchange(ready_, {});
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<uint64_t, int32_t>> ready_;
};

}  // namespace

void Disk::Execute(size_t count, const std::function<void(size_t, IoOp*)>& prepare,
                   const std::function<void(size_t, int32_t)>& complete) {
  WaitSink sink;
  constexpr size_t kWindow = 64;  // Submit itself bounds what is in flight to the queue depth
  size_t next = 0, in_flight = 0;
  std::vector<IoOp> ops;
  while (next < count || in_flight > 0) {
    ops.clear();
    while (next < count && in_flight + ops.size() < kWindow) {
      IoOp op;
      prepare(next, &op);
      op.sink = &sink;
      op.tag = next++;
      ops.push_back(op);
    }
    if (!ops.empty()) {
      in_flight += ops.size();
      Submit(ops);
    }
    for (auto [tag, result] : sink.Wait()) {
      --in_flight;
      complete(tag, result);
    }
  }
}

Result<std::unique_ptr<Disk>> NewDisk(IoBackend backend, uint32_t queue_depth) {
  if (backend == IoBackend::kPosix) return NewPosixDisk(queue_depth);
  auto uring = NewUringDisk(queue_depth);
  if (uring.ok() || backend == IoBackend::kIoUring) return uring;
  Log(LogLevel::kWarn, "io_uring unavailable ({}); falling back to pread/pwrite",
      uring.status().ToString());
  return NewPosixDisk(queue_depth);
}

}  // namespace shoal::engine
