// Inode: what the metadata shard records about one sealed object, and its binary encoding.
// Decoding checks every field against every other (sizes, chunk count, extent lengths), so a
// damaged record is reported as Corruption instead of steering a read out of bounds.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/placement.h"
#include "shoal/engine.h"
#include "shoal/result.h"

namespace shoal::engine {

// A chunk that was never written: reads as zeros, occupies no disk.
inline constexpr uint32_t kHoleSegment = 0xFFFFFFFFu;
inline constexpr uint32_t kMinChunkSize = 64u << 10;
inline constexpr uint32_t kMaxChunkSize = 1u << 30;
// Largest object: chunk tables stay addressable and offsets never overflow (an inode's NumChunks
// and every offset + length below its size fit in 64 bits). DecodeInode refuses larger sizes.
inline constexpr uint64_t kMaxObjectSize = 1ull << 50;

// Where one chunk lives in the chunk store. Disk footprint: AlignUp(length, 4096).
struct Extent {
  uint32_t segment = kHoleSegment;
  uint64_t offset = 0;
  uint32_t length = 0;  // logical bytes (the chunk's length)
  uint32_t crc = 0;     // CRC32C of the `length` logical bytes
  bool is_hole() const { return segment == kHoleSegment; }
};

struct Inode {
  uint64_t id = 0;
  uint64_t size = 0;
  uint32_t chunk_size = 0;
  int64_t seal_time_ns = 0;
  bool is_inline = false;
  uint32_t inline_crc = 0;
  std::string inline_data;     // when is_inline
  std::vector<Extent> chunks;  // when local (neither inline nor striped): NumChunks() entries
  // A local object's origin (MetaStore::InsertObject): the world path a chunk holder's object
  // belongs to; empty when none. Encoded after the chunk table (or inline data) when set.
  std::string origin;

  // Striped over a world (engine/cluster.h): chunk i's replicas live on the members
  // Placement(layout).ChunkHolders(uid, i, replicas); `written` has bit i set when chunk i holds
  // data (a clear bit is a hole of zeros, so a member that lost its store is an error, not zeros).
  bool is_striped = false;
  uint64_t uid = 0;
  uint32_t replicas = 0;
  // The creator chose `replicas` for this object (CreateOptions::replicas): repair keeps that
  // count instead of raising it to the world's.
  bool own_replicas = false;
  std::vector<PlacementMember> layout;
  std::vector<uint8_t> written;  // ceil(NumChunks() / 8) bytes
  // Local-first objects: index into `layout` of the member holding the first replica of every
  // chunk (Placement::ChunkHolders' `home`); -1 when chunks rotate over all members.
  int32_t home = -1;
  // Replicas rebuilt by a repair after their holder was lost: chunk `chunk` also lives in the
  // local object of `uid` (not the object's uid) on `member`.
  struct Copy {
    uint64_t chunk = 0;
    PlacementMember member;
    uint64_t uid = 0;
    bool operator==(const Copy&) const = default;
  };
  std::vector<Copy> copies;
  // Not encoded: at a seal, chunk i's block sums (engine/block_sums.h), written with its extent
  // record (MetaStore), empty when none. Decoded inodes leave it empty.
  std::vector<std::vector<uint32_t>> block_sums;

  bool ChunkWritten(uint64_t index) const { return (written[index / 8] >> (index % 8)) & 1; }

  uint64_t NumChunks() const { return is_inline ? 0 : (size + chunk_size - 1) / chunk_size; }
  // Logical length of chunk `index` (the last one may be short).
  uint32_t ChunkLength(uint64_t index) const;
};

bool IsValidChunkSize(uint64_t chunk_size);

// What Stat reports about a sealed object.
ObjectInfo InfoOf(std::string_view path, const Inode& inode);

std::string EncodeInode(const Inode& inode);
// Corruption (naming `path`) if `bytes` is not a consistent inode record.
Result<Inode> DecodeInode(std::string_view bytes, std::string_view path);

}  // namespace shoal::engine
