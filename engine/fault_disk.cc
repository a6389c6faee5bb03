#include "engine/fault_disk.h"

#include <cerrno>
#include <vector>

#include "base/errno_status.h"

namespace shoal::engine {

bool FaultDisk::TakeSpace(uint64_t bytes) {
  uint64_t left = space_left_.load();
  while (true) {
    if (left == UINT64_MAX) return true;
    if (left < bytes) return false;
    if (space_left_.compare_exchange_weak(left, left - bytes)) return true;
  }
}

Status FaultDisk::Allocate(int fd, uint64_t offset, uint64_t len) {
  // Reserving does not consume the budget (writes do), but a reservation larger than what is
  // left fails as fallocate would on a full file system.
  uint64_t left = space_left_.load();
  if (left != UINT64_MAX && left < len) return ErrnoStatus(ENOSPC, "fallocate (injected)");
  return inner_->Allocate(fd, offset, len);
}

Status FaultDisk::Sync(int fd) {
  if (fail_sync_.load()) return ErrnoStatus(EIO, "fdatasync (injected)");
  return inner_->Sync(fd);
}

void FaultDisk::Submit(std::span<const IoOp> ops) {
  std::vector<IoOp> pass;
  pass.reserve(ops.size());
  for (const IoOp& op : ops) {
    int err = 0;
    if (op.kind == IoOp::Kind::kRead) {
      reads_.fetch_add(1);
      bytes_read_.fetch_add(op.len);
      if (fail_reads_.load()) err = EIO;
    }
    if (op.kind == IoOp::Kind::kWrite) {
      if (fail_writes_.load()) err = EIO;
      else if (!TakeSpace(op.len)) err = ENOSPC;
    }
    if (err != 0) {
      op.sink->OnComplete(op.tag, -err);
    } else {
      pass.push_back(op);
    }
  }
  if (!pass.empty()) inner_->Submit(pass);
}

}  // namespace shoal::engine
