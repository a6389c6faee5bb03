// Cluster: the Engine API over a whole world. Every rank runs one; together they are one
// storage system with no server process.
//
// Roles of a member (all in one process):
//   client  — the calls of its own rank: Create/Write/Seal/Abort/Read/Stat/List/Remove.
//   holder  — keeps chunk replicas for the world in its ObjectStore: chunk i of object `uid`
//             lives in the local object "c/<uid>" at offset i * chunk_size, so a holder's share of
//             an object is one local object (written in the background, one fsync and one LMDB
//             commit per object at seal, holes where it holds nothing).
//   owner   — keeps a shard of the metadata ring in its own LMDB environment (<store>/ring):
//             the inode of every path hashed onto it (Placement::MetadataOwners), with the
//             directory entry and size in the same transaction.
//
// Write: each Write is split into chunk pieces and sent to every replica holder of the piece
// (Placement::ChunkHolders), at most `window` requests in flight per call; pieces held by this
// member go straight to its ObjectStore. Objects with a declared size <= inline_threshold are
// staged here and stored inside the inode. Seal commits the object on every holder (durable:
// fdatasync + LMDB), then inserts the inode on the primary metadata owner (which decides a race
// between two creators of one path) and on its replicas; it returns only when all succeeded.
// The inode records the layout (member ids and nodes) and which chunks hold data, so a later
// world with other rank numbers, or with members missing, still finds every chunk.
//
// Read: the inode comes from the nearest live owner (self when it is one); chunk pieces from
// the nearest live holder (self, same node, others). Holders verify CRC32C on disk and send a
// CRC32C of the bytes they return, which the reader checks; any error or mismatch moves the
// piece to the next replica, and only when all replicas failed does the read fail.
//
// List: every member's shard holds the entries of the paths it owns, so a listing asks every
// live member for one page in parallel (one round trip per member and page, never per entry)
// and merges. docs/architecture.md says why entries are not kept in the parent's shard.
//
// Thread-safety: all methods are thread-safe. An object is written through the rank that
// created it (Create/Write/Seal/Abort on one Cluster; Writes may come from many threads).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/meta_store.h"
#include "engine/object_store.h"
#include "engine/placement.h"
#include "engine/world.h"
#include "shoal/engine.h"

namespace shoal::engine {

struct ClusterOptions {
  uint32_t replicas = 2;  // copies of every chunk and inode (capped at the world size)
  uint32_t window = 16;   // remote chunk requests in flight per call
  std::chrono::milliseconds deadline{30000};
  uint32_t inline_threshold = 2048;
  uint32_t chunk_size = 4u << 20;
  uint64_t metadata_map_size = 64ull << 30;
  std::string ring_dir;  // the metadata shard's LMDB directory (<store>/ring)
};

// Message ops of the cluster (the world uses 1 and 2).
inline constexpr uint16_t kOpChunkWrite = 16;
inline constexpr uint16_t kOpChunkCommit = 17;
inline constexpr uint16_t kOpChunkDrop = 18;
inline constexpr uint16_t kOpChunkRead = 19;
inline constexpr uint16_t kOpMetaCheck = 24;
inline constexpr uint16_t kOpMetaInsert = 25;
inline constexpr uint16_t kOpMetaGet = 26;
inline constexpr uint16_t kOpMetaList = 27;
inline constexpr uint16_t kOpMetaRemove = 28;
inline constexpr uint16_t kOpMetaReplace = 29;

class Cluster {
 public:
  // Opens the metadata shard, joins the world through `rendezvous` (installing the cluster's
  // handlers first) and returns when every member is reachable.
  static Result<std::unique_ptr<Cluster>> Start(const ClusterOptions& options,
                                                std::unique_ptr<ObjectStore> store,
                                                WorldOptions world_options,
                                                transport::Rendezvous& rendezvous);
  ~Cluster();

  Status Create(std::string_view path, const CreateOptions& options);
  Status Write(std::string_view path, uint64_t offset, std::span<const std::byte> data);
  Status Seal(std::string_view path);
  Status Abort(std::string_view path);
  Status ReadBatch(std::span<ReadRequest> requests);
  Result<ObjectInfo> Stat(std::string_view path);
  Result<ListPage> List(std::string_view dir, const ListOptions& options);
  Status Remove(std::string_view path);
  Result<std::vector<std::vector<uint32_t>>> Locate(std::string_view path);
  // Engine::Repair.
  Result<RepairReport> Repair(std::string_view dir);

  World& world() { return *world_; }
  ObjectStore& store() { return *store_; }

 private:
  struct Writing;
  struct Piece;
  // A live copy of a chunk: the rank holding it and the uid of the local object it is in.
  struct Replica {
    uint32_t rank = 0;
    uint64_t uid = 0;
  };
  Cluster() = default;

  // ---- client side ----
  Result<std::shared_ptr<Writing>> FindWriting(std::string_view path);
  // The live replicas of chunk `chunk` of a striped object (its placement holders and the
  // copies a repair made), nearest first: this rank, this node, others.
  std::vector<Replica> LiveReplicas(const Inode& inode, const Placement& placement,
                                    uint64_t chunk) const;
  // Reads `dst.size()` bytes at `in_chunk` of a chunk from one replica (bytes past what the
  // holder has read as zeros), checking the holder's transit CRC32C.
  Status ReadPiece(const Replica& from, uint32_t chunk_size, uint64_t chunk, uint32_t in_chunk,
                   std::span<std::byte> dst);
  Status RepairObject(const std::string& path, RepairReport* report);
  // The chunk part of RepairObject for a striped object; records the new copies in *inode and
  // on its owners. False when the object was removed or replaced meanwhile.
  Result<bool> RepairChunks(const std::string& path, Inode* inode, RepairReport* report);
  // Ranks owning `path`'s metadata, primary first (down members included).
  std::vector<uint32_t> Owners(std::string_view path) const;
  Result<Inode> LookupInode(std::string_view path);
  // Runs op on `rank` (directly when it is this member) and returns its reply.
  Result<transport::Payload> Ask(uint32_t rank, uint16_t op, std::span<const std::byte> request);
  // Ask on every rank in `ranks` in parallel; one result per rank, in order.
  std::vector<Result<transport::Payload>> AskAll(const std::vector<uint32_t>& ranks, uint16_t op,
                                                 std::span<const std::byte> request);
  // Drops object `uid`'s chunks on the reachable ranks among `ranks`. A failure only leaks
  // space (logged): the object is gone from the metadata already.
  void DropEverywhere(uint64_t uid, const std::set<uint32_t>& ranks);
  // This member, or a peer whose endpoint is up.
  bool Reachable(uint32_t rank) const;
  const Placement& PlacementFor(const Inode& inode, std::unique_ptr<Placement>* scratch) const;

  // ---- holder and owner side: every op, local or from the network ----
  transport::Reply Serve(uint16_t op, std::span<const std::byte> request);
  Status HolderWrite(uint64_t uid, uint32_t chunk_size, uint64_t chunk, uint32_t in_chunk,
                     std::span<const std::byte> data);
  Status HolderCommit(uint64_t uid);
  Status HolderDrop(uint64_t uid);

  ClusterOptions options_;
  std::unique_ptr<ObjectStore> store_;
  std::unique_ptr<MetaStore> ring_;
  std::unique_ptr<World> world_;
  std::unique_ptr<Placement> placement_;            // of the current world
  std::vector<uint32_t> rank_of_;                   // placement index -> world rank
  int32_t my_index_ = -1;                           // this member's placement index
  std::unordered_map<std::string, uint32_t> rank_of_member_;
  uint32_t replicas_ = 1;

  std::mutex open_mu_;
  std::map<std::string, std::shared_ptr<Writing>, std::less<>> open_;

  std::mutex holder_mu_;
  std::map<uint64_t, uint32_t> holder_open_;  // uid -> chunk size of chunk objects being written
};

}  // namespace shoal::engine
