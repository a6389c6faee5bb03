// ChunkStore: where chunk bytes live on the member's disk.
//
// Chunks are appended to segment files (<store>/chunks/seg-NNNNNNNN.dat), each chunk at a
// 4 KiB-aligned offset and taking AlignUp(length, 4 KiB) bytes. A small object therefore costs
// its size rounded to one block, never a whole chunk; a segment never holds more than
// segment_size bytes. Space of removed chunks is returned at once with a hole punch; a segment
// left without live chunks is deleted. Offsets are never reused within a segment, so a reader
// holding an old extent can never read another object's bytes (it reads a hole and fails the
// checksum, and the engine keeps removals from punching under running reads anyway).
//
// Crash recovery (Open): the metadata's extent table is the truth. Bytes of segments outside a
// committed extent belong to objects that never sealed: they are punched out and files are
// truncated after their last live extent; segments without live extents are deleted.
// Allocation always continues in a fresh segment after Open.
//
// Thread-safety: all methods are thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "engine/disk.h"
#include "engine/inode.h"
#include "engine/meta_store.h"

namespace shoal::engine {

class ChunkStore {
 public:
  static Result<std::unique_ptr<ChunkStore>> Open(Disk* disk, const std::string& dir,
                                                  uint64_t segment_size, bool direct,
                                                  MetaStore* meta);
  ~ChunkStore();

  // Reserves `disk_bytes` (a multiple of 4 KiB, 4 KiB .. segment_size) and returns the extent's
  // segment and offset. NoSpace when the file system is full; InvalidArgument for another size.
  Status Allocate(uint32_t disk_bytes, Extent* extent);

  // File descriptor of a segment, or -1 if the segment does not exist (data lost).
  int Fd(uint32_t segment);

  // fdatasync of the given segments.
  Status Sync(const std::set<uint32_t>& segments);

  // Returns extents' space to the file system. Errors are logged, not returned: a failed punch
  // only leaks space until the next Open's recovery.
  void Free(const std::vector<Extent>& extents);

  bool direct_io() const { return direct_; }
  size_t segment_count();

 private:
  struct Segment {
    int fd = -1;
    uint64_t live_bytes = 0;
  };
  ChunkStore(Disk* disk, std::string dir, uint64_t segment_size, bool direct)
      : disk_(disk), dir_(std::move(dir)), segment_size_(segment_size), direct_(direct) {}
  Status Recover(MetaStore* meta);
  std::string SegmentPath(uint32_t id) const;
  Status StartSegment(uint32_t id);

  Disk* const disk_;
  const std::string dir_;
  const uint64_t segment_size_;
  bool direct_;

  std::mutex mu_;
  std::map<uint32_t, Segment> segments_;
  uint32_t active_ = 0;  // 0: none yet
  uint64_t next_offset_ = 0;
  uint64_t reserved_until_ = 0;
};

}  // namespace shoal::engine
