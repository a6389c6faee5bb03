// Engine: the shoal object store, as one training rank sees it.
//
// An Engine stores named, immutable byte sequences ("objects") in a hierarchical namespace
// ("ckpt/step-100/rank-3.bin"). An object is created, filled by one or more writers with
// disjoint ranges, and sealed. Readers see sealed objects only; a sealed object never changes
// until it is removed. Seal returns only once every byte and the object's metadata are durable:
// a crash (SIGKILL, power loss) after Seal returns loses nothing, and a crash before it leaves no
// trace of the object visible.
//
// One member or a world: with a world size of 1 an Engine keeps its objects in
// Options::store_dir on the local disk. When the launcher (torchrun, mpirun) or Options describe
// a world of several ranks, every rank's Engine joins the others at Open and together they form
// one storage system: chunks striped over every member's store directory (with
// Options::replicas copies on distinct nodes), metadata on a hash ring of the members, and any
// rank can read, list and remove any object. The calls are the same; an object is written
// (Create/Write/Seal/Abort) through the rank that created it. See docs/architecture.md.
//
// Names: relative paths of components separated by '/'. A component is 1..255 bytes, not "." or
// "..", and holds no NUL, '/', or control character (0x01..0x1f, 0x7f); a path is at most 4096
// bytes and neither starts nor ends with '/'. The root directory is "". Bad names give
// InvalidArgument. A name is either an object or a directory (implied by the objects below it).
//
// Thread-safety: every method may be called concurrently from any number of threads. Writes to
// disjoint ranges of one object from several threads are supported; overlapping writes are
// refused with InvalidArgument (the first one wins).
//
// Fork: an Engine belongs to the process that opened it. In a child forked after Open (e.g. a
// PyTorch DataLoader worker) every call fails at once with FailedPrecondition saying so.
//
// Errors: methods return Status / Result; nothing throws. NoSpace and IOError during a write
// leave every sealed object intact; the failed object stays unsealed and can be Abort()ed.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/export.h"
#include "shoal/options.h"
#include "shoal/result.h"
#include "shoal/stats.h"
#include "shoal/status.h"

namespace shoal {

inline constexpr uint64_t kUnknownSize = std::numeric_limits<uint64_t>::max();

struct CreateOptions {
  // Final size when known in advance. Writes past it are refused, Seal checks it was reached
  // (bytes never written read as zeros), and a chunk is flushed to disk as soon as it is fully
  // written. Default: unknown; the size is then the end of the furthest write.
  uint64_t size = kUnknownSize;
  // Chunk size for this object; 0 means Options::chunk_size. Power of two, 64 KiB .. 1 GiB.
  uint32_t chunk_size = 0;
  // In a world: the first replica of every chunk stays on this rank's member (further replicas
  // on other nodes as usual), so the writer reads it back from local disk only — the shape of a
  // checkpoint shard restored by the same rank. Default: chunks rotate over all members.
  bool local_first = false;
  // In a world: copies of this object's chunks, on distinct nodes where there are enough; 0 (the
  // default) means Options::replicas. 0..16; more than the world's members gives one per member.
  // The object's metadata keeps the world's count whatever this says. Repair (and the background
  // repair after a membership change) restores this count, not the world's: bytes that can be
  // made again elsewhere (a dataset cache's copy of a sample its source still has) take
  // replicas = 1, and an object whose only holder is lost is reported in RepairReport::lost.
  uint32_t replicas = 0;
};

struct ObjectInfo {
  std::string path;
  uint64_t size = 0;
  uint32_t chunk_size = 0;
  uint64_t num_chunks = 0;  // 0 for empty and inline objects
  bool is_inline = false;   // stored inside its metadata record
  int64_t seal_time_ns = 0; // wall clock at seal, nanoseconds since the Unix epoch
  uint32_t replicas = 0;    // copies of each chunk it was written with (0: inline or empty)
};

struct DirEntry {
  std::string name;     // one component, not the full path
  bool is_dir = false;
  uint64_t size = 0;    // object size in bytes; for a directory, its number of entries
};

struct ListOptions {
  // Return entries whose name sorts strictly after this one (byte order). Pass the previous
  // page's `next_start_after` to continue a listing.
  std::string start_after;
  // Entries per page, 1 .. 1,000,000. Default 10,000.
  uint32_t limit = 10000;
};

struct ListPage {
  std::vector<DirEntry> entries;  // sorted by name
  bool truncated = false;         // more entries follow
  std::string next_start_after;   // set when truncated
};

// What Engine::Repair did.
struct RepairReport {
  uint64_t objects = 0;          // sealed objects examined
  uint64_t chunks_copied = 0;    // chunk replicas rebuilt on live members
  uint64_t bytes_copied = 0;
  uint64_t metadata_copied = 0;  // records a new metadata owner merged in the background (docs/membership.md)
  std::vector<std::string> lost; // objects with a chunk no live member holds (unreadable)
};

// One read of a batch; see Engine::ReadBatch. `dst` is owned by the caller and must stay valid
// until ReadBatch returns.
struct ReadRequest {
  std::string path;
  uint64_t offset = 0;
  std::span<std::byte> dst;
  // Outputs.
  Status status;
  uint64_t bytes_read = 0;
};

// One object of a PutBatch. `data` is owned by the caller and must stay valid until PutBatch
// returns.
struct PutRequest {
  std::string path;
  std::span<const std::byte> data;
  // Output.
  Status status;
};
inline constexpr size_t kMaxPutBatch = 65536;

// An object of which this rank's store holds chunks (Engine::LocalObjects).
struct LocalObject {
  std::string path;
  uint64_t bytes = 0;  // the extent of its chunks held here
};

// This rank's store's file system (Engine::LocalSpace).
struct LocalSpace {
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;  // available to the store's process
};

// What Engine::TryLease found.
struct Lease {
  bool granted = false;  // the caller's holder holds the lease now
  uint64_t holder = 0;   // who holds it
  uint64_t age_ms = 0;   // since that holder took it
};

// One name of a StatBatch and its outcome.
struct StatRequest {
  std::string path;
  // Outputs.
  Status status;
  ObjectInfo info;
};

class SHOAL_EXPORT Engine {
 public:
  // Opens (or creates) the store in options.store_dir. Recovers from any earlier crash: space of
  // objects that were never sealed is returned to the file system. In a world, Open also joins
  // the other ranks and returns once all of them are reachable (PermissionDenied for a wrong
  // job token, Timeout when ranks are missing after join_timeout_ms).
  static Result<std::unique_ptr<Engine>> Open(const Options& options);

  // Waits for background I/O, closes files. Unsealed objects are discarded. In a world, this
  // member's chunks and metadata become unreachable: call Barrier() first so that no rank leaves
  // while others may still read from it (with replicas >= 2, readers fail over meanwhile).
  // In a process forked after Open, the destructor releases nothing (the threads and transport
  // state it would stop live only in the parent).
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Starts a new object. AlreadyExists if `path` names a sealed object, an object being written,
  // or a directory; InvalidArgument for a bad name or options.
  Status Create(std::string_view path, const CreateOptions& options = {});

  // Copies `data` into the object at `offset`. The caller's buffer may be reused on return: the
  // bytes are staged and written to disk in the background. Errors of background writes are
  // reported by a later Write or by Seal. FailedPrecondition if the object is not being written
  // (never created, sealed, aborted); InvalidArgument for a range that overlaps an earlier write
  // or passes the declared size.
  Status Write(std::string_view path, uint64_t offset, std::span<const std::byte> data);
  Status Write(std::string_view path, uint64_t offset, const void* data, size_t size) {
    return Write(path, offset, {static_cast<const std::byte*>(data), size});
  }

  // Makes the object durable and visible, then immutable. Returns once all chunks are on disk
  // and fsynced and the metadata transaction committed. On failure the object stays unsealed
  // (Abort it or retry Seal after freeing space).
  Status Seal(std::string_view path);

  // Discards an unsealed object and its staged bytes.
  Status Abort(std::string_view path);

  // Create + Write + Seal of a whole object.
  Status Put(std::string_view path, std::span<const std::byte> data,
             const CreateOptions& options = {});
  Status Put(std::string_view path, std::string_view data) {
    return Put(path, std::as_bytes(std::span<const char>(data.data(), data.size())));
  }

  // Put of many small objects (samples, labels, shards of a few KiB to a few MiB) at the cost
  // of a few: each member stores its part of the batch in one transaction with one fsync — the
  // chunks it holds in one write pass and one commit, the records it owns in one commit — so a
  // crash leaves, on each member, all of the batch's objects whose records it decides or none
  // of them. An object is visible only once its record is committed, and then with all of its
  // bytes; a request whose status is OK is durable and visible, as after Put.
  //
  // Each request gets its own status: AlreadyExists (the name is taken, or comes twice in the
  // batch: the later one), InvalidArgument (a bad name; an object larger than the chunk size:
  // Put those), or the error of a member that failed its part (its objects are not there; the
  // others are). `options` apply to every object; its `size` must be left unknown. The returned
  // Status is OK unless the batch as a whole could not run (more than kMaxPutBatch requests, bad
  // options).
  Status PutBatch(std::span<PutRequest> requests, const CreateOptions& options = {});

  // Reads up to dst.size() bytes at `offset` of a sealed object into `dst`; returns the count,
  // which is smaller only at the end of the object. InvalidArgument when offset > size. Every
  // chunk read is verified (CRC32C): a mismatch gives Corruption naming object and chunk and no
  // bytes of that chunk are returned as data. Reads of large ranges keep `queue_depth` chunk
  // I/Os in flight. Chunks are read into the engine's registered I/O buffers and copied out
  // after verification (measured faster than reading into caller memory, see
  // docs/architecture.md); `dst` needs no alignment.
  Result<uint64_t> Read(std::string_view path, uint64_t offset, std::span<std::byte> dst);

  // Reads many (typically small, sample-sized) ranges with queue_depth I/Os in flight. Each
  // request gets its own status and byte count; the returned Status is OK unless the batch as a
  // whole could not run. The order of completion is unspecified.
  Status ReadBatch(std::span<ReadRequest> requests);

  // Metadata of a sealed object. NotFound for a directory, an unsealed or an absent object.
  //
  // In a world, Stat is strict for this rank's own changes and for every rank's changes made
  // before a collective (Barrier, AllGather) this rank has since returned from; otherwise it may
  // lag other ranks' removes by up to Options::stat_lease_ms (default 1 s; 0 makes it strict):
  // a sealed object's metadata looked up at another member is kept that long, so after another
  // rank's Remove returns, Stat here may still report the object until the lease that began at
  // this rank's lookup runs out (and a new object made under the same name meanwhile may show
  // the old one's size). It never reports an object that was not sealed, and a Stat of a name
  // this rank removed or sealed itself asks again. Reads and Locate never use these entries: a read of a
  // removed object fails NotFound (holders refuse chunks of removed objects), it never returns
  // another object's bytes. NotFound is never cached: a name sealed by another rank is seen by
  // the next Stat once that Seal returned.
  Result<ObjectInfo> Stat(std::string_view path);

  // Stat of many names. In a world the names are grouped by metadata owner and each owner
  // answers its whole group in one call (from one read transaction), all owners in parallel;
  // entries within the lease come from this rank's cache as for Stat. Each request gets its own
  // status and info (the same as Stat would give); the returned Status is OK unless the batch as
  // a whole could not run.
  Status StatBatch(std::span<StatRequest> requests);

  // One page of a directory's entries with their sizes: readdir + getattr in one call, served
  // by a single range scan (in a world: one scan per member, in parallel, merged). NotFound if
  // `dir` is neither "" nor a directory. In a world a directory entry's size is a lower bound
  // of its entry count, and Unavailable is returned when so many members are unreachable
  // (>= replicas) that entries could be missing.
  Result<ListPage> List(std::string_view dir, const ListOptions& options = {});

  // Removes a sealed object; its disk space is returned to the file system. Directories vanish
  // with their last entry. Reads already in progress on the object complete first.
  Status Remove(std::string_view path);

  // Where a sealed object's chunks live: for chunk i, the live members (stores, numbered rank
  // 0's stores first, then rank 1's, ...: equal to ranks when each rank serves one store)
  // holding a replica, nearest first (this rank's own store, then this node, then others);
  // empty for a chunk never
  // written (it reads as zeros). Inline objects have no chunks. For locality-aware readers
  // (read what is local first) and tools. NotFound like Stat.
  Result<std::vector<std::vector<uint32_t>>> Locate(std::string_view path);

  // Restores the replica count of every object below `dir` ("" for all) after members were lost
  // (a node whose store is gone): chunks with fewer live replicas than the object was written
  // with (or than this world's replica count) are copied from a live replica to other members
  // (distinct nodes first); metadata needs no repair (every Open and new owners' catch-up merge it). Readers are served
  // meanwhile. Call it from one rank. An Open whose membership changed runs the same repair in the
  // background (WaitForRepair). Objects no live member can read are reported in `lost`, not an error. A
  // single member has nothing to repair.
  Result<RepairReport> Repair(std::string_view dir = "");

  // Waits up to `timeout_ms` for this rank's background work after Open to finish: new
  // metadata owners catching up with their shards (merged from the holders while those serve),
  // then, after an Open whose membership changed (docs/membership.md), the repair of the objects
  // whose metadata the rank is primary for, rate-limited by Options::repair_rate_mib_s, then the
  // drop of the metadata shard copies it no longer owns or holds (left out of listings till
  // then; after the Open that follows a join, the old holders' copies). Returns
  // its report (OK and empty when none ran); Timeout while it still runs; its first error
  // otherwise. With several stores served by this rank, their reports summed.
  // Call it on every rank (then Barrier) to know the whole world is repaired.
  Result<RepairReport> WaitForRepair(uint32_t timeout_ms = 600000);

  // The sealed objects below `dir` ("" for all) of which this rank's store holds chunks, with
  // the bytes held here, in no particular order: what a cache with a byte limit per member
  // counts (include/shoal/dataset.h), or a tool shows. One scan of the store's local records,
  // no round trip. Objects stored inline in their metadata hold no chunks and are not listed;
  // chunks left by a writer that died before its seal may be (until the background sweep
  // removes them: their paths are then NotFound). With several stores served by this rank,
  // its own store's.
  Result<std::vector<LocalObject>> LocalObjects(std::string_view dir = "");

  // Space of the file system under this rank's store (statvfs).
  Result<LocalSpace> GetLocalSpace();

  // Advisory leases on names, for ranks that want one of them to do a piece of work once (the
  // dataset cache's one source read per sample): a lease is held in the memory of the name's
  // primary metadata owner (the next live owner when it is down) — one round trip, nothing
  // written to disk. TryLease gives `holder` (any id but 0, e.g. rank and thread) the lease for
  // `ttl` when nobody else holds it (or the holder's ran out), renews the holder's own, and
  // otherwise says who holds it and for how long. ReleaseLease ends the holder's lease (nothing
  // when another holds it). Not a lock for correctness: an owner that restarts, or a new epoch
  // that moves the name's shard, forgets its leases, and ranks that disagree about which owner
  // is up may both be granted one. The name need not exist; it is checked as an object path.
  // ttl: 1 ms .. 24 h.
  Result<Lease> TryLease(std::string_view name, uint64_t holder, std::chrono::milliseconds ttl);
  Status ReleaseLease(std::string_view name, uint64_t holder);

  // "io_uring" or "posix": the backend chosen at Open.
  std::string_view io_backend() const;

  // This rank and the job's number of ranks (0 and 1 for a process alone). A rank may serve
  // several stores (Options::serve_node_stores); these count ranks, not stores.
  uint32_t rank() const;
  uint32_t world_size() const;

  // Collectives over the engine's own transport, for the coordination a job needs (e.g. "every
  // rank sealed its shard"). Every rank must call them in the same order; one at a time per
  // rank. Timeout when a rank does not arrive within Options::join_timeout_ms.
  Status Barrier();
  // Every rank's `mine` (up to 1 MiB each), in rank order.
  Result<std::vector<std::vector<std::byte>>> AllGather(std::span<const std::byte> mine);

  // This member's counters and latency histograms since Open (include/shoal/stats.h,
  // docs/metrics.md): operations and bytes by call, errors by code, remote calls by protocol op,
  // failovers, repair progress. Cheap to record (relaxed atomic adds); a snapshot per call.
  Stats GetStats() const;
  // The port this rank serves its metrics on in the Prometheus text format (GET /metrics;
  // Options::metrics_listen), or 0 when it serves none.
  uint16_t metrics_port() const;

  class Impl;  // lib/engine_impl.h
  // For shoal's own layers (lib/: the checkpointer, the dataset cache): the implementation,
  // whose type is not installed. Not for applications.
  Impl& internal() const { return *impl_; }

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal
