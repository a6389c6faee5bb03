// Options: how one shoal member stores data. Every field states its default and the trade-off it
// controls. Options are read once by Engine::Open; changing them afterwards has no effect.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/export.h"
#include "shoal/status.h"

#include "shoal/result.h"

namespace shoal {

// An all-gather the caller already has (e.g. built on torch.distributed): every rank passes its
// bytes and gets every rank's bytes back, in rank order.
using AllGatherFn =
    std::function<Result<std::vector<std::vector<std::byte>>>(const std::vector<std::byte>&)>;

inline constexpr uint32_t kFromLauncher = 0xFFFFFFFFu;
inline constexpr uint32_t kDefaultJoinTimeoutMs = 120000;

// Which kernel interface moves chunk bytes between memory and the store's files.
enum class IoBackend : uint8_t {
  // io_uring when it can be set up (queue, registered buffers), else pread/pwrite. The choice is
  // logged at Open and readable from Engine::io_backend().
  kAuto = 0,
  // io_uring only: Open fails with Unavailable when the kernel or a seccomp policy (common in
  // containers) refuses io_uring_setup.
  kIoUring = 1,
  // pread/pwrite from a pool of `queue_depth` I/O threads. Always available.
  kPosix = 2,
};

struct Options {
  // Directory holding this member's chunk segments and metadata (created 0700 if missing and
  // `create_if_missing`, with missing parents). Required. "{rank}", "{local_rank}" and "{node}"
  // in it are replaced at Open by this member's rank, local rank and node (from these options or
  // the launcher), so every rank of a job can be given the same setting
  // ("/nvme/shoal/{rank}"). One Engine at a time may open it: a second Open, from this or
  // another process, fails with PermissionDenied.
  std::string store_dir;

  // Stores are members of the world, not ranks. When store_dir names stores by "{local_rank}"
  // and the launcher says how many ranks this node runs (LOCAL_WORLD_SIZE, Open MPI's
  // OMPI_COMM_WORLD_LOCAL_SIZE or SHOAL_LOCAL_WORLD_SIZE; a process without a launcher is one
  // rank on its node), a rank also serves the node's existing stores that no rank of this job
  // opens: local rank l of L opens store_dir with {local_rank} = l, l + L, l + 2L, ... (below
  // 256) wherever a store exists there. A job restarted with fewer ranks on the same nodes so
  // serves every store the larger one wrote (docs/membership.md). False: only store_dir.
  bool serve_node_stores = true;

  // Create store_dir and an empty store when absent. Default true. When false, Open of a
  // directory without a store fails with NotFound.
  bool create_if_missing = true;

  // Default chunk size in bytes for new objects (power of two, 64 KiB .. 1 GiB). A chunk is the
  // unit of placement, checksumming and disk I/O. Default 4 MiB, chosen by a sweep of 1, 4 and
  // 16 MiB with shoal-bench (docs/bench.md, "Chunk size"): 4 MiB wrote fastest, all three read
  // at the raw device's rate, 16 MiB gained nothing. Smaller chunks spread one object over more
  // members (issue 3) but cost more metadata per byte; a small read of a big chunk reads and
  // checksums the whole chunk. Per-object override: CreateOptions::chunk_size.
  uint32_t chunk_size = 4u << 20;

  // I/O backend, see IoBackend. Default kAuto.
  IoBackend io_backend = IoBackend::kAuto;

  // Maximum chunk I/Os in flight per engine (io_uring queue entries, or POSIX I/O threads).
  // 1 .. 1024, default 16. Higher values help devices with deep internal parallelism (NVMe) at
  // the cost of queue_depth x chunk_size bytes of pinned staging memory.
  uint32_t queue_depth = 16;

  // Open chunk files with O_DIRECT (no page cache). Default true: a training job's checkpoints
  // would otherwise evict its dataset from the page cache, and reads would measure memory, not
  // disk. When the file system refuses O_DIRECT (tmpfs), shoal falls back to buffered I/O with
  // fdatasync and logs it.
  bool direct_io = true;

  // Objects of at most this many bytes are stored inside their metadata record (one LMDB write,
  // no chunk I/O, no 4 KiB block on disk). 0 .. 65536, default 2048. Many-small-file datasets
  // (labels, captions, JSON) benefit; larger values grow the metadata shard.
  uint32_t inline_threshold = 2048;

  // Chunks are appended to segment files of at most this size (power of two multiple of 1 MiB,
  // 64 MiB .. 64 GiB). Default 1 GiB. A segment whose chunks all were removed is deleted; space
  // of removed chunks inside live segments is returned to the file system at once (hole punch).
  uint64_t segment_size = 1ull << 30;

  // Upper bound of the LMDB metadata map (virtual address space; the file grows only as used).
  // Default 64 GiB, roughly 200 million small objects. Exceeding it fails writes with NoSpace.
  uint64_t metadata_map_size = 64ull << 30;

  // ---- The world: the ranks of a job as one storage system (docs/bootstrap.md) ----
  // With a world size of 1 (the default when no launcher variables are set) the engine is a
  // single member and uses no network at all.

  // This rank and the number of ranks. Default: from the launcher's environment (torchrun's
  // RANK / WORLD_SIZE, Open MPI's OMPI_COMM_WORLD_*, or SHOAL_RANK / SHOAL_WORLD_SIZE).
  uint32_t rank = kFromLauncher;
  uint32_t world_size = 0;  // 0: from the launcher

  // Failure domain of this member. Default: SHOAL_NODE, else the host name. Replicas go to
  // distinct nodes; give each process its own node name to make one machine act as several.
  std::string node;

  // How the ranks find each other. Default "": TCP hosted inside rank 0's process at
  // MASTER_ADDR (SHOAL_MASTER_ADDR) on port SHOAL_RENDEZVOUS_PORT, else MASTER_PORT + 1.
  // "tcp:HOST:PORT" names it explicitly; "file:DIR" uses a directory every rank can see (tests,
  // shared file systems; use a fresh one per job start). SHOAL_RENDEZVOUS sets it too.
  std::string rendezvous;

  // When set, used instead of `rendezvous`: the caller's own all-gather.
  AllGatherFn allgather;

  // Secret shared by the ranks of one job (default: SHOAL_TOKEN). Required when world_size > 1.
  // Ranks prove they hold it without sending it; a rank without it is refused.
  std::string token;

  // Copies of every chunk and every inode, on distinct nodes where there are enough. 1 .. world
  // size, default 2: a job survives losing any one node with its disk. 1 gives the full write
  // bandwidth of every disk but loses what lived on a failed node.
  uint32_t replicas = 2;

  // Chunk requests in flight per Write/Read call (bounded window). Default 16.
  uint32_t window = 16;

  // How long Open waits for every rank to join, in milliseconds. 0 (the default): from
  // SHOAL_JOIN_TIMEOUT_MS, else kDefaultJoinTimeoutMs (120 s). Shorter fails a job with a missing
  // rank sooner (the error names the missing ranks); longer tolerates ranks that start late.
  uint32_t join_timeout_ms = 0;
  // Each request's deadline, in milliseconds.
  uint32_t request_timeout_ms = 30000;

  // After an Open whose membership changed (a member joined, returned, is down or was declared
  // lost), every member repairs in the background the objects whose metadata it is primary for,
  // copying at most this many MiB of chunk replicas per second (Engine::WaitForRepair waits for
  // it). 0: no background repair (Engine::Repair only). Default 256.
  uint32_t repair_rate_mib_s = 256;
  // Objects that background repair works on at once, each member (their round trips overlap;
  // repair_rate_mib_s bounds all of them together). 1..256; default 8.
  uint32_t repair_parallelism = 8;
  // In a world: Stat and StatBatch may answer from the metadata of sealed objects this rank
  // looked up at another member within the last this-many milliseconds (Engine::Stat's
  // contract). 0: every Stat asks the owner. Objects whose metadata this rank holds are always
  // looked up, as are every Read's and Locate's. 0 .. 3600000; default 1000.
  uint32_t stat_lease_ms = 1000;
  // The sealed objects' metadata kept for stat_lease_ms (entries; a full cache forgets a part
  // of itself). An entry costs about 175 bytes plus its name (219 bytes measured with 43-byte
  // names: ~57 MB when full). Default 262,144.
  uint32_t stat_cache_entries = 1u << 18;
  // The background scrub re-reads this rank's stored chunks, checking their CRC32C, at most
  // this many MiB per second, after every Open; a damaged chunk is dropped and copied again
  // from a replica. 0: no scrub. Default 16.
  uint32_t scrub_rate_mib_s = 16;

  // Stores of the world's last epoch that will never come back (their member ids, as Open's
  // error names them), declared lost at this Open; SHOAL_LOST_MEMBERS (comma-separated) adds to
  // it. Open of a world needs a strict majority of the last epoch's members and, for every
  // metadata shard, a present store with its current copy (docs/membership.md); declaring the
  // absent ones lost lifts that, their shards and replicas are rebuilt on the others, and their
  // stores are refused for ever after. A decision with consequences: what only they held is
  // gone.
  std::vector<std::string> lost_members;

  // ---- Operations ----
  // Serve this rank's metrics (Engine::GetStats) in the Prometheus text format at
  // http://HOST:PORT+l/metrics, l being the rank's local rank on its node (so the ranks of one
  // node listen on consecutive ports). "HOST:PORT", "[V6]:PORT", ":PORT" (127.0.0.1); PORT 0
  // takes any free port (Engine::metrics_port says which). Default "" (or SHOAL_METRICS_LISTEN):
  // no endpoint. Open fails with IOError when the port is taken. Read-only: a scrape cannot
  // change anything; bind to 127.0.0.1 unless the network is trusted (docs/metrics.md).
  std::string metrics_listen;
};

// Options by name: the one list of the settable fields, for every front end (the Python
// module's keyword arguments, the shoal CLI's --option NAME=VALUE, shoal-bench). `allgather`
// (a function) is not among them. Values are text: bools "true"/"false"/"1"/"0"; integers in
// decimal; lists comma-separated; io_backend "auto", "io_uring" or "posix".
enum class OptionKind : uint8_t { kBool, kUint32, kUint64, kString, kStringList, kIoBackend };
struct OptionField {
  const char* name;
  OptionKind kind;
};
SHOAL_EXPORT std::vector<OptionField> OptionFields();
// Sets field `name` from `value`. InvalidArgument naming the option for an unknown name (with
// the known ones) or text that does not parse as the field's kind; ranges are ValidateOptions'.
SHOAL_EXPORT Status SetOption(Options* options, std::string_view name, std::string_view value);
// The text of field `name` in `options` (its default in a default-constructed Options).
SHOAL_EXPORT Result<std::string> GetOption(const Options& options, std::string_view name);

// The one check of a set of Options (Engine::Open runs it; the Python module too, before it
// opens anything): InvalidArgument naming the first option out of its documented range.
SHOAL_EXPORT Status ValidateOptions(const Options& options);

}  // namespace shoal
