// Checkpointer: collective checkpoints of a job, on top of the Engine's object API.
//
// A checkpoint is a tag ("step-1200"). Every rank saves any number of named blobs (its model
// shard, its optimizer state, a small JSON) from its own buffers; Commit is collective and
// publishes the tag atomically with a manifest: every blob, its size, its CRC32C, the rank that
// wrote it, and the caller's metadata. Any rank of any later job on the same stores (any world
// size, ranks permuted) can list the committed tags and load any blob of any of them.
//
// Layout in the engine's namespace, below CheckpointOptions::root:
//   <root>/data/<tag>/<blob name>        the blobs, one object each
//   <root>/commits/<seq>.<tag>           the manifest (JSON); its existence is the commit
// A tag is committed exactly when its manifest object is sealed. Sealing one object is atomic
// (engine.h), so a rank killed at any instant leaves either the previous state or the new tag
// fully published, never a torn tag that is listed; data of a tag without a manifest is
// collected (CollectAbandoned; Begin does it on rank 0). `seq` is 1 + the largest sequence
// committed before, so Latest() is the last manifest in listing order.
//
// Async save: in CheckpointOptions::async mode, Save copies the caller's bytes into a staging
// pool of `staging_bytes` and returns (blocking only while the pool is full); a background
// thread writes them. Commit then returns at once with a SaveHandle; the background thread
// finishes the writes and runs the collective commit. The next Begin waits for it. Memory never
// grows past the pool.
//
// Collectives: Begin and Commit are collective (every rank calls them, in the same order, with
// the same tag). They use Engine::AllGather/Barrier; while an async commit is in flight those
// belong to the checkpointer's thread: the caller must not call Engine::Barrier/AllGather until
// SaveHandle::Wait returned (other Engine calls are fine).
//
// Thread-safety: one CheckpointSave is used by one thread at a time; the read side (Latest,
// List, GetManifest, Load, Read) may be called from any thread.
//
// Errors: Status/Result, nothing throws. Bad tags and blob names: InvalidArgument. A tag that
// is already committed: AlreadyExists at Begin. An uncommitted or unknown tag: NotFound. A blob
// whose bytes do not match the manifest's CRC32C: Corruption. A Commit whose outcome this rank
// cannot know: Timeout (see CheckpointSave::Commit).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/engine.h"
#include "shoal/export.h"
#include "shoal/result.h"
#include "shoal/status.h"

namespace shoal {

struct CheckpointOptions {
  // Directory of the engine's namespace that holds every tag of this job.
  std::string root = "checkpoints";
  // Save in the background: Save copies into the staging pool, Commit returns a handle.
  bool async = false;
  // Size of the staging pool (async mode), >= 1 MiB. Allocated at the first async save.
  uint64_t staging_bytes = 1ull << 30;
  // After each commit, and at each Begin before anything is saved, rank 0 deletes committed
  // tags older than the newest `keep_last` (0 keeps every tag): their manifests first, then
  // their blobs. So at most keep_last + 1 tags are listed at any instant, whatever is killed
  // when (keep_last + 1 between a publish and its retention); Begin fails when it cannot
  // remove the excess.
  uint32_t keep_last = 0;
  // Verify every blob against the manifest's CRC32C on Load (chunk CRCs are checked always).
  bool verify_on_load = true;
};

struct BlobInfo {
  std::string name;
  uint64_t size = 0;
  uint32_t crc32c = 0;
  uint32_t rank = 0;  // the rank that saved it
};

struct SHOAL_EXPORT CheckpointManifest {
  std::string tag;
  uint64_t sequence = 0;       // commit order: 1, 2, ...
  int64_t commit_time_ns = 0;  // wall clock at commit, since the Unix epoch
  uint32_t world_size = 0;     // of the job that saved it
  std::string metadata;        // the caller's, verbatim
  std::vector<BlobInfo> blobs; // sorted by name

  // The blob called `name`, or nullptr.
  const BlobInfo* Find(std::string_view name) const;
};

struct TagInfo {
  std::string tag;
  uint64_t sequence = 0;
};

// What CollectAbandoned removed.
struct CollectReport {
  std::vector<std::string> tags;  // uncommitted tags whose data was removed
  uint64_t objects = 0;
};

// The outcome of a commit, available once it finished. Copyable; all copies share the state.
class SHOAL_EXPORT SaveHandle {
 public:
  // A handle to no save (e.g. a variable not yet assigned a Commit's handle): done() is true,
  // Wait() returns FailedPrecondition ("no save") at once, duration() is 0.
  SaveHandle();
  // Blocks until the save and its commit finished; returns their outcome (the same on every
  // call), exact as CheckpointSave::Commit says: OK iff committed, Timeout iff unknown. A
  // default-constructed handle: FailedPrecondition at once, never blocks.
  Status Wait() const;
  bool done() const;
  // Wall time from Begin to the end of the commit, once done.
  std::chrono::nanoseconds duration() const;

  struct State;  // lib/save_job.h

 private:
  friend class CheckpointSave;
  explicit SaveHandle(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

class Checkpointer;

// One checkpoint being saved by this rank. Made by Checkpointer::Begin.
class SHOAL_EXPORT CheckpointSave {
 public:
  ~CheckpointSave();  // without Commit: this rank's blobs of the tag are aborted/removed
  CheckpointSave(const CheckpointSave&) = delete;
  CheckpointSave& operator=(const CheckpointSave&) = delete;

  const std::string& tag() const;

  // Saves blob `name` (a relative path: "model/shard-3", "optimizer"). Sync mode: written,
  // fsynced and sealed on return. Async mode: copied into the staging pool on return (blocks
  // while the pool is full); errors surface at Commit. AlreadyExists when any rank saved that
  // name in this tag. The caller's buffer may be reused on return.
  Status Save(std::string_view name, std::span<const std::byte> data);
  // The same for a blob gathered from several buffers (e.g. every tensor of a state dict),
  // stored as their concatenation in order, with no intermediate copy in sync mode.
  Status Save(std::string_view name, std::span<const std::span<const std::byte>> pieces);
  Status Save(std::string_view name, std::string_view data) {
    return Save(name, std::as_bytes(std::span<const char>(data.data(), data.size())));
  }

  // Collective: publishes the tag once every rank's blobs are durable. Sync mode: returns when
  // the commit ended. Async mode: returns at once; the handle tells the outcome. `metadata`
  // (any bytes, e.g. JSON; up to 64 KiB) is stored from rank 0's call. FailedPrecondition
  // when called twice.
  //
  // The outcome is exact, on every rank:
  //   OK          the tag is committed (listed, every blob durable).
  //   Timeout     the outcome is unknown to this rank, and only then: it lost rank 0 (or rank
  //               0 lost a peer) before rank 0's verdict reached it, or rank 0 could not tell
  //               whether the manifest's seal took. Resolve it with Latest()/List() (the tag
  //               is committed iff listed) once rank 0's commit has ended, which the next
  //               collective call (Begin) waits for, or a restarted job; Begin(same tag)
  //               answers AlreadyExists iff it is committed. Every rank gets the same answer.
  //   any other   the tag is not committed (a definite failure; a timeout inside it is
  //               reported as Unavailable). The ranks that heard rank 0 return its error.
  // Rank 0 always knows (OK or a definite error, unless the seal's own result is lost); a
  // failed verdict delivery never turns its OK into an error. With keep_last, rank 0 applies
  // retention between its publish and the verdict (so when Commit returns OK, at most
  // keep_last tags are listed, unless retention failed: logged); it never changes the result.
  SaveHandle Commit(std::string_view metadata = {});

  class Impl;  // lib/checkpoint.cc

 private:
  friend class Checkpointer;
  explicit CheckpointSave(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class SHOAL_EXPORT Checkpointer {
 public:
  // `engine` must outlive the checkpointer. Not collective.
  static Result<std::unique_ptr<Checkpointer>> Open(Engine& engine,
                                                    const CheckpointOptions& options = {});
  // Waits for an async save in flight.
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Collective: starts checkpoint `tag` (one path component: 1..200 bytes of [A-Za-z0-9._-],
  // not starting with '.'). Waits for the previous async save first. Rank 0 removes data left by
  // uncommitted attempts (CollectAbandoned) before any rank writes. AlreadyExists when `tag` is
  // committed.
  Result<std::unique_ptr<CheckpointSave>> Begin(std::string_view tag);

  // Committed tags, oldest first. Not collective.
  Result<std::vector<TagInfo>> List();
  // The newest committed tag; NotFound when there is none.
  Result<std::string> Latest();
  // The manifest of a committed tag; NotFound otherwise.
  Result<CheckpointManifest> GetManifest(std::string_view tag);

  // Loads blob `name` of a committed checkpoint into `dst`, whose size must be the blob's size
  // (InvalidArgument otherwise). Verifies the manifest's CRC32C when verify_on_load.
  Status Load(const CheckpointManifest& manifest, std::string_view name, std::span<std::byte> dst);
  // Reads part of a blob (for resharding: a rank loading a slice of another rank's shard);
  // returns the byte count, smaller only at the blob's end. Chunk CRCs are verified.
  Result<uint64_t> Read(const CheckpointManifest& manifest, std::string_view name,
                        uint64_t offset, std::span<std::byte> dst);

  // Many reads of one blob at once (e.g. every tensor of a state dict into its own memory),
  // queue_depth chunk I/Os in flight, like Engine::ReadBatch; each request's `path` is set here.
  Status ReadBatch(const CheckpointManifest& manifest, std::string_view name,
                   std::span<ReadRequest> requests);

  // Deletes committed `tag`: the manifest first (the tag stops being listed at once), then its
  // blobs on every member. Not collective; call it from one rank.
  Status Remove(std::string_view tag);
  // Keeps the newest `keep_last` committed tags and removes the others: every one of their
  // manifests first (oldest first), then, once a listing confirms none is listed, their blobs
  // (an interruption leaves data without a manifest, which Begin collects). Returns how many
  // went.
  Result<uint32_t> Retain(uint32_t keep_last);
  // Removes the data of every tag that has no manifest. Only while no save of this job is in
  // progress on any rank (Begin calls it on rank 0 at a point where none is).
  Result<CollectReport> CollectAbandoned();

  // Rebuilds missing replicas of every checkpoint object (after a lost node); see
  // Engine::Repair.
  Result<RepairReport> Repair();

  Engine& engine();
  class Impl;

 private:
  explicit Checkpointer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal
