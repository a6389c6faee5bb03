// LMDB file checks run before mdb_env_open. LMDB 0.9 has no page checksums and maps its data
// file: a page it believes exists past the end of a truncated file, or a damaged node that points
// past the end, is a SIGBUS in the reading process, not an error code. These functions read the
// file with pread (never through a mapping) and refuse it with Corruption, naming the file,
// before LMDB maps it.
//
// Format knowledge: LMDB 0.9 on a 64-bit little-endian host (pgno_t = 8 bytes, 16-byte page
// header, meta pages 0 and 1, MDB_meta after the page header). liblmdb 0.9.x (Debian 12: 0.9.24)
// writes exactly this; a store written by another LMDB major version is refused, as LMDB would.
//
// Thread-safety: free functions without shared state.
#pragma once

#include <cstdint>
#include <string>

#include "shoal/result.h"

namespace shoal::engine {

struct LmdbMeta {
  uint32_t page_size = 0;
  uint64_t last_page = 0;   // mm_last_pg of the meta LMDB will use (the higher txnid)
  uint64_t txnid = 0;
  uint64_t free_root = 0;   // root page of LMDB's free-page DB (~0: empty)
  uint64_t main_root = 0;   // root page of the main DB, which holds the named DBs (~0: empty)
  uint64_t file_size = 0;
  int used_meta = 0;        // 0 or 1
};

inline constexpr uint64_t kLmdbNoPage = ~uint64_t{0};

// Reads both meta pages of the LMDB data file `file` (e.g. <dir>/data.mdb) and checks them as
// LMDB's own open does (P_META flag, magic, version, page size), then that the file holds every
// page up to the used meta's last page: size >= (last_page + 1) * page_size.
// NotFound when the file does not exist or is empty (LMDB creates a new environment then);
// Corruption naming `file` for a damaged or truncated file; IOError when it cannot be read.
Result<LmdbMeta> ReadLmdbMeta(const std::string& file);

// ReadLmdbMeta, then a walk of every B-tree page reachable from the used meta (the free-page DB,
// the main DB and each named DB): page numbers within the file, page headers (number, type,
// lower/upper bounds), every node's key and data within its page, overflow runs within the file,
// free-page lists within the file, no page reached twice. Reads every live page once, so its cost
// grows with the metadata (about one sequential read of data.mdb). Returns the meta on success;
// NotFound as ReadLmdbMeta; Corruption naming `file` and the page otherwise.
Result<LmdbMeta> VerifyLmdbFile(const std::string& file);

}  // namespace shoal::engine
