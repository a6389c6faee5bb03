#include "engine/chunk_store.h"

#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>

#include "engine/buffer_pool.h"
#include "engine/store_layout.h"
#include "base/errno_status.h"
#include "base/log.h"

namespace shoal::engine {
namespace {

// Segments grow by fallocate in steps of this size: extents inside the file's size let O_DIRECT
// writes run concurrently (extending writes serialize on the inode) and turn a full disk into
// an early, clear NoSpace.
constexpr uint64_t kReserveStep = 64ull << 20;

}  // namespace

Result<std::unique_ptr<ChunkStore>> ChunkStore::Open(Disk* disk, const std::string& dir,
                                                     uint64_t segment_size, bool direct,
                                                     MetaStore* meta) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoStatus(errno, "mkdir " + dir);
  std::unique_ptr<ChunkStore> cs(new ChunkStore(disk, dir, segment_size, direct));
  SHOAL_RETURN_IF_ERROR(cs->Recover(meta));
  return cs;
}

ChunkStore::~ChunkStore() {
  // Hand back the active segment's unused reservation (a segment never written past this
  // offset again: allocation resumes in a new segment after Open).
  auto it = segments_.find(active_);
  if (it != segments_.end() && reserved_until_ > next_offset_) {
    Status s = disk_->Truncate(it->second.fd, next_offset_);
    if (!s.ok()) Log(LogLevel::kWarn, "{}: {}", SegmentPath(active_), s.ToString());
  }
  for (auto& [id, seg] : segments_) disk_->CloseFile(seg.fd);
}

std::string ChunkStore::SegmentPath(uint32_t id) const {
  return StorePath(dir_, SegmentFileName(id));
}

Status ChunkStore::Recover(MetaStore* meta) {
  // Live extents per segment, in offset order.
  std::map<uint32_t, std::vector<std::pair<uint64_t, uint32_t>>> live;
  SHOAL_RETURN_IF_ERROR(meta->ForEachExtent(
      [&](uint32_t seg, uint64_t off, uint32_t bytes) { live[seg].emplace_back(off, bytes); }));

  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) return ErrnoStatus(errno, "opendir " + dir_);
  std::vector<uint32_t> ids;
  while (dirent* e = ::readdir(d)) {
    uint32_t id = 0;
    if (ParseSegmentFileName(e->d_name, &id)) ids.push_back(id);
  }
  ::closedir(d);

  uint64_t reclaimed = 0;
  uint32_t max_id = 0;
  for (uint32_t id : ids) {
    max_id = std::max(max_id, id);
    auto it = live.find(id);
    if (it == live.end()) {  // nothing sealed in it: an interrupted write's leftovers
      SHOAL_RETURN_IF_ERROR(disk_->RemoveFile(SegmentPath(id)));
      continue;
    }
    bool direct_used = direct_;
    SHOAL_ASSIGN_OR_RETURN(int fd, disk_->OpenFile(SegmentPath(id), false, direct_, &direct_used));
    direct_ = direct_used;
    Segment seg{fd, 0};
    // What recovery returns is measured, not assumed: holes of chunks removed earlier are
    // punched again here (cheap, idempotent) but were freed long ago.
    SHOAL_ASSIGN_OR_RETURN(uint64_t allocated_before, disk_->AllocatedBytes(fd));
    uint64_t pos = 0;
    for (auto [off, bytes] : it->second) {
      if (off > pos) SHOAL_RETURN_IF_ERROR(disk_->PunchHole(fd, pos, off - pos));
      seg.live_bytes += bytes;
      pos = off + bytes;
    }
    SHOAL_ASSIGN_OR_RETURN(uint64_t size, disk_->FileSize(fd));
    if (size > pos) SHOAL_RETURN_IF_ERROR(disk_->Truncate(fd, pos));
    SHOAL_ASSIGN_OR_RETURN(uint64_t allocated_after, disk_->AllocatedBytes(fd));
    if (allocated_before > allocated_after) reclaimed += allocated_before - allocated_after;
    if (size < pos) {
      Log(LogLevel::kError, "segment {} is shorter ({} bytes) than its chunks need ({})",
          SegmentPath(id), size, pos);
    }
    segments_[id] = seg;
  }
  for (const auto& [id, extents] : live) {
    if (segments_.count(id) == 0) {
      Log(LogLevel::kError, "segment {} holding {} sealed chunks is missing", SegmentPath(id),
          extents.size());
    }
    max_id = std::max(max_id, id);
  }
  if (reclaimed > 0) {
    Log(LogLevel::kInfo, "recovery returned {} bytes of unsealed writes to the file system",
        reclaimed);
  }
  active_ = max_id;  // the next allocation starts segment max_id + 1
  next_offset_ = segment_size_;
  reserved_until_ = segment_size_;
  return Status::OK();
}

Status ChunkStore::StartSegment(uint32_t id) {
  bool direct_used = direct_;
  SHOAL_ASSIGN_OR_RETURN(int fd, disk_->OpenFile(SegmentPath(id), true, direct_, &direct_used));
  direct_ = direct_used;
  segments_[id] = Segment{fd, 0};
  active_ = id;
  next_offset_ = 0;
  reserved_until_ = 0;
  return Status::OK();
}

Status ChunkStore::Allocate(uint32_t disk_bytes, Extent* extent) {
  if (disk_bytes == 0 || disk_bytes % kBlockSize != 0 || disk_bytes > segment_size_) {
    return Status::InvalidArgument(fmt::format(
        "chunk allocation of {} bytes: not a multiple of {} in 1..segment_size", disk_bytes,
        kBlockSize));
  }
  std::lock_guard lk(mu_);
  if (next_offset_ + disk_bytes > segment_size_) {
    if (active_ == 0xFFFFFFFEu) return Status::NoSpace("segment ids exhausted");
    SHOAL_RETURN_IF_ERROR(StartSegment(active_ + 1));
  }
  Segment& seg = segments_[active_];
  uint64_t end = next_offset_ + disk_bytes;
  if (end > reserved_until_) {
    uint64_t want = std::min(segment_size_, AlignUp(end, kReserveStep));
    Status s = disk_->Allocate(seg.fd, reserved_until_, want - reserved_until_);
    if (s.IsNoSpace() && want > end) {  // try exactly what is needed
      want = end;
      s = disk_->Allocate(seg.fd, reserved_until_, want - reserved_until_);
    }
    if (!s.ok()) return s.WithContext(fmt::format("reserving space in {}", SegmentPath(active_)));
    reserved_until_ = want;
  }
  extent->segment = active_;
  extent->offset = next_offset_;
  next_offset_ = end;
  seg.live_bytes += disk_bytes;
  return Status::OK();
}

int ChunkStore::Fd(uint32_t segment) {
  std::lock_guard lk(mu_);
  auto it = segments_.find(segment);
  return it == segments_.end() ? -1 : it->second.fd;
}

Status ChunkStore::Sync(const std::set<uint32_t>& segments) {
  for (uint32_t id : segments) {
    int fd = Fd(id);
    if (fd < 0) return Status::Internal(fmt::format("sync of unknown segment {}", id));
    SHOAL_RETURN_IF_ERROR(disk_->Sync(fd).WithContext(SegmentPath(id)));
  }
  return Status::OK();
}

void ChunkStore::Free(const std::vector<Extent>& extents) {
  std::lock_guard lk(mu_);
  for (const Extent& e : extents) {
    if (e.is_hole()) continue;
    auto it = segments_.find(e.segment);
    if (it == segments_.end()) continue;
    uint64_t bytes = AlignUp(e.length, kBlockSize);
    Status s = disk_->PunchHole(it->second.fd, e.offset, bytes);
    if (!s.ok()) Log(LogLevel::kWarn, "{}: {}", SegmentPath(e.segment), s.ToString());
    it->second.live_bytes -= std::min(it->second.live_bytes, bytes);
    // The active segment is kept while allocation may still continue in it. After Open it
    // never does (allocation starts a fresh segment), nor once it is full.
    bool allocatable = e.segment == active_ && next_offset_ + kBlockSize <= segment_size_;
    if (it->second.live_bytes == 0 && !allocatable) {
      disk_->CloseFile(it->second.fd);
      s = disk_->RemoveFile(SegmentPath(e.segment));
      if (!s.ok()) Log(LogLevel::kWarn, "{}", s.ToString());
      segments_.erase(it);
    }
  }
}

size_t ChunkStore::segment_count() {
  std::lock_guard lk(mu_);
  return segments_.size();
}

}  // namespace shoal::engine
