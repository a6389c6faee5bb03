// A dataset cache across the ranks of a world: every sample read once from slow storage (the
// source), then served from the ranks' disks (issue 14; docs/dataset.md).
//
// A DatasetSource lists and reads samples by name: a directory tree (DirectorySource: local
// disk or any mounted file system) or the caller's functions (CallbackSource: an object store,
// Python). DatasetCache::Open builds an index of the dataset (names, sizes, a version per
// sample) once per world, listing the source in parallel (rank r lists part r of N), and keeps
// it in shoal: a later Open, by this job or a restarted one of any world size, lists nothing at
// the source. The index is a snapshot: Refresh lists again. Samples are indexed 0..size()-1 in
// name order, the same on every rank.
//
// Reads by index or name land in caller buffers. A miss reads the sample from the source once —
// concurrent misses of one sample from threads of any ranks become one source read (the first
// to create its cache object reads; the others wait for it to be sealed) — and stores it in the
// world (placement by name over the members, as any object; the bytes are disposable: the
// source is their backup). A cached sample whose copy cannot be read (its holder down, a
// damaged chunk) is read from the source again and cached anew, never reported lost.
//
// Versions: a sample's version (DirectorySource: size and mtime) is part of its cache object's
// name. On a miss the source is asked for the sample's current version before it is read: a
// changed sample is read and cached under its new version, and the index here follows it. A hit
// is served without asking the source (that is the cache's point); Refresh, or
// DatasetOptions::verify_on_hit, makes changes seen before the next load.
//
// Thread-safety: every method may be called from any number of threads; Open, Refresh and Warm
// are collective (every rank calls them, in the same order as its other collectives).
// Errors: a sample the source lacks is NotFound naming it; a source that fails gives that
// sample its error (with the name) and leaves the cache consistent (no partial object is ever
// visible: a cache object is sealed whole or aborted).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/export.h"
#include "shoal/result.h"
#include "shoal/status.h"

namespace shoal {

class Engine;

struct SampleInfo {
  std::string name;     // unique within the dataset; '/' separates directories
  uint64_t size = 0;    // bytes
  std::string version;  // opaque; equal versions mean equal bytes
};

// Where samples come from. Implementations must be thread-safe: the cache calls them from any
// thread, several at once.
class SHOAL_EXPORT DatasetSource {
 public:
  virtual ~DatasetSource() = default;
  // Part `part` of `parts` of the dataset: every sample in exactly one part, the same split on
  // every rank. Order within a part does not matter.
  virtual Result<std::vector<SampleInfo>> List(uint32_t part, uint32_t parts) = 0;
  // The sample's current size and version; NotFound when it is gone.
  virtual Result<SampleInfo> Stat(std::string_view name) = 0;
  // Reads the sample from its start into `dst` (dst.size() >= its size); returns the bytes
  // read. NotFound when it is gone.
  virtual Result<uint64_t> Read(std::string_view name, std::span<std::byte> dst) = 0;
};

// A directory tree: every regular file under `root` (symbolic links to files followed, to
// directories not) is a sample named by its path relative to `root`; version = size and
// modification time in nanoseconds. The top-level entries are split over the parts by a hash
// of their names, so each rank walks its own subtrees.
SHOAL_EXPORT std::shared_ptr<DatasetSource> DirectorySource(std::string root);

// The caller's functions, for any other store (and Python). `list` as DatasetSource::List.
struct CallbackSourceFns {
  std::function<Result<std::vector<SampleInfo>>(uint32_t part, uint32_t parts)> list;
  std::function<Result<SampleInfo>(std::string_view name)> stat;
  std::function<Result<uint64_t>(std::string_view name, std::span<std::byte> dst)> read;
};
SHOAL_EXPORT std::shared_ptr<DatasetSource> CallbackSource(CallbackSourceFns fns);

struct DatasetOptions {
  // Where the dataset's index and cached samples live in the world (a directory name). Two
  // datasets must not share it.
  std::string root = "datasets/default";
  // List the source even when an index is kept (Open then does what Refresh does).
  bool refresh = false;
  // Ask the source for the sample's version on every read, hits too: a changed sample is never
  // served, at a source round trip per read.
  bool verify_on_hit = false;
  // How long a miss waits for another rank or thread that is reading the same sample from the
  // source before it reads the source itself (the other may have died).
  std::chrono::milliseconds fetch_wait{30000};
  // Warm: samples read from the source at once per rank.
  uint32_t warm_threads = 8;
  // Copies of each cached sample's bytes (CreateOptions::replicas): 1 by default, since the
  // source is the backup (a sample whose holder is lost is read from the source again); 0: the
  // world's count. The index and all metadata keep the world's count.
  uint32_t replicas = 1;
  // Bytes of cached samples this rank's member may hold (0: no limit but the reserve). A sample
  // is cached on the member of the rank that loads it; past the limit that rank evicts the
  // least recently used samples its member holds (never a pinned one) or, when only pinned
  // ones are left, serves the sample without caching it. A later job finds what its members
  // hold and trims it to its limit at Open. docs/dataset.md says why LRU.
  uint64_t capacity_bytes = 0;
  // Free bytes the cache leaves on the file system under this rank's store for checkpoints and
  // every other object: loading a sample that would eat into them evicts cached samples first
  // or is not cached. 0: a twentieth of that file system, at most 1 GiB.
  uint64_t reserve_bytes = 0;
  // The memory tier: up to this many bytes of samples kept in this process (LRU; samples above
  // an eighth of it are not kept), so a warm epoch that fits is served by a memcpy. 0: none.
  uint64_t memory_bytes = 0;
};

struct DatasetStats {
  uint64_t hits = 0;             // reads served from the cache (memory tier included)
  uint64_t memory_hits = 0;      // of which from the memory tier
  uint64_t memory_bytes = 0;     // bytes the memory tier holds now
  uint64_t misses = 0;           // reads that found no cached copy
  uint64_t source_reads = 0;     // samples read from the source (by this rank)
  uint64_t source_bytes = 0;
  double source_seconds = 0;     // summed over source reads
  uint64_t waited = 0;           // misses served by another reader's fetch
  uint64_t version_changes = 0;  // samples found changed at the source
  uint64_t refetched = 0;        // cached copies unreadable (holder down, damage): read again
  uint64_t uncached = 0;         // served from the source without being cached (a cache error,
                                 // or no room: not_admitted)
  // This rank's member's disk budget (DatasetOptions::capacity_bytes, reserve_bytes).
  uint64_t not_admitted = 0;     // loads not cached for want of room (only pinned samples left)
  uint64_t evictions = 0;        // cached samples removed to make room
  uint64_t disk_bytes = 0;       // bytes of cached samples this member holds
  uint64_t disk_samples = 0;
  uint64_t capacity_bytes = 0;   // the limit (0: none)
  uint64_t reserve_bytes = 0;    // the free space kept
};

// One read of a batch: by index (or by name when `name` is set); `dst` must hold the sample.
struct SampleRead {
  uint64_t index = 0;
  std::string_view name;
  std::span<std::byte> dst;
  Status status;        // out
  uint64_t bytes = 0;   // out: the sample's size
};

class SHOAL_EXPORT DatasetCache {
 public:
  // Collective. Loads the kept index of `options.root`, or builds it (every rank lists its part
  // of `source`) when there is none or options.refresh. The engine must outlive the cache.
  static Result<std::unique_ptr<DatasetCache>> Open(Engine& engine,
                                                    std::shared_ptr<DatasetSource> source,
                                                    const DatasetOptions& options = {});
  ~DatasetCache();
  DatasetCache(const DatasetCache&) = delete;
  DatasetCache& operator=(const DatasetCache&) = delete;

  uint64_t size() const;                      // samples in the index
  Result<SampleInfo> info(uint64_t index) const;       // InvalidArgument past the end
  Result<uint64_t> Find(std::string_view name) const;  // its index; NotFound
  uint64_t generation() const;                // of the index in use (Refresh makes a new one)

  // Reads sample `index` (or `name`) into dst; returns its size. InvalidArgument when dst is
  // smaller than the sample (its size is in the message and in info()).
  Result<uint64_t> Read(uint64_t index, std::span<std::byte> dst);
  Result<uint64_t> Read(std::string_view name, std::span<std::byte> dst);
  // Many reads: cached ones in one engine batch, misses in parallel. Each gets its own status.
  Status ReadBatch(std::span<SampleRead> reads);

  // Collective: every rank reads from the source the samples it owns (a hash of the name picks
  // the rank) among `indices` (all when empty) that are not cached yet, warm_threads at once;
  // `progress(done, total)` is called as they complete (from any thread). Returns when every
  // rank is done; the first error of this rank's loads, if any.
  Status Warm(std::span<const uint64_t> indices = {},
              std::function<void(uint64_t done, uint64_t total)> progress = {});

  // The samples (indices, ascending) whose cached copy this rank's member holds: what this
  // rank reads without a round trip (a locality-aware sampler reads them first). From this
  // rank's disk budget: what its member held at Open and what this rank cached since.
  std::vector<uint64_t> HeldHere() const;

  // For every sample (by index), the rank of this world that Warm has load it (a hash of its
  // name and the world size): after a warm-up in this world, whose member holds it. The same
  // on every rank, so a sampler can deal samples to their holders without a collective
  // (shoal.data's DistributedSampler(locality=True)).
  std::vector<uint32_t> LoaderRanks() const;

  // Pins samples (by index) on this rank: the copies its member holds, now or once loaded, are
  // never evicted; `pin` false unpins them. Pinned samples count against the capacity.
  Status Pin(std::span<const uint64_t> indices, bool pin = true);

  // Collective: lists the source again and keeps the new index (a new generation); cached
  // samples whose version did not change stay cached.
  Status Refresh();

  DatasetStats stats() const;

  class Impl;

 private:
  explicit DatasetCache(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal
