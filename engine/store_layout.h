// Every name a store directory holds, in one place (leveldb's db/filename.h), and the store's
// format version.
//
//   <store>/FORMAT              "shoal-store <version>\n": the layout below (kStoreFormat)
//   <store>/LOCK                flock()ed by the one engine that has the store open
//   <store>/meta/               LMDB, the member's one metadata environment, two keyspaces
//                               (engine/meta_store.h): its local objects (chunk holder) and
//                               member id; databases "ring.*": its copies of the world's
//                               metadata shards (user paths)
//   <store>/meta/data.verified  the LMDB file's txnid, size and mtime at its last clean close
//                               (engine/meta_store.cc: an unchanged file is not walked again)
//   <store>/chunks/seg-XXXXXXXX.dat   chunk segments (8 hex digits)
//   <store>/ring/               format 3 only: the shard keyspace's own LMDB environment,
//                               imported into meta/ at the first Open, then removed (renamed
//                               to ring.imported first)
//   local object "c/<uid>"      the chunks this member holds of world object <uid> (16 hex)
//
// Format 6 (this version): extent records may carry the chunk's block sums (the CRC32C of each
// 4 KiB block, engine/block_sums.h), so a small read of a large chunk reads only its blocks.
// Format 5 stores are adopted as they are (their chunks, without sums, are read whole); a
// format-5 shoal would refuse the longer extent records, hence the new number.
// Format 5: chunk objects have no directory entries in the local keyspace and
// their origin is in their inode (no "origins" database): a seal dirties two LMDB trees of the
// chunk holder's, not four. Older local keyspaces are brought to it at Open
// (MetaStore::FlattenChunkObjects).
// Format 4: one LMDB environment per store, so a seal whose chunk holder and
// metadata owner are one member commits once (a world of one: one fsync per seal, as before the
// world layout), and every other metadata write shares one group commit.
// Format 3: the ring's records are versioned, with tombstones, a shard index and
// the world's membership record (engine/meta_store.h, engine/membership.h); a format-2 ring's
// records are indexed at the first Open (as the oldest version), so format-2 stores are adopted.
// Format 2: every store has the world layout, whatever the size of the job that
// wrote it — a one-rank job is a world of one — so jobs of any size can follow each other on
// the same stores. Format 1 stores had no FORMAT file: a world's stores had the same layout and
// are adopted as they are; a one-rank job's store kept user paths in meta/ and is refused with
// an error that says so (its objects are not visible to a world, and silently showing nothing
// would look like data loss).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "shoal/result.h"

namespace shoal::engine {

inline constexpr uint32_t kStoreFormat = 6;

inline constexpr std::string_view kFormatFile = "FORMAT";
inline constexpr std::string_view kLockFile = "LOCK";
inline constexpr std::string_view kMetaDir = "meta";
inline constexpr std::string_view kChunksDir = "chunks";
inline constexpr std::string_view kRingDir = "ring";  // format 3's shard environment
// The file LMDB keeps in kMetaDir (and format 3's kRingDir).
inline constexpr std::string_view kLmdbDataFile = "data.mdb";

std::string StorePath(std::string_view store, std::string_view name);
std::string SegmentFileName(uint32_t id);
// True (and *id set) for a name SegmentFileName makes.
bool ParseSegmentFileName(std::string_view name, uint32_t* id);
// The local object holding this member's chunks of world object `uid`.
std::string ChunkObjectName(uint64_t uid);
// True for local object names ChunkObjectName makes.
bool IsChunkObjectName(std::string_view name);

// The format a store directory declares: 0 when it has no FORMAT file; Corruption when the
// file is unreadable as one.
Result<uint32_t> ReadStoreFormat(const std::string& store);
// Writes FORMAT (atomically: temporary file, fsync, rename, fsync of the directory).
Status WriteStoreFormat(const std::string& store);

}  // namespace shoal::engine
