// ChunkStore on its own: allocation, freeing, and what Open recovers after clean closes,
// unsealed writes and crashes (a forked child that _exits mid-work).
#include "engine/chunk_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "engine/buffer_pool.h"
#include "engine/fault_disk.h"
#include "tests/test_util.h"

namespace shoal::engine {
namespace {

constexpr uint64_t kSegment = 1 << 20;  // 256 blocks: rolls over quickly

// A member's two stores over a FaultDisk wrapping the POSIX backend.
class Stores {
 public:
  explicit Stores(const std::string& root, uint64_t segment_size = kSegment)
      : root_(root), segment_size_(segment_size) {}

  Status Open() {
    auto fd = std::make_unique<FaultDisk>(NewPosixDisk(4));
    fault_ = fd.get();
    disk_ = std::move(fd);
    SHOAL_ASSIGN_OR_RETURN(meta_, MetaStore::Open(root_ + "/meta", 64ull << 20));
    SHOAL_ASSIGN_OR_RETURN(chunks_, ChunkStore::Open(disk_.get(), dir(), segment_size_,
                                                     /*direct=*/false, meta_.get()));
    return Status::OK();
  }
  void Close() {
    chunks_.reset();
    meta_.reset();
    disk_.reset();
  }

  // Allocates and writes `length` bytes of a pattern; the extent is not sealed.
  Status Write(uint32_t length, uint64_t seed, Extent* e) {
    SHOAL_RETURN_IF_ERROR(chunks_->Allocate(AlignUp(length, kBlockSize), e));
    e->length = length;
    std::vector<std::byte> data = testing::Pattern(AlignUp(length, kBlockSize), seed);
    int32_t result = 0;
    disk_->Execute(
        1,
        [&](size_t, IoOp* op) {
          op->kind = IoOp::Kind::kWrite;
          op->fd = chunks_->Fd(e->segment);
          op->offset = e->offset;
          op->buf = data.data();
          op->len = static_cast<uint32_t>(data.size());
        },
        [&](size_t, int32_t r) { result = r; });
    if (result < 0) return Status::IOError(fmt::format("write: {}", std::strerror(-result)));
    if (static_cast<size_t>(result) != data.size()) return Status::IOError("short write");
    return chunks_->Sync({e->segment});
  }
  // Records the extent as a sealed object's (as ObjectStore does after the data is synced).
  Status Seal(const std::string& path, const Extent& e) {
    Inode n;
    n.chunk_size = kMinChunkSize;
    n.size = e.length;
    n.chunks.push_back(e);
    return meta_->InsertObject(path, &n);
  }
  // Reads back an extent's bytes through a file descriptor of our own.
  std::vector<std::byte> Read(const Extent& e) {
    std::vector<std::byte> out(e.length);
    int fd = ::open(SegmentPath(e.segment).c_str(), O_RDONLY);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::pread(fd, out.data(), out.size(), static_cast<off_t>(e.offset)),
              static_cast<ssize_t>(out.size()));
    ::close(fd);
    return out;
  }

  std::string dir() const { return root_ + "/chunks"; }
  std::string SegmentPath(uint32_t id) const { return fmt::format("{}/seg-{:08x}.dat", dir(), id); }
  ChunkStore* chunks() { return chunks_.get(); }
  MetaStore* meta() { return meta_.get(); }
  FaultDisk* fault() { return fault_; }

 private:
  std::string root_;
  uint64_t segment_size_;
  std::unique_ptr<Disk> disk_;
  FaultDisk* fault_ = nullptr;
  std::unique_ptr<MetaStore> meta_;
  std::unique_ptr<ChunkStore> chunks_;
};

// The first `len` bytes of the pattern Stores::Write wrote for an extent of `n` disk bytes.
std::vector<std::byte> PatternPrefix(size_t n, uint64_t seed, size_t len) {
  std::vector<std::byte> v = testing::Pattern(n, seed);
  v.resize(len);
  return v;
}

bool Exists(const std::string& path) { return std::filesystem::exists(path); }

uint64_t FileSize(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return static_cast<uint64_t>(st.st_size);
}

// Bytes of [offset, offset+len) of a file that hold data (not holes), by SEEK_DATA/SEEK_HOLE.
uint64_t DataBytes(const std::string& path, uint64_t offset, uint64_t len) {
  int fd = ::open(path.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0) << path;
  uint64_t end = offset + len, data = 0;
  off_t pos = static_cast<off_t>(offset);
  while (static_cast<uint64_t>(pos) < end) {
    off_t d = ::lseek(fd, pos, SEEK_DATA);
    if (d < 0 || static_cast<uint64_t>(d) >= end) break;
    off_t h = ::lseek(fd, d, SEEK_HOLE);
    uint64_t stop = std::min<uint64_t>(static_cast<uint64_t>(h), end);
    data += stop - static_cast<uint64_t>(d);
    pos = static_cast<off_t>(stop);
  }
  ::close(fd);
  return data;
}

TEST(ChunkStore, AllocatesAlignedExtentsAndRollsOverFullSegments) {
  testing::TempDir tmp;
  Stores s(tmp.path());
  ASSERT_OK(s.Open());
  Extent a, b, c;
  ASSERT_OK(s.chunks()->Allocate(4096, &a));
  ASSERT_OK(s.chunks()->Allocate(3 * 4096, &b));
  EXPECT_EQ(a.segment, 1u) << "segment ids start at 1";
  EXPECT_EQ(a.offset, 0u);
  EXPECT_EQ(b.segment, 1u);
  EXPECT_EQ(b.offset, 4096u);
  // What does not fit in the rest of the segment goes to the start of the next one.
  ASSERT_OK(s.chunks()->Allocate(kSegment - 4096, &c));
  EXPECT_EQ(c.segment, 2u);
  EXPECT_EQ(c.offset, 0u);
  Extent d;
  ASSERT_OK(s.chunks()->Allocate(4096, &d));
  EXPECT_EQ(d.segment, 2u);
  EXPECT_EQ(d.offset, kSegment - 4096);
  Extent e;
  ASSERT_OK(s.chunks()->Allocate(kSegment, &e));  // exactly one whole segment
  EXPECT_EQ(e.segment, 3u);
  EXPECT_EQ(e.offset, 0u);
  EXPECT_EQ(s.chunks()->segment_count(), 3u);
  EXPECT_GE(s.chunks()->Fd(1), 0);
  EXPECT_EQ(s.chunks()->Fd(4), -1);
  EXPECT_LE(FileSize(s.SegmentPath(2)), kSegment) << "never past segment_size";
  // Sizes no chunk can have are refused, not placed past the segment's end.
  Extent bad;
  EXPECT_CODE(s.chunks()->Allocate(0, &bad), kInvalidArgument);
  EXPECT_CODE(s.chunks()->Allocate(100, &bad), kInvalidArgument);
  EXPECT_CODE(s.chunks()->Allocate(kSegment + 4096, &bad), kInvalidArgument);
  EXPECT_EQ(s.chunks()->segment_count(), 3u);
}

TEST(ChunkStore, FullDiskIsNoSpaceAndLeavesTheStoreUsable) {
  testing::TempDir tmp;
  Stores s(tmp.path(), 64ull << 20);
  ASSERT_OK(s.Open());
  Extent a;
  ASSERT_OK(s.Write(4096, 1, &a));  // reserves the first 64 MiB step... of a 64 MiB segment
  s.fault()->SetSpaceLeft(8192);
  Extent big;
  EXPECT_CODE(s.chunks()->Allocate(64ull << 20, &big), kNoSpace);  // reservation refused
  s.fault()->SetSpaceLeft(UINT64_MAX);
  Extent b;
  EXPECT_OK(s.Write(4096, 2, &b));
}

TEST(ChunkStore, CleanCloseReturnsTheUnusedReservation) {
  testing::TempDir tmp;
  Stores s(tmp.path(), 64ull << 20);
  ASSERT_OK(s.Open());
  Extent a;
  ASSERT_OK(s.Write(5000, 1, &a));
  ASSERT_OK(s.Seal("a", a));
  EXPECT_GT(FileSize(s.SegmentPath(1)), 8192u) << "space is reserved ahead of the writes";
  s.Close();
  EXPECT_EQ(FileSize(s.SegmentPath(1)), 8192u);
  ASSERT_OK(s.Open());
  EXPECT_EQ(s.Read(a), PatternPrefix(8192, 1, 5000));
}

// Writes that never sealed leave no trace after Open: whole segments are deleted, gaps between
// sealed extents punched, and files cut after their last sealed extent.
TEST(ChunkStore, ReopenReclaimsUnsealedWrites) {
  testing::TempDir tmp;
  Stores s(tmp.path());
  ASSERT_OK(s.Open());
  Extent a, b, c, d, e, f;
  ASSERT_OK(s.Write(4096, 1, &a));      // unsealed
  ASSERT_OK(s.Write(8192, 2, &b));      // sealed
  ASSERT_OK(s.Write(4096, 3, &c));      // unsealed
  ASSERT_OK(s.Write(6000, 4, &d));      // sealed (8 KiB on disk)
  ASSERT_OK(s.Write(8192, 5, &e));      // unsealed, after the last sealed one
  ASSERT_OK(s.chunks()->Allocate(kSegment - 32768, &f));  // fills segment 1 exactly
  Extent g, h;
  ASSERT_OK(s.Write(4096, 6, &g));      // segment 2: nothing sealed in it
  ASSERT_OK(s.Write(4096, 7, &h));
  ASSERT_EQ(g.segment, 2u);
  ASSERT_OK(s.Seal("b", b));
  ASSERT_OK(s.Seal("d", d));
  s.Close();

  ASSERT_OK(s.Open());
  EXPECT_TRUE(Exists(s.SegmentPath(1)));
  EXPECT_FALSE(Exists(s.SegmentPath(2))) << "a segment without sealed chunks is deleted";
  EXPECT_EQ(s.chunks()->segment_count(), 1u);
  EXPECT_EQ(FileSize(s.SegmentPath(1)), d.offset + 8192) << "cut after the last sealed extent";
  EXPECT_EQ(DataBytes(s.SegmentPath(1), 0, a.offset + 4096), 0u) << "a punched";
  EXPECT_EQ(DataBytes(s.SegmentPath(1), c.offset, 4096), 0u) << "c punched";
  EXPECT_EQ(DataBytes(s.SegmentPath(1), 0, FileSize(s.SegmentPath(1))), 8192u + 8192u);
  EXPECT_EQ(s.Read(b), testing::Pattern(8192, 2));
  EXPECT_EQ(s.Read(d), PatternPrefix(8192, 4, 6000));

  // Allocation continues in a fresh segment, past every id seen (2 included, though deleted).
  Extent next;
  ASSERT_OK(s.chunks()->Allocate(4096, &next));
  EXPECT_EQ(next.segment, 3u);
  EXPECT_EQ(next.offset, 0u);

  // A second reopen finds nothing more to reclaim and changes nothing.
  s.Close();
  ASSERT_OK(s.Open());
  EXPECT_EQ(FileSize(s.SegmentPath(1)), d.offset + 8192);
  EXPECT_FALSE(Exists(s.SegmentPath(3))) << "allocated, never written or sealed";
  EXPECT_EQ(s.Read(b), testing::Pattern(8192, 2));
}

// A process that dies in the middle of writing (one write failed, the reservation never handed
// back, no destructor) leaves exactly its sealed chunks after the next Open.
TEST(ChunkStore, CrashMidWriteLeavesOnlySealedChunks) {
  testing::TempDir tmp;
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Stores s(tmp.path(), 64ull << 20);
    Extent a, b, c;
    if (!s.Open().ok() || !s.Write(8192, 1, &a).ok() || !s.Seal("a", a).ok()) ::_exit(2);
    if (!s.Write(4096, 2, &b).ok()) ::_exit(3);  // written, never sealed
    s.fault()->SetSpaceLeft(4096);               // the disk fills in the middle of the next
    if (s.Write(3 * 4096, 3, &c).ok()) ::_exit(4);
    ::_exit(0);  // crash: no Close, the 64 MiB reservation is still on the file
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  std::string seg = fmt::format("{}/chunks/seg-{:08x}.dat", tmp.path(), 1);
  EXPECT_GT(FileSize(seg), 8192u) << "the crash left the reservation";

  Stores s(tmp.path(), 64ull << 20);
  ASSERT_OK(s.Open());
  EXPECT_EQ(FileSize(seg), 8192u);
  EXPECT_EQ(DataBytes(seg, 0, 64ull << 20), 8192u);
  auto inode = s.meta()->GetInode("a");
  ASSERT_OK(inode);
  EXPECT_EQ(s.Read(inode->chunks[0]), testing::Pattern(8192, 1));
}

TEST(ChunkStore, FreePunchesAndDeletesSegmentsLeftEmpty) {
  testing::TempDir tmp;
  Stores s(tmp.path());
  ASSERT_OK(s.Open());
  Extent a, b, c, d;
  ASSERT_OK(s.Write(4096, 1, &a));
  ASSERT_OK(s.Write(kSegment - 4096, 2, &b));  // segment 1 is full
  ASSERT_OK(s.Write(4096, 3, &c));             // segment 2 is active
  ASSERT_OK(s.Write(4096, 4, &d));
  ASSERT_EQ(c.segment, 2u);

  s.chunks()->Free({a});
  EXPECT_EQ(DataBytes(s.SegmentPath(1), 0, 4096), 0u) << "space returned at once";
  EXPECT_EQ(DataBytes(s.SegmentPath(1), 4096, 4096), 4096u) << "neighbour untouched";
  EXPECT_TRUE(Exists(s.SegmentPath(1)));
  s.chunks()->Free({b, Extent{}});  // a hole in the list is skipped
  EXPECT_FALSE(Exists(s.SegmentPath(1))) << "a full segment without live chunks is deleted";
  EXPECT_EQ(s.chunks()->Fd(1), -1);
  EXPECT_EQ(s.chunks()->segment_count(), 1u);

  s.chunks()->Free({c, d});
  EXPECT_TRUE(Exists(s.SegmentPath(2))) << "the active segment stays: allocation goes on in it";
  Extent e;
  ASSERT_OK(s.chunks()->Allocate(4096, &e));
  EXPECT_EQ(e.segment, 2u);
  EXPECT_EQ(e.offset, 2 * 4096u) << "offsets are never reused within a segment";
  s.chunks()->Free({Extent{1, 0, 4096, 0}});  // a deleted segment: ignored
}

// After Open, the newest segment holding sealed chunks is never allocated in again, so freeing
// its last chunk must delete it like any other full segment.
TEST(ChunkStore, FreeDeletesTheNewestRecoveredSegmentWhenItEmpties) {
  testing::TempDir tmp;
  Stores s(tmp.path());
  ASSERT_OK(s.Open());
  Extent a, b;
  ASSERT_OK(s.Write(4096, 1, &a));
  ASSERT_OK(s.Write(4096, 2, &b));
  ASSERT_OK(s.Seal("a", a));
  ASSERT_OK(s.Seal("b", b));
  s.Close();
  ASSERT_OK(s.Open());
  ASSERT_TRUE(Exists(s.SegmentPath(1)));
  ASSERT_OK(s.meta()->RemoveObject("a"));
  s.chunks()->Free({a});
  EXPECT_TRUE(Exists(s.SegmentPath(1)));
  ASSERT_OK(s.meta()->RemoveObject("b"));
  s.chunks()->Free({b});
  EXPECT_FALSE(Exists(s.SegmentPath(1)));
  EXPECT_EQ(s.chunks()->segment_count(), 0u);
  Extent c;
  ASSERT_OK(s.chunks()->Allocate(4096, &c));
  EXPECT_EQ(c.segment, 2u);
  EXPECT_EQ(c.offset, 0u);
}

TEST(ChunkStore, MissingSealedSegmentIsReportedAsUnreadableNotFatal) {
  testing::TempDir tmp;
  Stores s(tmp.path());
  ASSERT_OK(s.Open());
  Extent a;
  ASSERT_OK(s.Write(4096, 1, &a));
  ASSERT_OK(s.Seal("a", a));
  s.Close();
  ASSERT_EQ(::unlink(s.SegmentPath(1).c_str()), 0);
  ASSERT_OK(s.Open());
  EXPECT_EQ(s.chunks()->Fd(1), -1);
  Extent b;
  ASSERT_OK(s.chunks()->Allocate(4096, &b));
  EXPECT_EQ(b.segment, 2u) << "the lost segment's id is not reused";
}

TEST(ChunkStore, StrayFilesAreLeftAlone) {
  testing::TempDir tmp;
  Stores s(tmp.path());
  ASSERT_OK(s.Open());
  s.Close();
  for (const char* name : {"seg-1.dat", "seg-0000000g.dat", "seg-00000001.datx", "notes.txt"}) {
    int fd = ::open((s.dir() + "/" + name).c_str(), O_CREAT | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    ::close(fd);
  }
  ASSERT_OK(s.Open());
  for (const char* name : {"seg-1.dat", "seg-0000000g.dat", "seg-00000001.datx", "notes.txt"}) {
    EXPECT_TRUE(Exists(s.dir() + "/" + name)) << name;
  }
  EXPECT_EQ(s.chunks()->segment_count(), 0u);
}

}  // namespace
}  // namespace shoal::engine
