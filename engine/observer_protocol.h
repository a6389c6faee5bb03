// The observer protocol: what a guest (transport/message.h: a process outside the world holding
// the job token, such as `shoal` attached to a live job) may ask a member, and the encodings.
// Members serve these ops only to guests (Transport::SetGuestHandler) and members never send
// them to each other; a guest can ask nothing else (the member protocol, engine/protocol.h,
// is closed to it).
//
//   op           request                           reply
//   kStat        {path}                            ObjectInfo
//   kList        {dir, start_after, limit}         ListPage
//   kRead        {path, offset, length}            the bytes (raw; at most kMaxGuestRead)
//   kLocate      {path}                            holders per chunk
//   kMember      {}                                MemberReport of the member asked
//   kScrub       {}                                ScrubReport of a pass over its chunks
//
// The requests and replies other than kRead's are JSON documents: these are rare calls of an
// operator's tool whose fields will grow (a guest of an older or newer version reads what it
// knows), never on the data path. Decoders check types and ranges and return InvalidArgument
// naming the op; a document is at most kMaxGuestDocument bytes.
//
// What a guest's call does at the member: the member runs it through its own client paths (a
// Stat, List or Read of the world, as its rank would), so the guest holds no data, owns no
// shard, is never a holder and starts no epoch.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "shoal/engine.h"
#include "shoal/result.h"
#include "shoal/stats.h"

namespace shoal::engine::observer {

using Bytes = std::vector<std::byte>;

enum class GuestOp : uint16_t {
  kStat = 64,
  kList = 65,
  kRead = 66,
  kLocate = 67,
  kMember = 68,
  kScrub = 69,
};
constexpr uint16_t Wire(GuestOp op) { return static_cast<uint16_t>(op); }

inline constexpr uint64_t kMaxGuestRead = 16u << 20;
inline constexpr size_t kMaxGuestDocument = 64u << 20;

// What a member says of itself (Cluster::Report): who it is, what it holds, its space, its
// rank's counters, and its background work.
struct MemberReport {
  uint32_t member = 0;       // index in the world
  uint32_t members = 0;      // of how many
  uint32_t rank = 0;         // the job rank serving it
  uint32_t ranks = 0;
  std::string node;
  std::string member_id;
  uint64_t epoch = 0;
  uint32_t lost = 0;         // members declared lost in this epoch's record
  uint32_t replicas = 0;
  uint64_t objects = 0;      // objects with chunks in its store
  uint64_t bytes = 0;        // their chunks' extent here
  LocalSpace space;
  std::string io_backend;
  bool background_running = false;  // catch-up / repair / drop after the Open
  RepairReport background;          // what it did so far (or in all, once over)
  uint64_t scrubbed_bytes = 0;      // verified by scrubs since the rank started
  uint64_t scrub_damaged = 0;
  Stats stats;               // its rank's counters and histograms (docs/metrics.md)
};

// What a scrub pass over one member's chunks found (Cluster::ScrubNow).
struct ScrubReport {
  uint64_t chunk_objects = 0;  // local chunk objects read back
  uint64_t bytes = 0;          // verified
  uint64_t damaged = 0;        // objects with a chunk whose CRC32C did not match
  uint64_t repaired = 0;       // of those, repaired from replicas
  std::vector<std::string> unrepaired;  // world paths left damaged (no other live copy)
  double ms = 0;
};

struct PathRequest {
  std::string path;
};
struct ListRequest {
  std::string dir;
  ListOptions options;
};
struct ReadRequestMsg {
  std::string path;
  uint64_t offset = 0;
  uint64_t length = 0;
};

Bytes Encode(const PathRequest& m);
Bytes Encode(const ListRequest& m);
Bytes Encode(const ReadRequestMsg& m);
Bytes Encode(const ObjectInfo& m);
Bytes Encode(const ListPage& m);
Bytes Encode(const std::vector<std::vector<uint32_t>>& holders);
Bytes Encode(const MemberReport& m);
Bytes Encode(const ScrubReport& m);
Bytes EncodeEmpty();

Status Decode(std::span<const std::byte> b, PathRequest* out);
Status Decode(std::span<const std::byte> b, ListRequest* out);
Status Decode(std::span<const std::byte> b, ReadRequestMsg* out);
Status Decode(std::span<const std::byte> b, ObjectInfo* out);
Status Decode(std::span<const std::byte> b, ListPage* out);
Status Decode(std::span<const std::byte> b, std::vector<std::vector<uint32_t>>* holders);
Status Decode(std::span<const std::byte> b, MemberReport* out);
Status Decode(std::span<const std::byte> b, ScrubReport* out);

}  // namespace shoal::engine::observer
