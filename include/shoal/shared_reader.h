// Reads for other processes of the host through shared memory: a rank's DataLoader workers
// (forked or spawned), or any process given the ring's name and the job token.
//
//   rank process                              worker process
//   SharedReadServer::Start(engine) -------> name + token (pickled, inherited, passed along)
//                                            SharedReader::Attach(name, token)
//     a thread per channel <- request ring -  reader->ReadBatch(items)
//     engine / dataset cache read straight    -> PoolBuffers: spans into the shared pool
//     into the channel's part of the pool ->  reader->Release(buffers) when done (a tensor's
//                                             deleter in Python)
//
// Layout and rules (lib/shared_ring.h): one shared-memory segment (Boost.Interprocess, mode
// 0600, a random name) holds a header, `channels` channels and the buffer pool, cut into one
// part per channel. A reader claims a free channel (an atomic compare-and-swap of its pid) and
// is the only producer of its request ring and the only consumer of its reply ring; the
// channel's server thread is the other end of both, and the only one that allocates or frees in
// the channel's pool part (a reader's release is a message). No lock is shared between
// processes: a reader or a server killed at any instant blocks no one else. The server watches
// each reader's pid (a pidfd): when it exits, killed or not, its channel's rings and pool part
// are reclaimed (its buffers with them). A reader watches the server's pid the same way: the
// rank exiting (or Stop) fails its waiting and later calls with Unavailable. The segment's name
// is removed at Stop; a rank killed before leaves it in /dev/shm (shoal-<pid>-<hex>), and the
// next server started on the host removes those whose pid is gone.
//
// Sizing the pool: a reader's buffers stay leased until released, and a request waits until
// its channel's part has room for all its items (backpressure). A worker that holds one batch
// of B samples of at most S bytes while the next is read needs a part of at least 2 * B * S
// (rounded up to 4 KiB per sample); a request larger than a whole part fails InvalidArgument
// with the sizes in the message. pool_bytes = channels * part.
//
// Threads: a SharedReader is used by one process; its calls are thread-safe. After fork the
// child must Attach again (calls through an inherited reader fail FailedPrecondition; releases
// through it do nothing, so the parent's buffers are not touched).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "shoal/export.h"
#include "shoal/result.h"
#include "shoal/status.h"

namespace shoal {

class Engine;
class DatasetCache;

struct SharedReadOptions {
  uint32_t channels = 16;              // readers at once (DataLoader workers): 1..256
  uint64_t part_bytes = 64ull << 20;   // pool bytes per channel (see "Sizing the pool")
  uint32_t ring_bytes = 1u << 20;      // each of a channel's two message rings
  std::string token;                   // the job token readers must give; random when empty
};

// Serves readers until destroyed (or Stop). Owns the segment; the engine and every dataset
// registered must outlive it.
class SHOAL_EXPORT SharedReadServer {
 public:
  static Result<std::unique_ptr<SharedReadServer>> Start(Engine& engine,
                                                         const SharedReadOptions& options = {});
  ~SharedReadServer();
  SharedReadServer(const SharedReadServer&) = delete;
  SharedReadServer& operator=(const SharedReadServer&) = delete;

  const std::string& name() const;   // the segment's name (to Attach)
  const std::string& token() const;  // the token readers must give

  // Makes `cache` readable by its returned id (ReadItem::dataset). The cache must stay open
  // while the server runs or until Unregister.
  uint32_t Register(DatasetCache* cache);
  void Unregister(uint32_t id);

  // Channels in use, requests served, buffers reclaimed from exited readers (for tests, stats).
  struct Counters {
    uint32_t attached = 0;
    uint64_t requests = 0;
    uint64_t items = 0;
    uint64_t reclaimed_readers = 0;
    uint64_t reclaimed_bytes = 0;
    uint64_t leased_bytes = 0;  // now, over every channel
  };
  Counters counters() const;

  // Refuses new requests, fails waiting readers with Unavailable, joins the threads and removes
  // the segment's name (mappings already made stay valid). Idempotent.
  void Stop();

  class Impl;

 private:
  explicit SharedReadServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One thing to read: a byte range of an object, or a sample of a registered dataset cache.
struct ReadItem {
  std::string path;       // an object (when dataset == 0)
  uint32_t dataset = 0;   // a registered cache's id; then `index` is the sample
  uint64_t index = 0;
  uint64_t offset = 0;    // objects only
  uint64_t size = 0;      // objects: bytes to read from offset; 0 = to the end
};

// A leased buffer of the pool with a read's bytes (or the read's error).
struct PoolBuffer {
  Status status;
  uint64_t pool_offset = 0;  // identifies the lease (Release)
  std::span<std::byte> bytes;
};

class SHOAL_EXPORT SharedReader {
 public:
  // PermissionDenied for a wrong token (or a segment not ours), NotFound for no such segment,
  // Unavailable when every channel is taken or the server stopped.
  static Result<std::shared_ptr<SharedReader>> Attach(const std::string& name,
                                                      const std::string& token);
  ~SharedReader();  // releases the channel (its buffers stay mapped but are reclaimed)
  SharedReader(const SharedReader&) = delete;
  SharedReader& operator=(const SharedReader&) = delete;

  // Reads `items` (at most 4,096; their paths at most ring_bytes/4 in all) into leased pool
  // buffers, one per item in order, each with its own status. Blocks until the channel's part
  // has room. The returned Status fails only when the request could not run (server gone,
  // request too large for the part or the ring, reader forked).
  Result<std::vector<PoolBuffer>> ReadBatch(std::span<const ReadItem> items);
  // Returns buffers' leases (pool_offset of a PoolBuffer with bytes). Releases are gathered
  // and sent with the next ReadBatch, when 256 gather, at Flush, or at once while a ReadBatch
  // waits for room. A no-op in a forked child; safe after the server stopped.
  void Release(std::span<const uint64_t> pool_offsets);
  void Flush();

  uint32_t channel() const;
  std::span<std::byte> pool() const;  // the whole pool as mapped here (tests: zero copies)

  class Impl;

 private:
  explicit SharedReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal
