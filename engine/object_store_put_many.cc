// ObjectStore::PutMany: many small whole objects made durable together (Engine::PutBatch; a
// chunk holder's part of a batch). The objects' bytes are packed into runs of consecutive
// extents, each run one write from one pool buffer; then one fdatasync per segment touched and
// one metadata transaction for every record. Per object that leaves a copy, a checksum and its
// records: no fsync, no commit, no I/O of its own.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <vector>

#include "base/crc32c.h"
#include "base/errno_status.h"
#include "engine/block_sums.h"
#include "engine/object_rules.h"
#include "engine/object_store.h"
#include "engine/path.h"

namespace shoal::engine {

namespace {

// Consecutive extents of one segment, written from one buffer.
struct Run {
  uint32_t segment = 0;
  uint64_t offset = 0;
  uint32_t length = 0;  // disk bytes filled so far
  IoBuffer buf;
};

}  // namespace

Status ObjectStore::PutMany(std::span<const WholeObject> objects, uint32_t chunk_size,
                            const MetaStore::TxnFn& also) {
  const uint32_t cs = chunk_size == 0 ? options_.chunk_size : chunk_size;
  if (!IsValidChunkSize(cs)) {
    return Status::InvalidArgument(
        fmt::format("chunk size {} is not a power of two in 64 KiB..1 GiB", cs));
  }
  {
    std::lock_guard lk(open_mu_);
    for (const WholeObject& o : objects) {
      SHOAL_RETURN_IF_ERROR(CheckBatchObject(o.path, o.data.size(), cs));
      if (open_.count(o.path) != 0) {
        return Status::AlreadyExists(fmt::format("object \"{}\" is being written", o.path));
      }
    }
  }

  std::vector<Inode> inodes(objects.size());
  std::vector<Extent> allocated;  // freed when the batch fails
  std::vector<Run> runs;          // filled, not yet written
  std::set<uint32_t> segments;
  const size_t run_bytes = pool_->buffer_size();
  const size_t wave = std::max<size_t>(1, std::min<size_t>(options_.queue_depth, 8));
  Status failed;

  auto write_runs = [&] {
    if (failed.ok() && !runs.empty()) {
      disk_->Execute(
          runs.size(),
          [&](size_t i, IoOp* op) {
            const Run& r = runs[i];
            *op = IoOp{IoOp::Kind::kWrite, chunks_->Fd(r.segment), r.offset, r.buf.data, r.length,
                       r.buf.registered_index, nullptr, 0};
          },
          [&](size_t i, int32_t result) {
            if (result == static_cast<int32_t>(runs[i].length)) return;
            if (!failed.ok()) return;
            failed = result < 0 ? ErrnoStatus(-result, fmt::format("writing segment {}", runs[i].segment))
                                : Status::IOError(fmt::format("short write of segment {}: {} of {} bytes",
                                                              runs[i].segment, result, runs[i].length));
          });
    }
    for (Run& r : runs) ReleaseBuffer(r.buf);
    runs.clear();
  };

  for (size_t i = 0; i < objects.size() && failed.ok(); ++i) {
    const WholeObject& o = objects[i];
    Inode& inode = inodes[i];
    inode.size = o.data.size();
    inode.chunk_size = cs;
    if (inode.size <= options_.inline_threshold) {
      inode.is_inline = true;
      inode.inline_data.assign(reinterpret_cast<const char*>(o.data.data()), o.data.size());
      inode.inline_crc = Crc32c(inode.inline_data.data(), inode.size);
      continue;
    }
    const uint32_t length = static_cast<uint32_t>(inode.size);
    const uint32_t disk_len = static_cast<uint32_t>(AlignUp(length, kBlockSize));
    Extent e;
    e.length = length;
    failed = chunks_->Allocate(disk_len, &e);
    if (!failed.ok()) break;
    allocated.push_back(e);
    segments.insert(e.segment);
    if (runs.empty() || runs.back().segment != e.segment ||
        runs.back().offset + runs.back().length != e.offset ||
        runs.back().length + disk_len > runs.back().buf.size) {
      if (runs.size() == wave) write_runs();
      if (!failed.ok()) break;
      runs.push_back(Run{e.segment, e.offset, 0, AcquireBuffer(std::max<size_t>(run_bytes, disk_len))});
    }
    Run& r = runs.back();
    std::byte* at = r.buf.data + r.length;
    std::memcpy(at, o.data.data(), length);
    std::memset(at + length, 0, disk_len - length);
    r.length += disk_len;
    inode.block_sums.resize(1);
    e.crc = ComputeBlockSums(at, length, &inode.block_sums[0]);
    inode.chunks = {e};
  }
  write_runs();
  if (failed.ok()) failed = chunks_->Sync(segments);
  if (failed.ok()) {
    const int64_t now = SealTimeNs();
    std::vector<MetaStore::NewObject> records;
    records.reserve(objects.size());
    for (size_t i = 0; i < objects.size(); ++i) {
      inodes[i].seal_time_ns = now;
      records.push_back({objects[i].path, &inodes[i], objects[i].origin});
    }
    failed = meta_->InsertObjects(records, also);
  }
  if (!failed.ok()) chunks_->Free(allocated);
  return failed;
}

Status ObjectStore::PutBatch(std::span<PutRequest> requests, const CreateOptions& options) {
  const uint32_t cs = options.chunk_size == 0 ? options_.chunk_size : options.chunk_size;
  std::vector<WholeObject> objects;
  std::vector<PutRequest*> taken;
  std::set<std::string_view> seen;
  for (PutRequest& r : requests) {
    r.status = CheckBatchObject(r.path, r.data.size(), cs);
    if (r.status.ok() && !seen.insert(r.path).second) {
      r.status = Status::AlreadyExists(fmt::format("\"{}\" comes twice in the batch", r.path));
    }
    if (r.status.ok()) r.status = meta_->CheckCreatable(r.path);
    if (!r.status.ok()) continue;
    objects.push_back({r.path, {}, r.data});
    taken.push_back(&r);
  }
  if (objects.empty()) return Status::OK();
  Status s = PutMany(objects, cs);
  for (PutRequest* r : taken) r->status = s;
  return Status::OK();
}

}  // namespace shoal::engine
