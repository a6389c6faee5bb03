#include "engine/lmdb_check.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "base/errno_status.h"

namespace shoal::engine {
namespace {

// LMDB 0.9 layout constants (mdb.c).
constexpr size_t kPageHeader = 16;       // PAGEHDRSZ: pgno(8) pad(2) flags(2) lower(2) upper(2)
constexpr size_t kMetaSize = 136;        // sizeof(MDB_meta) on 64-bit hosts
constexpr uint32_t kMagic = 0xBEEFC0DE;  // MDB_MAGIC
constexpr uint32_t kDataVersion = 1;     // MDB_DATA_VERSION
constexpr uint16_t kPBranch = 0x01, kPLeaf = 0x02, kPOverflow = 0x04, kPMeta = 0x08,
                   kPLeaf2 = 0x20, kPSubp = 0x40;
constexpr uint16_t kFBigData = 0x01, kFSubData = 0x02, kFDupData = 0x04;
constexpr size_t kNodeHeader = 8;        // NODESIZE: lo(2) hi(2) flags(2) ksize(2)
constexpr size_t kDbRecord = 48;         // sizeof(MDB_db)
constexpr uint16_t kDupFlags = 0x04 | 0x10 | 0x20 | 0x40;  // DUPSORT DUPFIXED INTEGERDUP REVERSEDUP
constexpr int kMaxDepth = 64;

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

class File {
 public:
  explicit File(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    open_errno_ = fd_ < 0 ? errno : 0;
  }
  ~File() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }
  int open_errno() const { return open_errno_; }
  // Exactly n bytes at off, or an error (a short read is Corruption: the file ends early).
  Status ReadAt(uint64_t off, void* buf, size_t n) const {
    size_t got = 0;
    while (got < n) {
      ssize_t k = ::pread(fd_, static_cast<char*>(buf) + got, n - got, static_cast<off_t>(off + got));
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) return ErrnoStatus(errno, "read " + path_);
      if (k == 0) {
        return Status::Corruption(fmt::format("{}: ends at byte {}, expected {} bytes at {}", path_,
                                              off + got, n, off));
      }
      got += static_cast<size_t>(k);
    }
    return Status::OK();
  }

 private:
  std::string path_;
  int fd_ = -1;
  int open_errno_ = 0;
};

struct RawMeta {
  uint32_t page_size;
  uint64_t free_root, main_root, last_page, txnid;
  uint16_t main_flags;
};

// Meta page `i` checked as mdb_env_read_header does.
Result<RawMeta> ReadMetaPage(const File& f, const std::string& file, int i, uint64_t off) {
  uint8_t b[kPageHeader + kMetaSize];
  SHOAL_RETURN_IF_ERROR(f.ReadAt(off, b, sizeof(b)));
  auto bad = [&](std::string_view why) {
    return Status::Corruption(fmt::format("{}: LMDB meta page {} {}", file, i, why));
  };
  const uint8_t* m = b + kPageHeader;
  if ((Load<uint16_t>(b + 10) & kPMeta) == 0) return bad("is not a meta page");
  if (Load<uint32_t>(m + 0) != kMagic) return bad("has a wrong magic number");
  if (Load<uint32_t>(m + 4) != kDataVersion) {
    return bad(fmt::format("has format version {}, expected {}", Load<uint32_t>(m + 4),
                           kDataVersion));
  }
  RawMeta r;
  r.page_size = Load<uint32_t>(m + 24);      // mm_dbs[FREE_DBI].md_pad = mm_psize
  r.free_root = Load<uint64_t>(m + 24 + 40);
  r.main_flags = Load<uint16_t>(m + 72 + 4);
  r.main_root = Load<uint64_t>(m + 72 + 40);
  r.last_page = Load<uint64_t>(m + 120);
  r.txnid = Load<uint64_t>(m + 128);
  if (r.page_size < 512 || r.page_size > 65536 || (r.page_size & (r.page_size - 1)) != 0) {
    return bad(fmt::format("names page size {}", r.page_size));
  }
  if (r.last_page < 1) return bad(fmt::format("names last page {}", r.last_page));
  return r;
}

class Walker {
 public:
  Walker(const File& f, const std::string& file, const LmdbMeta& meta)
      : f_(f), file_(file), meta_(meta), seen_(meta.last_page + 1, false) {}

  // A tree: the free DB (free_list) or the main DB (main: its F_SUBDATA leaves are named DBs).
  Status Tree(uint64_t root, bool free_list, bool main) {
    if (root == kLmdbNoPage) return Status::OK();
    return Page(root, free_list, main, 0);
  }

 private:
  Status Bad(uint64_t pgno, std::string_view why) const {
    return Status::Corruption(fmt::format("{}: LMDB page {} {}", file_, pgno, why));
  }

  Status CheckPgno(uint64_t pgno, uint64_t from) const {
    if (pgno < 2 || pgno > meta_.last_page) {
      return Bad(from, fmt::format("points to page {}, outside pages 2..{}", pgno,
                                   meta_.last_page));
    }
    return Status::OK();
  }

  Status Page(uint64_t pgno, bool free_list, bool main, int depth) {
    if (depth > kMaxDepth) return Bad(pgno, "is deeper than any LMDB tree");
    if (seen_[pgno]) return Bad(pgno, "is reached twice");
    seen_[pgno] = true;
    std::vector<uint8_t> buf(meta_.page_size);
    SHOAL_RETURN_IF_ERROR(f_.ReadAt(pgno * meta_.page_size, buf.data(), buf.size()));
    const uint8_t* p = buf.data();
    const size_t psize = meta_.page_size;
    if (Load<uint64_t>(p) != pgno) return Bad(pgno, "holds another page number");
    uint16_t flags = Load<uint16_t>(p + 10);
    bool branch = (flags & kPBranch) != 0, leaf = (flags & kPLeaf) != 0;
    if (branch == leaf || (flags & (kPOverflow | kPMeta | kPLeaf2 | kPSubp)) != 0) {
      return Bad(pgno, fmt::format("has page flags {:#x}, expected a branch or leaf", flags));
    }
    uint16_t lower = Load<uint16_t>(p + 12), upper = Load<uint16_t>(p + 14);
    if (lower < kPageHeader || lower % 2 != 0 || lower > upper || upper > psize) {
      return Bad(pgno, fmt::format("has bounds lower {} upper {}", lower, upper));
    }
    size_t keys = (lower - kPageHeader) / 2;
    if (branch && keys == 0) return Bad(pgno, "is a branch without children");
    for (size_t i = 0; i < keys; ++i) {
      size_t at = Load<uint16_t>(p + kPageHeader + 2 * i);
      if (at < upper || at + kNodeHeader > psize) return Bad(pgno, fmt::format("node {} at {}", i, at));
      const uint8_t* n = p + at;
      uint64_t lo = Load<uint16_t>(n), hi = Load<uint16_t>(n + 2);
      uint16_t nflags = Load<uint16_t>(n + 4), ksize = Load<uint16_t>(n + 6);
      if (at + kNodeHeader + ksize > psize) return Bad(pgno, fmt::format("node {} key size {}", i, ksize));
      if (branch) {
        uint64_t child = lo | (hi << 16) | (uint64_t{nflags} << 32);
        SHOAL_RETURN_IF_ERROR(CheckPgno(child, pgno));
        SHOAL_RETURN_IF_ERROR(Page(child, free_list, main, depth + 1));
        continue;
      }
      uint64_t dsize = lo | (hi << 16);
      const uint8_t* data = n + kNodeHeader + ksize;
      size_t data_at = at + kNodeHeader + ksize;
      if ((nflags & kFDupData) != 0) return Bad(pgno, fmt::format("node {} has duplicates", i));
      if ((nflags & kFBigData) != 0) {
        if ((nflags & kFSubData) != 0 || data_at + 8 > psize) return Bad(pgno, "big node");
        std::vector<uint8_t> value;
        SHOAL_RETURN_IF_ERROR(Overflow(Load<uint64_t>(data), dsize, pgno, free_list ? &value : nullptr));
        if (free_list) SHOAL_RETURN_IF_ERROR(FreeList(value.data(), value.size(), pgno));
        continue;
      }
      if (data_at + dsize > psize) return Bad(pgno, fmt::format("node {} data size {}", i, dsize));
      if ((nflags & kFSubData) != 0) {
        if (!main || dsize != kDbRecord) return Bad(pgno, fmt::format("node {} sub-DB record", i));
        if ((Load<uint16_t>(data + 4) & kDupFlags) != 0) return Bad(pgno, "sub-DB with duplicates");
        uint64_t root = Load<uint64_t>(data + 40);
        if (root != kLmdbNoPage) {
          SHOAL_RETURN_IF_ERROR(CheckPgno(root, pgno));
          SHOAL_RETURN_IF_ERROR(Page(root, false, false, 0));
        }
      } else if (free_list) {
        SHOAL_RETURN_IF_ERROR(FreeList(data, dsize, pgno));
      }
    }
    return Status::OK();
  }

  // An overflow run holding `dsize` bytes; its bytes into *value when asked.
  Status Overflow(uint64_t first, uint64_t dsize, uint64_t from, std::vector<uint8_t>* value) {
    SHOAL_RETURN_IF_ERROR(CheckPgno(first, from));
    uint8_t h[kPageHeader];
    SHOAL_RETURN_IF_ERROR(f_.ReadAt(first * meta_.page_size, h, sizeof(h)));
    uint32_t pages = Load<uint32_t>(h + 12);
    if (Load<uint64_t>(h) != first || (Load<uint16_t>(h + 10) & kPOverflow) == 0 || pages == 0 ||
        first + pages - 1 > meta_.last_page ||
        dsize > uint64_t{pages} * meta_.page_size - kPageHeader) {
      return Bad(first, fmt::format("is not an overflow run of {} bytes", dsize));
    }
    for (uint64_t q = first; q < first + pages; ++q) {
      if (seen_[q]) return Bad(q, "is reached twice");
      seen_[q] = true;
    }
    if (value != nullptr) {
      value->resize(dsize);
      SHOAL_RETURN_IF_ERROR(f_.ReadAt(first * meta_.page_size + kPageHeader, value->data(), dsize));
    }
    return Status::OK();
  }

  // A free-page list (MDB_IDL: count, then page numbers).
  Status FreeList(const uint8_t* v, uint64_t size, uint64_t from) const {
    if (size < 8 || size % 8 != 0 || Load<uint64_t>(v) != size / 8 - 1) {
      return Bad(from, "holds a malformed free-page list");
    }
    for (uint64_t i = 1; i < size / 8; ++i) {
      SHOAL_RETURN_IF_ERROR(CheckPgno(Load<uint64_t>(v + 8 * i), from));
    }
    return Status::OK();
  }

  const File& f_;
  const std::string& file_;
  const LmdbMeta& meta_;
  std::vector<bool> seen_;
};

Result<LmdbMeta> ReadMeta(const File& f, const std::string& file) {
  if (f.fd() < 0) {
    if (f.open_errno() == ENOENT) return Status::NotFound(file + " does not exist");
    return ErrnoStatus(f.open_errno(), "open " + file);
  }
  struct stat st {};
  if (::fstat(f.fd(), &st) != 0) return ErrnoStatus(errno, "stat " + file);
  if (st.st_size == 0) return Status::NotFound(file + " is empty");
  SHOAL_ASSIGN_OR_RETURN(RawMeta m0, ReadMetaPage(f, file, 0, 0));
  SHOAL_ASSIGN_OR_RETURN(RawMeta m1, ReadMetaPage(f, file, 1, m0.page_size));
  if (m1.page_size != m0.page_size) {
    return Status::Corruption(fmt::format("{}: LMDB meta pages name page sizes {} and {}", file,
                                          m0.page_size, m1.page_size));
  }
  // LMDB uses the meta of the higher transaction id (mdb_env_pick_meta).
  int used = m1.txnid > m0.txnid ? 1 : 0;
  const RawMeta& m = used == 1 ? m1 : m0;
  LmdbMeta out;
  out.page_size = m.page_size;
  out.last_page = m.last_page;
  out.txnid = m.txnid;
  out.free_root = m.free_root;
  out.main_root = m.main_root;
  out.file_size = static_cast<uint64_t>(st.st_size);
  out.used_meta = used;
  uint64_t pages = out.file_size / out.page_size;
  if (out.last_page >= pages) {
    return Status::Corruption(fmt::format(
        "{}: truncated or damaged: LMDB meta page {} (txn {}) uses pages 0..{} of {} bytes, the "
        "file has {} bytes ({} pages)", file, used, m.txnid, m.last_page, m.page_size,
        out.file_size, pages));
  }
  if (m.main_flags & kDupFlags) {
    return Status::Corruption(fmt::format("{}: LMDB main DB flags {:#x}", file, m.main_flags));
  }
  return out;
}

}  // namespace

Result<LmdbMeta> ReadLmdbMeta(const std::string& file) {
  File f(file);
  return ReadMeta(f, file);
}

Result<LmdbMeta> VerifyLmdbFile(const std::string& file) {
  File f(file);
  SHOAL_ASSIGN_OR_RETURN(LmdbMeta meta, ReadMeta(f, file));
  for (uint64_t root : {meta.free_root, meta.main_root}) {
    if (root != kLmdbNoPage && (root < 2 || root > meta.last_page)) {
      return Status::Corruption(
          fmt::format("{}: LMDB root page {} outside pages 2..{}", file, root, meta.last_page));
    }
  }
  Walker w(f, file, meta);
  SHOAL_RETURN_IF_ERROR(w.Tree(meta.free_root, /*free_list=*/true, /*main=*/false));
  SHOAL_RETURN_IF_ERROR(w.Tree(meta.main_root, /*free_list=*/false, /*main=*/true));
  return meta;
}

}  // namespace shoal::engine
