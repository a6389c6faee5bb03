// ObjectStore: the storage role of one member. Objects are staged chunk by chunk in aligned
// buffers, each full chunk checksummed (CRC32C) and written to the ChunkStore in the background
// through the Disk backend; Seal waits for the chunk writes, fsyncs the segments and commits the
// inode in the MetaStore. Reads look up the inode, keep queue_depth chunk reads in flight and
// verify every chunk before its bytes are handed out.
//
// This is the implementation behind shoal::Engine (see include/shoal/engine.h for the contract
// of each operation). Thread-safety: all methods are thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>

#include "engine/buffer_pool.h"
#include "engine/chunk_store.h"
#include "engine/disk.h"
#include "engine/meta_store.h"
#include "shoal/engine.h"

namespace shoal::engine {

class ObjectStore {
 public:
  // Opens the store. `disk` may be null: the backend Options name is then built. Tests pass a
  // FaultDisk here.
  static Result<std::unique_ptr<ObjectStore>> Open(const Options& options,
                                                   std::unique_ptr<Disk> disk = nullptr);
  ~ObjectStore();

  Status Create(std::string_view path, const CreateOptions& options);
  Status Write(std::string_view path, uint64_t offset, std::span<const std::byte> data);
  Status Seal(std::string_view path);
  Status Abort(std::string_view path);
  Status ReadBatch(std::span<ReadRequest> requests);
  Result<ObjectInfo> Stat(std::string_view path);
  Result<ListPage> List(std::string_view dir, const ListOptions& options);
  Status Remove(std::string_view path);
  Result<std::vector<std::vector<uint32_t>>> Locate(std::string_view path);

  std::string_view io_backend() const { return disk_->name(); }
  bool direct_io() const { return chunks_->direct_io(); }
  const std::string& member_id() const { return meta_->member_id(); }
  Disk* disk() { return disk_.get(); }

 private:
  struct OpenObject;
  ObjectStore() = default;
  Status Init(const Options& options, std::unique_ptr<Disk> disk);
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
  std::unique_ptr<BufferPool> pool_;

  std::mutex open_mu_;
  std::map<std::string, std::shared_ptr<OpenObject>, std::less<>> open_;

  // Shared by running reads, exclusive while removed chunks are punched out.
  std::shared_mutex reclaim_mu_;
};

}  // namespace shoal::engine
