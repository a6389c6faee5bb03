// FaultDisk: a Disk that forwards to another and injects failures, for tests of disk full and
// I/O errors. Faults are switched on and off at run time from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "engine/disk.h"

namespace shoal::engine {

class FaultDisk final : public Disk {
 public:
  explicit FaultDisk(std::unique_ptr<Disk> inner) : inner_(std::move(inner)) {}

  // Writes and fallocate succeed until this many more bytes were written/reserved, then fail
  // with ENOSPC (a full disk). UINT64_MAX (default) = unlimited.
  void SetSpaceLeft(uint64_t bytes) { space_left_.store(bytes); }
  // Every read fails with EIO while set.
  void SetFailReads(bool fail) { fail_reads_.store(fail); }
  // Every write fails with EIO while set.
  void SetFailWrites(bool fail) { fail_writes_.store(fail); }
  // fdatasync fails with EIO while set.
  void SetFailSync(bool fail) { fail_sync_.store(fail); }
  // Read operations submitted so far (to check how often the engine goes to the disk).
  uint64_t reads() const { return reads_.load(); }
  // Bytes those reads asked for (to check how much of a chunk a small read reads).
  uint64_t bytes_read() const { return bytes_read_.load(); }

  std::string_view name() const override { return inner_->name(); }
  Result<int> OpenFile(const std::string& path, bool create, bool direct,
                       bool* direct_used) override {
    return inner_->OpenFile(path, create, direct, direct_used);
  }
  void CloseFile(int fd) override { inner_->CloseFile(fd); }
  Status Allocate(int fd, uint64_t offset, uint64_t len) override;
  Status Sync(int fd) override;
  Status PunchHole(int fd, uint64_t offset, uint64_t len) override {
    return inner_->PunchHole(fd, offset, len);
  }
  Status Truncate(int fd, uint64_t len) override { return inner_->Truncate(fd, len); }
  Result<uint64_t> FileSize(int fd) override { return inner_->FileSize(fd); }
  Result<uint64_t> AllocatedBytes(int fd) override { return inner_->AllocatedBytes(fd); }
  Status RemoveFile(const std::string& path) override { return inner_->RemoveFile(path); }
  bool RegisterBuffers(std::span<const iovec> buffers) override {
    return inner_->RegisterBuffers(buffers);
  }
  void Submit(std::span<const IoOp> ops) override;

 private:
  bool TakeSpace(uint64_t bytes);

  std::unique_ptr<Disk> inner_;
  std::atomic<uint64_t> space_left_{UINT64_MAX};
  std::atomic<bool> fail_reads_{false};
  std::atomic<bool> fail_writes_{false};
  std::atomic<bool> fail_sync_{false};
  std::atomic<uint64_t> reads_{0};
  std::atomic<uint64_t> bytes_read_{0};
};

}  // namespace shoal::engine
