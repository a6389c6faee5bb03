// The buffers an ObjectStore lends: LendChunkRange, a chunk range read into a pool buffer that
// the caller keeps (a chunk holder's reply is sent from it: no reply vector to zero-fill and
// copy into, and no second CRC32C pass when the range is the whole chunk; any case off this
// path returns nullopt and ReadBatch reads the range the general way, with its errors), and
// LendWriteBuffer, a pool buffer a remote write is received into (Write may adopt it).
#include <fmt/format.h>

#include "base/crc32c.h"
#include "engine/block_sums.h"
#include "engine/object_rules.h"
#include "engine/object_store.h"
#include "engine/path.h"

namespace shoal::engine {

void ObjectStore::ReturnToPool::operator()(IoBuffer* b) const {
  if (!b->empty()) {
    if (b->size == pool->buffer_size()) pool->Release(*b);
    else BufferPool::FreeRaw(*b);
  }
  delete b;
}

std::shared_ptr<IoBuffer> ObjectStore::LendWriteBuffer(size_t length) {
  if (length > pool_->buffer_size()) return nullptr;
  return std::shared_ptr<IoBuffer>(new IoBuffer(pool_->Acquire()), ReturnToPool{pool_});
}

std::optional<ObjectStore::LentRange> ObjectStore::LendChunkRange(std::string_view path,
                                                                  uint64_t offset,
                                                                  uint32_t len) {
  if (len == 0 || !ValidateObjectPath(path).ok()) return std::nullopt;
  std::shared_lock reclaim(reclaim_mu_);  // the segment stays while it is read
  auto inode = meta_->GetInode(path);
  if (!inode.ok() || inode->is_inline || offset >= inode->size) return std::nullopt;
  const uint64_t cs = inode->chunk_size;
  if (cs == 0) return std::nullopt;
  const uint64_t index = offset / cs;
  const uint64_t in = offset - index * cs;
  const uint64_t n = std::min<uint64_t>(len, inode->size - offset);
  if (index >= inode->chunks.size() || in + n > cs) return std::nullopt;
  const Extent e = inode->chunks[index];
  if (e.is_hole() || in + n > e.length) return std::nullopt;
  const int fd = chunks_->Fd(e.segment);
  if (fd < 0) return std::nullopt;

  // A small part of the chunk: only its blocks, checked against their block sums, when the
  // chunk has them (engine/block_sums.h); else the whole chunk against its CRC.
  BlockSpan span{0, static_cast<uint32_t>(AlignUp(e.length, kBlockSize))};
  std::vector<uint32_t> sums;
  if (ReadByBlocks(n, e.length)) {
    const std::pair<uint32_t, uint64_t> key(e.segment, e.offset);
    sums = std::move(meta_->GetBlockSums({&key, 1})[0]);
    if (sums.size() == SumBlocks(e.length)) {
      span = CoverBlocks(static_cast<uint32_t>(in), static_cast<uint32_t>(n), e.length);
    } else {
      sums.clear();
    }
  }
  const uint32_t disk_len = span.end - span.begin;
  IoBuffer buf = AcquireBuffer(disk_len);
  std::byte* const at = buf.data;
  int32_t result = -1;
  disk_->Execute(
      1,
      [&](size_t, IoOp* op) {
        *op = IoOp{IoOp::Kind::kRead, fd,      e.offset + span.begin, at, disk_len,
                   buf.registered_index, nullptr, 0};
      },
      [&](size_t, int32_t r) { result = r; });
  const uint32_t want = std::min(e.length, span.end) - span.begin;
  const bool good = result >= 0 && static_cast<uint64_t>(result) >= want &&
                    (sums.empty() ? Crc32c(at, e.length) == e.crc
                                  : !FirstBadBlock(at, span, e.length, sums).has_value());
  if (!good) {
    ReleaseBuffer(buf);  // ReadBatch reads it again and says what is wrong
    return std::nullopt;
  }
  // The buffer goes back to the pool (or is freed) with the last copy of `keep`, whenever that
  // is: the pool is shared with it.
  LentRange out;
  out.keep = std::shared_ptr<IoBuffer>(new IoBuffer(buf), ReturnToPool{pool_});
  out.data = std::span<std::byte>(at + (in - span.begin), n);
  if (in == 0 && n == e.length) out.crc = e.crc;
  return out;
}

}  // namespace shoal::engine
