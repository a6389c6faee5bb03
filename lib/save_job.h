// SaveJob: one rank's save of one checkpoint tag in progress, from Checkpointer::Begin to the
// end of its commit, shared by the CheckpointSave the caller holds and (async) the background
// writer.
//
// Sync mode: Save writes and seals each blob on the caller's thread; Commit runs the commit
// protocol on it. Async mode: Save copies the caller's bytes into the staging pool and queues
// writes; one background thread (`worker`, running Work) writes, seals and finally commits.
// The parts live by concern: the background writer in checkpoint_async.cc, the commit protocol
// in checkpoint_commit.cc, the caller's side in checkpoint.cc.
//
// Thread-safety: `mu` guards the queue, `draining`, `committed`, `error`, `names`, `blobs` and
// `crc`; the other fields are set by Begin before any thread shares the job and never change.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "lib/manifest.h"
#include "lib/staging_pool.h"
#include "shoal/checkpoint.h"
#include "shoal/engine.h"

namespace shoal {

// The shared outcome behind every copy of a SaveHandle: set once, by Finish.
struct SaveHandle::State {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Status status;
  std::chrono::nanoseconds duration{0};

  void Finish(Status s, std::chrono::nanoseconds d) {
    std::lock_guard lk(mu);
    status = std::move(s);
    duration = d;
    done = true;
    cv.notify_all();
  }
};

struct SaveJob {
  struct Item {
    enum Kind { kWrite, kSeal, kCommit, kStop } kind = kWrite;
    std::string path;  // kWrite, kSeal
    std::string name;  // kSeal: the blob's name
    uint64_t offset = 0;  // kWrite; kSeal: the blob's size
    std::span<std::byte> bytes;  // kWrite: a staging pool region
    std::string metadata;        // kCommit

    static Item Stop() { return Item{}.As(kStop); }
    static Item Commit(std::string_view meta) {
      Item i = Item{}.As(kCommit);
      i.metadata = std::string(meta);
      return i;
    }
    static Item Seal(const std::string& path, std::string_view name, uint64_t size) {
      Item i = Item{}.As(kSeal);
      i.path = path;
      i.name = std::string(name);
      i.offset = size;
      return i;
    }
    static Item Write(const std::string& path, uint64_t offset, std::span<std::byte> bytes) {
      Item i = Item{}.As(kWrite);
      i.path = path;
      i.offset = offset;
      i.bytes = bytes;
      return i;
    }
    Item As(Kind k) && {
      kind = k;
      return std::move(*this);
    }
  };

  Engine* engine = nullptr;
  std::string root;
  std::string tag;
  bool async = false;
  StagingPool* pool = nullptr;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Item> queue;
  // The writer starts once the caller is done copying (Commit) or the pool is full: until then
  // it would only take CPU and memory bandwidth from the copies the caller waits for.
  bool draining = false;
  bool committed = false;  // Commit was called
  Status error;            // the first failure of this rank's saves
  std::set<std::string, std::less<>> names;
  std::vector<BlobInfo> blobs;  // sealed
  std::map<std::string, uint32_t> crc;  // async: running CRC32C of blobs being written
  std::shared_ptr<SaveHandle::State> handle = std::make_shared<SaveHandle::State>();
  std::thread worker;
  std::function<void()> after_publish;  // rank 0: retention

  std::string BlobPath(std::string_view name) const { return shoal::BlobPath(root, tag, name); }

  void Fail(const Status& s) {
    std::lock_guard lk(mu);
    if (error.ok()) error = s;
  }

  void Push(Item item) {
    std::lock_guard lk(mu);
    if (item.kind == Item::kCommit || item.kind == Item::kStop) draining = true;
    queue.push_back(std::move(item));
    cv.notify_all();
  }

  void Drain() {
    std::lock_guard lk(mu);
    draining = true;
    cv.notify_all();
  }

  // Async (checkpoint_async.cc). The background writer: runs the queue until a kCommit (then
  // commits and finishes `handle`) or a kStop. Write and seal failures go to `error`.
  void Work();
  // Async: queues blob `name` at `path`, already created with `size` bytes, copied from
  // `pieces` into the staging pool slice by slice (blocks while the pool is full).
  void Stage(const std::string& path, std::string_view name, uint64_t size,
             std::span<const std::span<const std::byte>> pieces);
  // Async: stops the writer without committing and aborts the blobs whose seal never ran.
  void StopWriter();

  // Collective (checkpoint_commit.cc): gathers every rank's blob list, rank 0 publishes the
  // manifest when every rank succeeded, and every rank returns rank 0's verdict.
  Status Commit(std::string_view metadata);
  // Commit, then the handle finished with its outcome; records the phases in the engine's
  // metrics: checkpoint.commit.latency_ns (the collective commit), checkpoint.save.latency_ns
  // (Begin to committed), checkpoint.saves / checkpoint.save_errors.
  void CommitAndFinish(std::string_view metadata);
  // An abandoned save: this rank's sealed blobs removed (StopWriter aborted the open ones).
  void Discard();
};

}  // namespace shoal
