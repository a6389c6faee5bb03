#include "benchmarks/raw_disk.h"

#include <fcntl.h>
#include <liburing.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>

#include "benchmarks/progress.h"
#include "base/errno_status.h"

namespace shoal::bench {
void StampBlocks(void* p, size_t n, uint64_t stamp) {
  for (size_t off = 0; off + 8 <= n; off += 4096) {
    uint64_t v = stamp * 0x9E3779B97F4A7C15ull + off;
    std::memcpy(static_cast<char*>(p) + off, &v, 8);
  }
}

namespace {



// Keeps `depth` I/Os of `block` bytes in flight until `count` were done; offset_of(i) gives the
// i-th offset.
Result<RawResult> Run(int fd, bool write, uint64_t count, uint32_t block, uint32_t depth,
                      const std::function<uint64_t(uint64_t)>& offset_of, Progress* progress) {
  io_uring ring{};
  int rc = io_uring_queue_init(depth, &ring, 0);
  if (rc < 0) return ErrnoStatus(-rc, "io_uring_queue_init");
  std::vector<iovec> bufs(depth);
  for (auto& b : bufs) {
    void* p = nullptr;
    if (posix_memalign(&p, 4096, block) != 0) return Status::NoSpace("out of memory");
    // Random contents (see FillRandom in shoal_bench.cc): no zero or repeated blocks.
    std::mt19937_64 rng(reinterpret_cast<uintptr_t>(p));
    for (size_t i = 0; i + 8 <= block; i += 8) {
      uint64_t x = rng();
      std::memcpy(static_cast<char*>(p) + i, &x, 8);
    }
    b = iovec{p, block};
  }
  bool fixed = io_uring_register_buffers(&ring, bufs.data(), depth) == 0;
  std::vector<uint32_t> free_bufs;
  for (uint32_t i = 0; i < depth; ++i) free_bufs.push_back(i);

  Status status;
  uint64_t next = 0, done = 0, in_flight = 0;
  auto start = std::chrono::steady_clock::now();
  while (done < count && status.ok()) {
    while (next < count && !free_bufs.empty()) {
      uint32_t b = free_bufs.back();
      free_bufs.pop_back();
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      uint64_t off = offset_of(next);
      if (write) {
        StampBlocks(bufs[b].iov_base, block, next + 1);
        if (fixed) io_uring_prep_write_fixed(sqe, fd, bufs[b].iov_base, block, off, b);
        else io_uring_prep_write(sqe, fd, bufs[b].iov_base, block, off);
      } else {
        if (fixed) io_uring_prep_read_fixed(sqe, fd, bufs[b].iov_base, block, off, b);
        else io_uring_prep_read(sqe, fd, bufs[b].iov_base, block, off);
      }
      io_uring_sqe_set_data64(sqe, b);
      ++next;
      ++in_flight;
    }
    rc = io_uring_submit_and_wait(&ring, 1);
    if (rc < 0 && rc != -EINTR) {
      status = ErrnoStatus(-rc, "io_uring_submit");
      break;
    }
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(&ring, &cqe) == 0) {
      if (cqe->res != static_cast<int>(block) && status.ok()) {
        status = cqe->res < 0 ? ErrnoStatus(-cqe->res, "raw I/O")
                              : Status::IOError("raw I/O: short transfer");
      }
      free_bufs.push_back(static_cast<uint32_t>(io_uring_cqe_get_data64(cqe)));
      io_uring_cqe_seen(&ring, cqe);
      --in_flight;
      ++done;
      if (progress != nullptr) progress->Add(block);
    }
  }
  while (in_flight > 0) {  // drain after an error
    io_uring_cqe* cqe = nullptr;
    if (io_uring_wait_cqe(&ring, &cqe) != 0) break;
    io_uring_cqe_seen(&ring, cqe);
    --in_flight;
  }
  if (status.ok() && write && ::fdatasync(fd) != 0) status = ErrnoStatus(errno, "fdatasync");
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  io_uring_queue_exit(&ring);
  for (auto& b : bufs) std::free(b.iov_base);
  if (!status.ok()) return status;
  return RawResult{secs, count * block, count};
}

Result<int> OpenDirect(const std::string& path, bool create) {
  int fd = ::open(path.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0),
                  0600);
  if (fd < 0) return ErrnoStatus(errno, "open " + path);
  return fd;
}

}  // namespace

Result<RawResult> RawSequentialWrite(const std::string& path, uint64_t size, uint32_t block,
                                     uint32_t depth, Progress* progress) {
  SHOAL_ASSIGN_OR_RETURN(int fd, OpenDirect(path, true));
  // Reserve the file first, as the engine reserves its segments: O_DIRECT writes inside the
  // file size run concurrently, extending ones serialize on the inode.
  if (::fallocate(fd, 0, 0, static_cast<off_t>(size)) != 0) {
    Status s = ErrnoStatus(errno, "fallocate " + path);
    ::close(fd);
    return s;
  }
  auto r = Run(fd, true, size / block, block, depth, [&](uint64_t i) { return i * block; },
               progress);
  ::close(fd);
  return r;
}

Result<RawResult> RawSequentialRead(const std::string& path, uint64_t size, uint32_t block,
                                    uint32_t depth, Progress* progress) {
  SHOAL_ASSIGN_OR_RETURN(int fd, OpenDirect(path, false));
  auto r = Run(fd, false, size / block, block, depth, [&](uint64_t i) { return i * block; },
               progress);
  ::close(fd);
  return r;
}

Result<RawResult> RawRandomRead(const std::string& path, const std::vector<uint64_t>& offsets,
                                uint32_t block, uint32_t depth) {
  SHOAL_ASSIGN_OR_RETURN(int fd, OpenDirect(path, false));
  auto r = Run(fd, false, offsets.size(), block, depth, [&](uint64_t i) { return offsets[i]; },
               nullptr);
  ::close(fd);
  return r;
}

namespace {

double Mbps(const RawResult& r) { return r.seconds > 0 ? static_cast<double>(r.bytes) / 1e6 / r.seconds : 0; }

std::vector<RawShape> FastestFirst(std::vector<RawShape> v) {
  std::sort(v.begin(), v.end(), [](const RawShape& a, const RawShape& b) { return a.mbps > b.mbps; });
  return v;
}

}  // namespace

RawCandidates SequentialCandidates(uint32_t chunk_size, uint32_t engine_depth) {
  RawCandidates c;
  for (uint32_t b : {1u << 20, 4u << 20, chunk_size}) {
    if (b != 0 && chunk_size % b == 0 && std::find(c.blocks.begin(), c.blocks.end(), b) == c.blocks.end()) {
      c.blocks.push_back(b);
    }
  }
  c.depths = {4, 16, 32};
  if (std::find(c.depths.begin(), c.depths.end(), engine_depth) == c.depths.end()) {
    c.depths.push_back(engine_depth);
  }
  return c;
}

Result<std::vector<RawShape>> SweepRawShapes(const std::string& path, bool write, uint64_t bytes,
                                             const std::vector<uint32_t>& blocks,
                                             const std::vector<uint32_t>& depths) {
  std::vector<RawShape> out;
  for (uint32_t block : blocks) {
    if (block == 0 || bytes % block != 0) continue;
    for (uint32_t depth : depths) {
      SHOAL_ASSIGN_OR_RETURN(RawResult r, write ? RawSequentialWrite(path, bytes, block, depth, nullptr)
                                                : RawSequentialRead(path, bytes, block, depth, nullptr));
      out.push_back(RawShape{block, depth, Mbps(r)});
    }
  }
  if (out.empty()) return Status::InvalidArgument("no block size divides the probe's size");
  return FastestFirst(std::move(out));
}

Result<std::vector<RawShape>> SweepRawRandomDepths(const std::string& path,
                                                   const std::vector<uint64_t>& offsets,
                                                   uint32_t block,
                                                   const std::vector<uint32_t>& depths) {
  std::vector<RawShape> out;
  for (uint32_t depth : depths) {
    SHOAL_ASSIGN_OR_RETURN(RawResult r, RawRandomRead(path, offsets, block, depth));
    out.push_back(RawShape{block, depth, Mbps(r)});
  }
  if (out.empty()) return Status::InvalidArgument("no queue depth to sweep");
  return FastestFirst(std::move(out));
}

}  // namespace shoal::bench
