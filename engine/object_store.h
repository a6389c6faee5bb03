// ObjectStore: the storage role of one member. Objects are staged chunk by chunk in aligned
// buffers, each full chunk checksummed (CRC32C) and written to the ChunkStore in the background
// through the Disk backend; Seal waits for the chunk writes, fsyncs the segments and commits the
// inode in the MetaStore. Reads look up the inode, keep queue_depth chunk reads in flight and
// verify every chunk before its bytes are handed out.
//
// It is a member's local store (the chunk holder's objects "c/<uid>", engine/store_layout.h)
// and implements ObjectApi (engine/object_api.h) as a world of one over its own names, which
// tests use to inject disk faults under the object API; every Engine runs a Cluster on top of
// it. Thread-safety: all methods are thread-safe.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>

#include "engine/buffer_pool.h"
#include "engine/chunk_store.h"
#include "engine/disk.h"
#include "engine/lease_table.h"
#include "engine/meta_store.h"
#include "engine/object_api.h"
#include "shoal/engine.h"

namespace shoal::engine {

class ObjectStore final : public ObjectApi {
 public:
  // Opens the store. `disk` may be null: the backend Options name is then built. Tests pass a
  // FaultDisk here.
  static Result<std::unique_ptr<ObjectStore>> Open(const Options& options,
                                                   std::unique_ptr<Disk> disk = nullptr);
  ~ObjectStore() override;

  Status Create(std::string_view path, const CreateOptions& options) override;
  Status Write(std::string_view path, uint64_t offset, std::span<const std::byte> data) override {
    return Write(path, offset, data, nullptr);
  }
  // Memory for a piece of a chunk that arrives from elsewhere (a chunk holder receives a remote
  // write into it): a buffer of the store's pool, back to the pool when the last copy of the
  // pointer goes unless Write adopted it. Null when `length` exceeds the pool's buffers.
  // ReturnToPool is the deleter of every buffer the store lends (here and LendChunkRange): a
  // pool buffer goes back to the pool (which it keeps alive), another one is freed.
  struct ReturnToPool {
    std::shared_ptr<BufferPool> pool;
    void operator()(IoBuffer* b) const;
  };
  std::shared_ptr<IoBuffer> LendWriteBuffer(size_t length);
  // Write of `data` that lies in `*adopt` (from LendWriteBuffer; may be null): when `data`
  // starts at the beginning of both the buffer and a chunk that has nothing staged, the buffer
  // becomes that chunk's staging buffer (*adopt is left empty) and the piece is not copied.
  Status Write(std::string_view path, uint64_t offset, std::span<const std::byte> data,
               IoBuffer* adopt);
  // In this store's own lease table.
  Result<Lease> TryLease(std::string_view name, uint64_t holder,
                         std::chrono::milliseconds ttl) override;
  Status ReleaseLease(std::string_view name, uint64_t holder) override;
  // Its own objects below `dir` with their sizes (a walk of the directories).
  Result<std::vector<LocalObject>> LocalObjects(std::string_view dir) override;
  Result<LocalSpace> GetLocalSpace() override;
  // PutMany of the requests that pass the checks (names, sizes, not taken): all of those
  // or none.
  Status PutBatch(std::span<PutRequest> requests, const CreateOptions& options) override;
  Status Seal(std::string_view path) override { return SealWithOrigin(path, {}); }
  // Seal, recording `origin` with the object (MetaStore::InsertObject): the world path a chunk
  // holder's local object belongs to. `also` runs in the same metadata transaction (a record of
  // another keyspace of this store's environment, MetaStore::InsertObject); when it fails the
  // object is not sealed (only Abort remains).
  Status SealWithOrigin(std::string_view path, std::string_view origin,
                        const MetaStore::TxnFn& also = {});
  // Many whole objects, each at most `chunk_size` bytes (0: the store's), created and sealed
  // together (engine/object_store_put_many.cc): their bytes written in runs, one fdatasync per
  // segment, every record in one metadata transaction with `also` — all of them or none. A name
  // taken (sealed or being written) or bad refuses the whole call. `origin` as SealWithOrigin's.
  struct WholeObject {
    std::string_view path;
    std::string_view origin;
    std::span<const std::byte> data;
  };
  Status PutMany(std::span<const WholeObject> objects, uint32_t chunk_size,
                 const MetaStore::TxnFn& also = {});
  // The chunk objects ("c/<uid>") this store holds: names below "c", a page at a time
  // (MetaStore::ListChunkObjects; they have no directory entries).
  Result<ListPage> ListChunkObjects(std::string_view start_after, uint32_t limit) {
    return meta_->ListChunkObjects(start_after, limit);
  }
  Result<std::string> OriginOf(std::string_view path) { return meta_->GetOrigin(path); }
  Status Abort(std::string_view path) override;
  Status ReadBatch(std::span<ReadRequest> requests) override;
  // One range inside one written chunk of a sealed object, read (and its chunk's CRC32C
  // checked) into a buffer of the store's pool that is lent to the caller: a chunk holder's
  // reply sends from it without a copy (engine/object_store_lend.cc). `data` is the range (cut
  // at the object's end). `crc` is the range's CRC32C when it is
  // the whole chunk (the stored one, just checked). The buffer returns to the pool when the
  // last copy of `keep` goes (the pool outlives the store if it must). nullopt when the range
  // is not one this can lend (inline, a hole, across chunks, past the end, a missing segment)
  // or the read failed: ReadBatch then reads it, with its errors.
  struct LentRange {
    std::shared_ptr<const void> keep;
    std::span<std::byte> data;
    std::optional<uint32_t> crc;
  };
  std::optional<LentRange> LendChunkRange(std::string_view path, uint64_t offset, uint32_t len);
  Result<ObjectInfo> Stat(std::string_view path) override;
  Result<ListPage> List(std::string_view dir, const ListOptions& options) override;
  Status Remove(std::string_view path) override;
  Result<std::vector<std::vector<uint32_t>>> Locate(std::string_view path) override;
  // One copy of everything: nothing to repair; checks `dir` can be listed.
  Result<RepairReport> Repair(std::string_view dir) override;
  Result<RepairReport> WaitForRepair(std::chrono::milliseconds) override { return RepairReport{}; }
  uint32_t rank() const override { return 0; }
  uint32_t world_size() const override { return 1; }
  Status Barrier() override { return Status::OK(); }
  Result<std::vector<std::vector<std::byte>>> AllGather(std::span<const std::byte> mine) override {
    return std::vector<std::vector<std::byte>>{{mine.begin(), mine.end()}};
  }

  std::string_view io_backend() const override { return disk_->name(); }
  bool direct_io() const { return chunks_->direct_io(); }
  const std::string& member_id() const { return meta_->member_id(); }
  // The store's metadata environment (its local keyspace): the world's shard keyspace is opened
  // in it (MetaStore::OpenKeyspace).
  MetaStore& meta() { return *meta_; }
  Disk* disk() { return disk_.get(); }

 private:
  struct OpenObject;
  ObjectStore() = default;
  Status Init(const Options& options, std::unique_ptr<Disk> disk);
  // A store without a FORMAT file (format 1): adopted when its layout is the world's, else
  // refused (engine/store_layout.h); then stamped with the current format.
  Status AdoptOlderFormat(const std::string& dir, bool existed);
  // The object being written under `path`; InvalidArgument for a bad name, FailedPrecondition
  // when nothing is being written there.
  Result<std::shared_ptr<OpenObject>> FindOpen(std::string_view path);
  // Writes one staged chunk (ownership of `buf` passes on). Called without obj->mu held.
  void Flush(OpenObject* obj, uint64_t index, IoBuffer buf, uint32_t length);
  IoBuffer AcquireBuffer(uint32_t chunk_size);
  void ReleaseBuffer(IoBuffer buf);
  // Waits for the object's writes, drops it from the open table and frees its chunks.
  void Discard(const std::shared_ptr<OpenObject>& obj);

  Options options_;
  int lock_fd_ = -1;
  std::unique_ptr<Disk> disk_;
  std::unique_ptr<MetaStore> meta_;
  std::unique_ptr<ChunkStore> chunks_;
  std::shared_ptr<BufferPool> pool_;  // shared: a lent buffer (LendChunkRange) keeps it
  LeaseTable leases_;

  std::mutex open_mu_;
  std::map<std::string, std::shared_ptr<OpenObject>, std::less<>> open_;

  // Shared by running reads, exclusive while removed chunks are punched out.
  std::shared_mutex reclaim_mu_;
};

}  // namespace shoal::engine
