#include "engine/object_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <vector>

#include "base/crc32c.h"
#include "base/errno_status.h"
#include "base/fork_closed_fds.h"
#include "engine/block_sums.h"
#include "engine/interval_set.h"
#include "engine/object_rules.h"
#include "base/log.h"
#include "engine/path.h"
#include "engine/store_layout.h"

namespace shoal::engine {

// One object between Create and Seal/Abort. Its mutex guards everything below it; completions
// of its chunk writes arrive through OnComplete on the disk backend's thread.
struct ObjectStore::OpenObject final : IoSink {
  struct Staged {
    IoBuffer buf;
    IntervalSet written;
    uint32_t copying = 0;  // writers copying into buf without the lock
  };

  ObjectStore* store = nullptr;
  std::string path;
  uint32_t chunk_size = 0;
  uint64_t declared_size = kUnknownSize;
  bool keep_for_inline = false;  // small declared size: never flush, seal stores it inline

  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, Staged> staged;        // chunks being filled
  std::map<uint64_t, Extent> placed;        // chunks written or being written
  std::map<uint64_t, IoBuffer> in_flight;   // buffers of chunk writes not yet complete
  std::map<uint64_t, std::vector<uint32_t>> sums;  // block sums of the placed chunks
  std::set<uint32_t> segments;
  uint64_t end = 0;         // furthest byte written
  uint32_t copying = 0;     // total of Staged::copying
  uint32_t flushing = 0;    // chunks handed to Flush but not yet in in_flight
  Status error;             // first failure of a background write: the object cannot seal
  bool closing = false;     // Seal or Abort in progress

  // The bytes chunk `index` holds when complete: the chunk size, or less for the last chunk of
  // an object whose size was declared.
  uint32_t FullLength(uint64_t index) const {
    if (declared_size == kUnknownSize) return chunk_size;
    uint64_t start = index * chunk_size;
    return static_cast<uint32_t>(std::min<uint64_t>(chunk_size, declared_size - start));
  }

  void OnComplete(uint64_t index, int32_t result) override {
    IoBuffer buf;
    ObjectStore* s = store;
    {
      std::lock_guard lk(mu);
      auto it = in_flight.find(index);
      buf = it->second;
      in_flight.erase(it);
      const Extent& e = placed[index];
      int64_t want = static_cast<int64_t>(AlignUp(e.length, kBlockSize));
      if (result != want && error.ok()) {
        std::string what = fmt::format("writing chunk {} of \"{}\"", index, path);
        error = result < 0 ? ErrnoStatus(-result, what)
                           : Status::IOError(fmt::format("{}: short write ({} of {} bytes)", what,
                                                         result, want));
      }
      cv.notify_all();  // under the lock: a waiter may free this object right after
    }
    s->ReleaseBuffer(buf);
  }
};

Result<std::unique_ptr<ObjectStore>> ObjectStore::Open(const Options& options,
                                                       std::unique_ptr<Disk> disk) {
  std::unique_ptr<ObjectStore> s(new ObjectStore());
  SHOAL_RETURN_IF_ERROR(s->Init(options, std::move(disk)));
  return s;
}

Status ObjectStore::Init(const Options& options, std::unique_ptr<Disk> disk) {
  SHOAL_RETURN_IF_ERROR(ValidateOptions(options));
  options_ = options;
  const std::string& dir = options.store_dir;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return ErrnoStatus(errno, "stat " + dir);
    if (!options.create_if_missing) {
      return Status::NotFound(fmt::format("store directory {} does not exist", dir));
    }
    std::error_code ec;
    const std::filesystem::path parent = std::filesystem::path(dir).parent_path();
    if (!parent.empty() && !std::filesystem::create_directories(parent, ec) && ec) {
      return ErrnoStatus(ec.value(), "creating the parents of " + dir);
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoStatus(errno, "mkdir " + dir);
  } else if (!S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument(fmt::format("store path {} is not a directory", dir));
  }
  const std::string meta_dir = StorePath(dir, kMetaDir);
  const bool existed = ::access(StorePath(meta_dir, kLmdbDataFile).c_str(), F_OK) == 0;
  if (!options.create_if_missing && !existed) {
    return Status::NotFound(fmt::format("no shoal store in {}", dir));
  }
  SHOAL_ASSIGN_OR_RETURN(uint32_t format, ReadStoreFormat(dir));
  if (format > kStoreFormat) {
    return Status::FailedPrecondition(fmt::format(
        "store {} has format {}, newer than this shoal's {}: open it with a newer shoal", dir,
        format, kStoreFormat));
  }

  // One engine per store: an advisory lock held for the engine's lifetime (released by the
  // kernel if the process dies, so a crash never leaves the store locked). A forked child
  // closes its copy (base/fork_closed_fds.h): the lock is the open file's, and a DataLoader
  // worker must not hold the store against the parent's next Open.
  std::string lock_path = StorePath(dir, kLockFile);
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) return ErrnoStatus(errno, "open " + lock_path);
  CloseInForkedChildren(lock_fd_);
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err == EWOULDBLOCK) {
      return Status::PermissionDenied(
          fmt::format("store {} is in use by another engine (lock {})", dir, lock_path));
    }
    return ErrnoStatus(err, "flock " + lock_path);
  }

  if (disk == nullptr) {
    SHOAL_ASSIGN_OR_RETURN(disk, NewDisk(options.io_backend, options.queue_depth));
  }
  disk_ = std::move(disk);
  SHOAL_ASSIGN_OR_RETURN(meta_, MetaStore::Open(meta_dir, options.metadata_map_size));
  if (format < kStoreFormat) SHOAL_RETURN_IF_ERROR(AdoptOlderFormat(dir, existed));
  SHOAL_ASSIGN_OR_RETURN(chunks_, ChunkStore::Open(disk_.get(), StorePath(dir, kChunksDir),
                                                   options.segment_size, options.direct_io,
                                                   meta_.get()));
  pool_ = std::make_shared<BufferPool>(options.chunk_size, options.queue_depth,
                                       2 * options.queue_depth);
  bool fixed = disk_->RegisterBuffers(pool_->RegistrableBuffers());
  Log(LogLevel::kInfo, "store {}: member {}, io backend {}{}, chunk {} KiB, queue depth {}", dir,
      meta_->member_id(), disk_->name(), fixed ? " (registered buffers)" : "",
      options.chunk_size >> 10, options.queue_depth);
  return Status::OK();
}

ObjectStore::~ObjectStore() {
  std::vector<std::shared_ptr<OpenObject>> objs;
  {
    std::lock_guard lk(open_mu_);
    for (auto& [p, o] : open_) objs.push_back(o);
  }
  for (auto& o : objs) Discard(o);
  chunks_.reset();
  disk_.reset();  // joins the backend threads before the pool goes
  if (lock_fd_ >= 0) {
    ForgetInForkedChildren(lock_fd_);
    ::close(lock_fd_);
  }
}

Status ObjectStore::AdoptOlderFormat(const std::string& dir, bool existed) {
  if (existed) {
    // Format 1 without a FORMAT file: a world's store (local objects are chunk objects only)
    // has this layout already; a one-rank job's store kept user paths here.
    SHOAL_ASSIGN_OR_RETURN(ListPage top, meta_->List("", ListOptions{"", 16}));
    for (const DirEntry& e : top.entries) {
      if (e.name != "c" || !e.is_dir) {
        return Status::FailedPrecondition(fmt::format(
            "store {} was written by a one-rank job of shoal format 1 (user objects such as "
            "\"{}\" in {}/); this shoal keeps every store in the world layout (format {}, "
            "docs/architecture.md) and cannot show them: copy them out with the shoal that "
            "wrote them, or use a new store directory",
            dir, e.name, kMetaDir, kStoreFormat));
      }
    }
  }
  if (existed) {
    SHOAL_ASSIGN_OR_RETURN(uint64_t changed, meta_->FlattenChunkObjects());
    if (changed != 0) {
      Log(LogLevel::kInfo, "store {}: {} chunk object record(s) brought to format {}", dir, changed,
          kStoreFormat);
    }
  }
  return WriteStoreFormat(dir);
}

IoBuffer ObjectStore::AcquireBuffer(uint32_t chunk_size) {
  if (chunk_size <= pool_->buffer_size()) return pool_->Acquire();
  return BufferPool::AllocateRaw(chunk_size);
}

void ObjectStore::ReleaseBuffer(IoBuffer buf) {
  if (buf.empty()) return;
  if (buf.size == pool_->buffer_size()) pool_->Release(buf);
  else BufferPool::FreeRaw(buf);
}

Result<std::shared_ptr<ObjectStore::OpenObject>> ObjectStore::FindOpen(std::string_view path) {
  {
    std::lock_guard lk(open_mu_);
    auto it = open_.find(path);
    if (it != open_.end()) return it->second;
  }
  return NotBeingWritten(path);
}

Status ObjectStore::Create(std::string_view path, const CreateOptions& co) {
  SHOAL_ASSIGN_OR_RETURN(uint32_t cs, CheckCreate(path, co, options_.chunk_size));
  auto obj = std::make_shared<OpenObject>();
  obj->store = this;
  obj->path = std::string(path);
  obj->chunk_size = cs;
  obj->declared_size = co.size;
  obj->keep_for_inline = co.size != kUnknownSize && co.size <= options_.inline_threshold;

  std::lock_guard lk(open_mu_);
  if (open_.count(path) != 0) {
    return Status::AlreadyExists(fmt::format("object \"{}\" is being written", path));
  }
  SHOAL_RETURN_IF_ERROR(meta_->CheckCreatable(path));
  open_.emplace(obj->path, std::move(obj));
  return Status::OK();
}

Status ObjectStore::Write(std::string_view path, uint64_t offset, std::span<const std::byte> data,
                          IoBuffer* adopt) {
  SHOAL_ASSIGN_OR_RETURN(auto obj, FindOpen(path));
  uint64_t len = data.size();
  SHOAL_RETURN_IF_ERROR(CheckWrite(path, offset, len, obj->declared_size));
  if (len == 0) return Status::OK();

  const uint64_t cs = obj->chunk_size;
  uint64_t pos = offset;
  while (pos < offset + len) {
    uint64_t index = pos / cs;
    uint64_t in_begin = pos - index * cs;
    uint64_t in_end = std::min<uint64_t>(cs, offset + len - index * cs);
    const std::byte* src = data.data() + (pos - offset);
    std::byte* dst = nullptr;
    {
      std::unique_lock lk(obj->mu);
      if (!obj->error.ok()) return obj->error;
      if (obj->closing) {
        return Status::FailedPrecondition(fmt::format("\"{}\" is being sealed or aborted", path));
      }
      auto overlap = [&] {
        return Status::InvalidArgument(fmt::format(
            "write [{}, {}) of \"{}\" overlaps an earlier write", offset, offset + len, path));
      };
      if (obj->placed.count(index) != 0) return overlap();
      auto it = obj->staged.find(index);
      if (it == obj->staged.end()) {
        it = obj->staged.emplace(index, OpenObject::Staged{}).first;
        if (adopt != nullptr && !adopt->empty() && in_begin == 0 && src == adopt->data &&
            cs <= adopt->size) {
          it->second.buf = *adopt;  // the piece is already where the chunk is staged
          *adopt = IoBuffer{};
        } else {
          it->second.buf = AcquireBuffer(obj->chunk_size);
        }
      }
      OpenObject::Staged& st = it->second;
      if (st.written.Overlaps(in_begin, in_end)) return overlap();
      st.written.Add(in_begin, in_end);
      st.copying++;
      obj->copying++;
      obj->end = std::max(obj->end, index * cs + in_end);
      dst = st.buf.data + in_begin;
    }
    if (dst != src) std::memcpy(dst, src, in_end - in_begin);  // unlocked: writers overlap
    IoBuffer full;
    uint32_t full_len = 0;
    {
      std::lock_guard lk(obj->mu);
      auto it = obj->staged.find(index);
      OpenObject::Staged& st = it->second;
      st.copying--;
      obj->copying--;
      uint32_t need = obj->FullLength(index);
      if (st.copying == 0 && !obj->keep_for_inline && st.written.Covers(0, need)) {
        full = st.buf;
        full_len = need;
        obj->staged.erase(it);
        obj->placed[index] = Extent{};  // reserved: later writes to it are overlaps
        obj->flushing++;
      }
      obj->cv.notify_all();
    }
    if (!full.empty()) Flush(obj.get(), index, full, full_len);
    pos = index * cs + in_end;
  }
  return Status::OK();
}

void ObjectStore::Flush(OpenObject* obj, uint64_t index, IoBuffer buf, uint32_t length) {
  std::vector<uint32_t> sums;
  uint32_t crc = ComputeBlockSums(buf.data, length, &sums);  // the chunk's CRC from one pass
  uint32_t disk_len = static_cast<uint32_t>(AlignUp(length, kBlockSize));
  std::memset(buf.data + length, 0, disk_len - length);
  Extent e;
  e.length = length;
  e.crc = crc;
  Status s = chunks_->Allocate(disk_len, &e);
  int fd = s.ok() ? chunks_->Fd(e.segment) : -1;
  {
    std::lock_guard lk(obj->mu);
    obj->flushing--;
    if (!s.ok()) {
      if (obj->error.ok()) {
        obj->error = s.WithContext(fmt::format("chunk {} of \"{}\"", index, obj->path));
      }
      obj->placed.erase(index);
      obj->cv.notify_all();
    } else {
      obj->placed[index] = e;
      obj->sums[index] = std::move(sums);
      obj->segments.insert(e.segment);
      obj->in_flight[index] = buf;
    }
  }
  if (!s.ok()) {
    ReleaseBuffer(buf);
    return;
  }
  IoOp op{IoOp::Kind::kWrite, fd, e.offset, buf.data, disk_len, buf.registered_index, obj, index};
  disk_->Submit({&op, 1});
}

Status ObjectStore::SealWithOrigin(std::string_view path, std::string_view origin,
                                   const MetaStore::TxnFn& also) {
  SHOAL_ASSIGN_OR_RETURN(auto obj, FindOpen(path));
  Inode inode;
  {
    std::unique_lock lk(obj->mu);
    if (obj->closing) {
      return Status::FailedPrecondition(fmt::format("\"{}\" is already being sealed", path));
    }
    obj->closing = true;
    obj->cv.wait(lk, [&] { return obj->copying == 0; });
    inode.size = obj->declared_size != kUnknownSize ? obj->declared_size : obj->end;
    inode.chunk_size = obj->chunk_size;
  }
  auto fail = [&](Status s) {
    std::lock_guard lk(obj->mu);
    if (obj->error.ok()) obj->error = s;
    obj->closing = false;  // only Abort remains possible
    return s;
  };

  // Small objects go inline into the metadata record: no chunk I/O at all.
  std::unique_lock lk(obj->mu);
  if (inode.size <= options_.inline_threshold && obj->placed.empty() && obj->error.ok()) {
    inode.is_inline = true;
    inode.inline_data.assign(inode.size, '\0');
    auto it = obj->staged.find(0);
    if (it != obj->staged.end()) {
      it->second.written.ForEachGap(inode.size, [&](uint64_t b, uint64_t e) {
        std::memset(it->second.buf.data + b, 0, e - b);
      });
      std::memcpy(inode.inline_data.data(), it->second.buf.data, inode.size);
    }
    inode.inline_crc = Crc32c(inode.inline_data.data(), inode.size);
  } else {
    // Flush the partly written chunks, their unwritten bytes zeroed.
    auto staged = std::move(obj->staged);
    obj->staged.clear();
    for (auto& [index, st] : staged) obj->placed[index] = Extent{};
    obj->flushing += static_cast<uint32_t>(staged.size());
    lk.unlock();
    for (auto& [index, st] : staged) {
      uint64_t start = index * inode.chunk_size;
      uint32_t length =
          static_cast<uint32_t>(std::min<uint64_t>(inode.chunk_size, inode.size - start));
      st.written.ForEachGap(length, [&](uint64_t b, uint64_t e) {
        std::memset(st.buf.data + b, 0, e - b);
      });
      Flush(obj.get(), index, st.buf, length);
    }
    lk.lock();
  }
  obj->cv.wait(lk, [&] { return obj->flushing == 0 && obj->in_flight.empty(); });
  if (!obj->error.ok()) {
    Status s = obj->error;
    lk.unlock();
    return fail(s);
  }
  if (!inode.is_inline) {
    inode.chunks.resize(inode.NumChunks());
    inode.block_sums.resize(inode.chunks.size());
    for (uint64_t i = 0; i < inode.chunks.size(); ++i) {
      auto it = obj->placed.find(i);
      if (it != obj->placed.end()) {
        inode.chunks[i] = it->second;
        if (auto sit = obj->sums.find(i); sit != obj->sums.end()) {
          inode.block_sums[i] = std::move(sit->second);
        }
      } else {
        inode.chunks[i].length = inode.ChunkLength(i);  // never written: a hole of zeros
      }
    }
  }
  std::set<uint32_t> segments = obj->segments;
  lk.unlock();

  Status s = chunks_->Sync(segments);
  if (!s.ok()) return fail(s.WithContext(fmt::format("sealing \"{}\"", path)));
  inode.seal_time_ns = SealTimeNs();
  s = meta_->InsertObject(path, &inode, origin, also);
  if (!s.ok()) return fail(s);
  {
    std::lock_guard olk(open_mu_);
    open_.erase(obj->path);
  }
  {
    std::lock_guard olk(obj->mu);
    for (auto& [i, st] : obj->staged) ReleaseBuffer(st.buf);
    obj->staged.clear();
  }
  return Status::OK();
}

void ObjectStore::Discard(const std::shared_ptr<OpenObject>& obj) {
  std::vector<Extent> extents;
  {
    std::unique_lock lk(obj->mu);
    obj->closing = true;
    obj->cv.wait(lk, [&] {
      return obj->copying == 0 && obj->flushing == 0 && obj->in_flight.empty();
    });
    for (auto& [i, st] : obj->staged) ReleaseBuffer(st.buf);
    obj->staged.clear();
    for (auto& [i, e] : obj->placed) extents.push_back(e);
    obj->placed.clear();
  }
  {
    std::lock_guard lk(open_mu_);
    open_.erase(obj->path);
  }
  chunks_->Free(extents);
}

Status ObjectStore::Abort(std::string_view path) {
  SHOAL_ASSIGN_OR_RETURN(auto obj, FindOpen(path));
  Discard(obj);
  return Status::OK();
}

namespace {

// The part of one request that falls in one chunk.
struct ReadPiece {
  size_t request = 0;
  uint32_t in_chunk = 0;  // first byte wanted within the chunk
  uint32_t len = 0;
  std::byte* dst = nullptr;
};

// One disk read of a chunk, serving every piece of the batch that falls in it: ranges of one
// object packed back to back (a state dict's tensors) share chunks, and each is read and
// checksummed once, not once per range.
struct ChunkRead {
  Extent extent;
  uint64_t chunk = 0;
  std::vector<ReadPiece> pieces;
  bool direct = false;  // read straight into the only piece's memory
  IoBuffer bounce;
  // The chunk bytes read: all of it (checked against extent.crc), or, with block sums, only
  // the blocks the pieces touch (each checked against its sum).
  BlockSpan span;
  std::shared_ptr<const std::vector<uint32_t>> sums;
};

// Reads that need only part of their chunk, of chunks with block sums, become reads of the
// blocks their pieces touch: one read per run of pieces whose blocks touch or overlap. Others
// stay whole-chunk reads.
void NarrowToBlocks(MetaStore* meta, std::vector<ChunkRead>* reads) {
  std::vector<size_t> partial;
  std::vector<std::pair<uint32_t, uint64_t>> keys;
  for (size_t i = 0; i < reads->size(); ++i) {
    ChunkRead& c = (*reads)[i];
    c.span = {0, static_cast<uint32_t>(AlignUp(c.extent.length, kBlockSize))};
    uint64_t wanted = 0;
    for (const ReadPiece& p : c.pieces) wanted += p.len;
    if (ReadByBlocks(wanted, c.extent.length)) {
      partial.push_back(i);
      keys.emplace_back(c.extent.segment, c.extent.offset);
    }
  }
  if (partial.empty()) return;
  std::vector<std::vector<uint32_t>> sums = meta->GetBlockSums(keys);
  std::vector<ChunkRead> narrowed;
  for (size_t k = 0; k < partial.size(); ++k) {
    ChunkRead& c = (*reads)[partial[k]];
    if (sums[k].size() != SumBlocks(c.extent.length)) continue;  // none: the whole chunk
    auto shared = std::make_shared<const std::vector<uint32_t>>(std::move(sums[k]));
    std::vector<ReadPiece> pieces = std::move(c.pieces);
    std::sort(pieces.begin(), pieces.end(),
              [](const ReadPiece& a, const ReadPiece& b) { return a.in_chunk < b.in_chunk; });
    std::vector<ChunkRead> runs;
    for (const ReadPiece& p : pieces) {
      const BlockSpan b = CoverBlocks(p.in_chunk, p.len, c.extent.length);
      if (!runs.empty() && b.begin <= runs.back().span.end) {
        runs.back().span.end = std::max(runs.back().span.end, b.end);
      } else {
        runs.push_back(ChunkRead{c.extent, c.chunk, {}, false, {}, b, shared});
      }
      runs.back().pieces.push_back(p);
    }
    c = std::move(runs[0]);
    for (size_t r = 1; r < runs.size(); ++r) narrowed.push_back(std::move(runs[r]));
  }
  for (ChunkRead& c : narrowed) reads->push_back(std::move(c));
}

}  // namespace

Status ObjectStore::ReadBatch(std::span<ReadRequest> requests) {
  std::shared_lock reclaim(reclaim_mu_);
  std::vector<ChunkRead> reads;
  std::map<std::pair<uint32_t, uint64_t>, size_t> read_of;  // (segment, offset) -> reads index
  // One metadata lookup per object, however many ranges of it the batch reads, all in one
  // read transaction.
  std::map<std::string_view, size_t> lookup_of;
  std::vector<std::string_view> paths;
  for (ReadRequest& req : requests) {
    req.bytes_read = 0;
    req.status = ValidateObjectPath(req.path);
    if (req.status.ok() && lookup_of.emplace(req.path, paths.size()).second) {
      paths.push_back(req.path);
    }
  }
  const std::vector<Result<Inode>> inodes = meta_->GetInodes(paths);
  for (size_t r = 0; r < requests.size(); ++r) {
    ReadRequest& req = requests[r];
    if (!req.status.ok()) continue;
    const Result<Inode>& inode = inodes[lookup_of.at(req.path)];
    const std::optional<uint64_t> len = StartRead(req, inode);
    if (!len) continue;
    const uint64_t n = *len;
    uint64_t cs = inode->chunk_size;
    for (uint64_t pos = req.offset; pos < req.offset + n;) {
      uint64_t index = pos / cs;
      uint64_t in = pos - index * cs;
      uint64_t take = std::min<uint64_t>(cs - in, req.offset + n - pos);
      std::byte* dst = req.dst.data() + (pos - req.offset);
      const Extent& e = inode->chunks[index];
      if (e.is_hole()) {
        std::memset(dst, 0, take);
      } else {
        auto [it, added] = read_of.emplace(std::pair(e.segment, e.offset), reads.size());
        if (added) reads.push_back(ChunkRead{e, index, {}, false, {}, {}, nullptr});
        reads[it->second].pieces.push_back(
            {r, static_cast<uint32_t>(in), static_cast<uint32_t>(take), dst});
      }
      pos += take;
    }
  }

  NarrowToBlocks(meta_.get(), &reads);

  // Chunks whose segment is gone fail here; the rest go to the disk.
  auto fail = [&](const ChunkRead& c, const Status& s) {
    for (const ReadPiece& p : c.pieces) {
      if (requests[p.request].status.ok()) requests[p.request].status = s;
    }
  };
  std::vector<size_t> io;
  std::vector<int> fds(reads.size(), -1);
  for (size_t i = 0; i < reads.size(); ++i) {
    ChunkRead& c = reads[i];
    fds[i] = chunks_->Fd(c.extent.segment);
    if (fds[i] >= 0) {
      io.push_back(i);
    } else {
      fail(c, Status::Corruption(fmt::format("chunk {} of \"{}\": segment {} is missing", c.chunk,
                                             requests[c.pieces[0].request].path,
                                             c.extent.segment)));
    }
  }
  auto prepare = [&](size_t k, IoOp* op) {
    ChunkRead& c = reads[io[k]];
    const uint32_t disk_len = c.span.end - c.span.begin;
    // A registered pool buffer first, then copy out: measured faster than reading straight into
    // the caller's memory (randread 1.02-1.18x raw instead of 0.81-0.83x, sequential 1.11x
    // instead of 1.03x), because fixed buffers skip per-I/O page pinning and the checksum reads
    // bytes the DMA just left in cache. Straight into the caller's buffer only when no
    // registered buffer is free and one piece wants the whole chunk into aligned memory.
    const ReadPiece& only = c.pieces[0];
    const bool eligible = !c.sums && c.pieces.size() == 1 && only.in_chunk == 0 &&
                          only.len == c.extent.length && c.extent.length % kBlockSize == 0 &&
                          reinterpret_cast<uintptr_t>(only.dst) % kBlockSize == 0;
    c.bounce = AcquireBuffer(disk_len);
    c.direct = c.bounce.registered_index < 0 && eligible;
    if (c.direct) {
      ReleaseBuffer(c.bounce);
      c.bounce = IoBuffer{};
    }
    void* target = c.direct ? static_cast<void*>(only.dst) : c.bounce.data;
    *op = IoOp{IoOp::Kind::kRead, fds[io[k]], c.extent.offset + c.span.begin, target, disk_len,
               c.bounce.registered_index, nullptr, 0};
  };
  auto complete = [&](size_t k, int32_t result) {
    ChunkRead& c = reads[io[k]];
    const std::byte* chunk = c.direct ? c.pieces[0].dst : c.bounce.data;
    auto where = [&] {
      return fmt::format("chunk {} of \"{}\" (segment {}, offset {})", c.chunk,
                         requests[c.pieces[0].request].path, c.extent.segment, c.extent.offset);
    };
    Status s;
    const uint32_t want = std::min(c.extent.length, c.span.end) - c.span.begin;
    if (result < 0) {
      s = ErrnoStatus(-result, "reading " + where());
    } else if (static_cast<uint64_t>(result) < want) {
      s = Status::Corruption(fmt::format("{}: short read ({} of {} bytes from byte {})", where(),
                                         result, want, c.span.begin));
    } else if (c.sums) {
      if (auto bad = FirstBadBlock(chunk, c.span, c.extent.length, *c.sums)) {
        s = Status::Corruption(
            fmt::format("{}: CRC32C mismatch in 4 KiB block {} (its stored block sum)", where(),
                        *bad));
      }
    } else if (uint32_t crc = Crc32c(chunk, c.extent.length); crc != c.extent.crc) {
      s = Status::Corruption(fmt::format("{}: CRC32C mismatch (stored {:08x}, read {:08x})",
                                         where(), c.extent.crc, crc));
    }
    if (s.ok() && !c.direct) {
      for (const ReadPiece& p : c.pieces) {
        std::memcpy(p.dst, chunk + (p.in_chunk - c.span.begin), p.len);
      }
    }
    if (!s.ok()) {
      if (c.direct) std::memset(c.pieces[0].dst, 0, c.pieces[0].len);  // no bad bytes as data
      fail(c, s);
    }
    ReleaseBuffer(c.bounce);
    c.bounce = IoBuffer{};
  };
  disk_->Execute(io.size(), prepare, complete);
  for (ReadRequest& req : requests) {
    if (!req.status.ok()) req.bytes_read = 0;
  }
  return Status::OK();
}

Result<ObjectInfo> ObjectStore::Stat(std::string_view path) {
  SHOAL_RETURN_IF_ERROR(ValidateObjectPath(path));
  SHOAL_ASSIGN_OR_RETURN(Inode inode, meta_->GetInode(path));
  return InfoOf(path, inode);
}

Result<std::vector<std::vector<uint32_t>>> ObjectStore::Locate(std::string_view path) {
  SHOAL_RETURN_IF_ERROR(ValidateObjectPath(path));
  SHOAL_ASSIGN_OR_RETURN(Inode inode, meta_->GetInode(path));
  std::vector<std::vector<uint32_t>> out(inode.NumChunks());
  for (uint64_t i = 0; i < out.size(); ++i) {
    if (!inode.chunks[i].is_hole()) out[i] = {0};
  }
  return out;
}

Result<ListPage> ObjectStore::List(std::string_view dir, const ListOptions& options) {
  SHOAL_RETURN_IF_ERROR(ValidateDirPath(dir));
  return meta_->List(dir, options);
}

Status ObjectStore::Remove(std::string_view path) {
  SHOAL_RETURN_IF_ERROR(ValidateObjectPath(path));
  SHOAL_ASSIGN_OR_RETURN(Inode removed, meta_->RemoveObject(path));
  std::unique_lock reclaim(reclaim_mu_);  // reads that found the inode finish first
  chunks_->Free(removed.chunks);
  return Status::OK();
}

Result<RepairReport> ObjectStore::Repair(std::string_view dir) {
  SHOAL_RETURN_IF_ERROR(List(dir, {}).status());
  return RepairReport{};
}

}  // namespace shoal::engine
