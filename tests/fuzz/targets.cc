// The decoders and name checks shoal-fuzz drives (see fuzz_target.h). Each target states its
// input layout; every decoded value is checked for a round trip and for the consistency its
// decoder promises.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "base/bytes.h"
#include "base/crc32c.h"
#include "engine/inode.h"
#include "engine/path.h"
#include "engine/member_info.h"
#include "engine/membership.h"
#include "lib/manifest.h"
#include "tests/fuzz/fuzz_target.h"
#include "transport/launch_info.h"
#include "transport/message.h"
#include "transport/rendezvous.h"
#include "transport/rendezvous_wire.h"

namespace shoal::fuzz {

void Fail(const char* file, int line, const char* what) {
  std::fprintf(stderr, "shoal-fuzz: %s:%d: broken promise: %s\n", file, line, what);
  std::abort();
}

// ---- transport/message.h: the wire header ----
// Input: u8 flags, u32 world size, u64 payload length, then the header bytes. Flag bit 0
// recomputes the header's CRC first (when it is 32 bytes), so the fuzzer gets past the checksum
// to the fields behind it.

namespace {

bool SameHeader(const transport::Header& a, const transport::Header& b) {
  return a.kind == b.kind && a.op == b.op && a.request_id == b.request_id && a.sender == b.sender &&
         a.payload_bytes == b.payload_bytes && a.status == b.status && a.epoch == b.epoch &&
         a.head_bytes == b.head_bytes;
}

}  // namespace

void FuzzHeader(std::string_view input) {
  using transport::kHeaderBytes;
  Input in(input);
  auto flags = in.Take<uint8_t>();
  auto world = in.Take<uint32_t>();
  auto payload = in.Take<uint64_t>();
  std::string bytes(in.Rest());
  if ((flags & 1) && bytes.size() >= kHeaderBytes) {
    constexpr size_t kCrcAt = transport::kHeaderBytes - 4;  // the CRC32C closes the header
    uint32_t crc = Crc32c(bytes.data(), kCrcAt);
    std::memcpy(bytes.data() + kCrcAt, &crc, sizeof(crc));
  }
  auto h = transport::DecodeHeader(AsBytes(bytes), payload, world);
  if (!h.ok()) {
    FUZZ_REQUIRE(h.status().IsInvalidArgument());
    return;
  }
  FUZZ_REQUIRE(bytes.size() == kHeaderBytes + h->head_bytes);
  FUZZ_REQUIRE(h->head_bytes <= transport::kMaxHeadBytes);
  FUZZ_REQUIRE(h->status == Code::kOk || h->head_bytes == 0);
  FUZZ_REQUIRE(h->sender < world);
  FUZZ_REQUIRE(h->payload_bytes == payload && h->payload_bytes <= transport::kMaxPayloadBytes);
  FUZZ_REQUIRE(h->kind == transport::Kind::kRequest || h->kind == transport::Kind::kResponse);
  FUZZ_REQUIRE(h->kind == transport::Kind::kResponse || h->status == Code::kOk);
  std::byte out[kHeaderBytes];
  transport::EncodeHeader(*h, out);
  // The encoding is canonical (reserved bytes zero, one CRC): it is the input, byte for byte.
  FUZZ_REQUIRE(std::memcmp(out, bytes.data(), kHeaderBytes) == 0);
  std::string whole(reinterpret_cast<const char*>(out), kHeaderBytes);
  whole.append(bytes, kHeaderBytes);  // the head travels as it is
  auto again = transport::DecodeHeader(AsBytes(whole), payload, world);
  FUZZ_REQUIRE(again.ok() && SameHeader(*again, *h));
}

std::vector<std::string> HeaderSeeds() {
  using transport::Header;
  using transport::Kind;
  std::vector<std::string> seeds;
  for (const Header& h : {Header{Kind::kRequest, 1, 42, 0, 0, Code::kOk, 0},
                          Header{Kind::kRequest, 7, 1ull << 40, 3, 4096, Code::kOk, 5},
                          Header{Kind::kResponse, 7, 1ull << 40, 1, 0, Code::kNotFound, 1},
                          Header{Kind::kResponse, 0xffff, ~0ull, 15, 1u << 30, Code::kInternal,
                                 ~0ull},
                          Header{Kind::kRequest, 16, 9, 2, 4u << 20, Code::kOk, 3, 24},
                          Header{Kind::kResponse, 19, 9, 2, 4u << 20, Code::kOk, 3, 12}}) {
    std::string s;
    Append<uint8_t>(&s, 0);
    Append<uint32_t>(&s, 16);
    Append<uint64_t>(&s, h.payload_bytes);
    std::byte out[transport::kHeaderBytes];
    transport::EncodeHeader(h, out);
    s.append(reinterpret_cast<const char*>(out), sizeof(out));
    s.append(h.head_bytes, '\x5a');
    seeds.push_back(std::move(s));
  }
  return seeds;
}

// ---- engine/inode.h: the inode record ----
// Input: the record.

namespace {

using engine::Inode;

bool SameExtent(const engine::Extent& a, const engine::Extent& b) {
  return a.segment == b.segment && a.offset == b.offset && a.length == b.length && a.crc == b.crc;
}

bool SameInode(const Inode& a, const Inode& b) {
  return a.id == b.id && a.size == b.size && a.chunk_size == b.chunk_size &&
         a.seal_time_ns == b.seal_time_ns && a.is_inline == b.is_inline &&
         a.inline_crc == b.inline_crc && a.inline_data == b.inline_data &&
         std::equal(a.chunks.begin(), a.chunks.end(), b.chunks.begin(), b.chunks.end(),
                    SameExtent) &&
         a.is_striped == b.is_striped && a.uid == b.uid && a.replicas == b.replicas &&
         a.layout == b.layout && a.written == b.written && a.home == b.home && a.copies == b.copies &&
         a.origin == b.origin;
}

// What a reader of an accepted inode relies on: its chunks cover exactly `size` bytes, and every
// table indexed by chunk has one entry per chunk.
void CheckConsistent(const Inode& n) {
  FUZZ_REQUIRE(!(n.is_inline && n.is_striped));
  FUZZ_REQUIRE(engine::IsValidChunkSize(n.chunk_size));
  if (n.is_inline) {
    FUZZ_REQUIRE(n.inline_data.size() == n.size);
    FUZZ_REQUIRE(n.chunks.empty() && n.layout.empty() && n.copies.empty());
    return;
  }
  uint64_t chunks = n.NumChunks();
  using U128 = unsigned __int128;
  FUZZ_REQUIRE(U128(chunks) * n.chunk_size >= n.size);                    // covers every byte
  FUZZ_REQUIRE(chunks == 0 || U128(chunks - 1) * n.chunk_size < n.size);  // no chunk past end
  if (n.is_striped) {
    FUZZ_REQUIRE(n.chunks.empty());
    FUZZ_REQUIRE(n.written.size() == (chunks + 7) / 8);
    FUZZ_REQUIRE(n.replicas >= 1 && n.replicas <= n.layout.size());
    FUZZ_REQUIRE(n.home >= -1 && n.home < static_cast<int64_t>(n.layout.size()));
    for (const Inode::Copy& c : n.copies) FUZZ_REQUIRE(c.chunk < chunks && c.uid != 0);
    return;
  }
  FUZZ_REQUIRE(n.chunks.size() == chunks);
  uint64_t total = 0;
  for (uint64_t i = 0; i < chunks; ++i) {
    FUZZ_REQUIRE(n.chunks[i].length == n.ChunkLength(i));
    FUZZ_REQUIRE(n.chunks[i].is_hole() || n.chunks[i].offset % 4096 == 0);
    total += n.chunks[i].length;
  }
  FUZZ_REQUIRE(total == n.size);
}

}  // namespace

void FuzzInode(std::string_view input) {
  auto n = engine::DecodeInode(input, "fuzz");
  if (!n.ok()) {
    FUZZ_REQUIRE(n.status().IsCorruption());
    return;
  }
  CheckConsistent(*n);
  auto again = engine::DecodeInode(engine::EncodeInode(*n), "fuzz");
  FUZZ_REQUIRE(again.ok() && SameInode(*again, *n));
}

std::vector<std::string> InodeSeeds() {
  std::vector<Inode> inodes;
  Inode local;  // local, one hole, a short last chunk
  local.id = 7;
  local.chunk_size = 1u << 20;
  local.size = (3ull << 20) + 5;
  local.seal_time_ns = 1700000000123456789;
  for (uint64_t i = 0; i < local.NumChunks(); ++i) {
    local.chunks.push_back({1, i << 20, local.ChunkLength(i), static_cast<uint32_t>(0x1000 + i)});
  }
  local.chunks[1] = {engine::kHoleSegment, 0, local.ChunkLength(1), 0};
  inodes.push_back(local);
  Inode empty;  // a local object of size 0: no chunks
  empty.id = 8;
  empty.chunk_size = 64u << 10;
  inodes.push_back(empty);
  Inode in;  // inline
  in.id = 9;
  in.chunk_size = 1u << 20;
  in.is_inline = true;
  in.inline_data = "hello, shoal";
  in.size = in.inline_data.size();
  in.inline_crc = Crc32c(in.inline_data.data(), in.inline_data.size());
  inodes.push_back(in);
  Inode striped;  // striped over three members, no placement tail
  striped.id = 10;
  striped.chunk_size = 64u << 10;
  striped.size = (10ull << 16) + 1;
  striped.is_striped = true;
  striped.uid = 0x1234567890abcdefull;
  striped.replicas = 2;
  striped.layout = {{"00000000000000000000000000000001", "node-a"},
                    {"00000000000000000000000000000002", "node-b"},
                    {"00000000000000000000000000000003", "node-b"}};
  striped.written = {0xfb, 0x05};
  inodes.push_back(striped);
  Inode home = striped;  // local-first, with repaired copies
  home.home = 1;
  home.copies = {{3, striped.layout[0], 77}, {10, striped.layout[2], 78}};
  inodes.push_back(home);
  Inode copies = striped;  // rotating, with one repaired copy
  copies.copies = {{0, striped.layout[1], 5}};
  inodes.push_back(copies);
  Inode held = local;  // a chunk holder's object, with its origin (format 5)
  held.origin = "0000000000000003 data/shard-00017";
  inodes.push_back(held);
  Inode small = in;  // an inline chunk object with its origin
  small.origin = "0000000000000004 x";
  inodes.push_back(small);
  std::vector<std::string> seeds;
  for (const Inode& n : inodes) seeds.push_back(engine::EncodeInode(n));
  return seeds;
}

// ---- lib/manifest.h: the checkpoint manifest (JSON) ----
// FuzzManifest's input: the JSON text. FuzzManifestEncode's input: a manifest's fields (see
// ManifestFrom), encoded and decoded back.

namespace {

bool SameManifest(const CheckpointManifest& a, const CheckpointManifest& b) {
  auto same_blob = [](const BlobInfo& x, const BlobInfo& y) {
    return x.name == y.name && x.size == y.size && x.crc32c == y.crc32c && x.rank == y.rank;
  };
  return a.tag == b.tag && a.sequence == b.sequence && a.commit_time_ns == b.commit_time_ns &&
         a.world_size == b.world_size && a.metadata == b.metadata &&
         std::equal(a.blobs.begin(), a.blobs.end(), b.blobs.begin(), b.blobs.end(), same_blob);
}

CheckpointManifest SampleManifest(std::string tag, uint32_t blobs) {
  CheckpointManifest m;
  m.tag = std::move(tag);
  m.sequence = 12;
  m.commit_time_ns = 1700000000123456789;
  m.world_size = 4;
  m.metadata = R"({"step": 100, "note": "caf\u00e9 \"quoted\""})";
  for (uint32_t i = 0; i < blobs; ++i) {
    m.blobs.push_back(
        {fmt::format("rank-{}/model.pt", i), 1000ull * i + 17, 0xdeadbeef ^ i, i % m.world_size});
  }
  return m;
}

// Input layout: u64 sequence, i64 commit time, u32 world size, u8 blob count, tag, metadata,
// then per blob: name, u64 size, u32 crc, u32 rank (strings as Input::TakeString reads them).
CheckpointManifest ManifestFrom(std::string_view input) {
  Input in(input);
  CheckpointManifest m;
  m.sequence = in.Take<uint64_t>();
  m.commit_time_ns = in.Take<int64_t>();
  m.world_size = in.Take<uint32_t>();
  auto blobs = in.Take<uint8_t>();
  m.tag = in.TakeString();
  m.metadata = in.TakeString();
  for (uint8_t i = 0; i < blobs && !in.empty(); ++i) {
    BlobInfo b;
    b.name = in.TakeString();
    b.size = in.Take<uint64_t>();
    b.crc32c = in.Take<uint32_t>();
    b.rank = in.Take<uint32_t>();
    m.blobs.push_back(std::move(b));
  }
  return m;
}

// nlohmann-json's own judgement of a string, without exceptions: its encoder replaces an
// invalid sequence with U+FFFD under `replace` and drops it under `ignore`, so the two
// outputs are equal exactly when there is none.
bool JsonTakesAsText(std::string_view s) {
  nlohmann::json j = std::string(s);
  using H = nlohmann::json::error_handler_t;
  return j.dump(-1, ' ', false, H::replace) == j.dump(-1, ' ', false, H::ignore);
}

}  // namespace

void FuzzManifest(std::string_view input) {
  auto m = DecodeManifest(input, "fuzz");
  if (!m.ok()) {
    FUZZ_REQUIRE(m.status().IsCorruption());
    return;
  }
  FUZZ_REQUIRE(
      std::is_sorted(m->blobs.begin(), m->blobs.end(),
                     [](const BlobInfo& a, const BlobInfo& b) { return a.name < b.name; }));
  // What was read from JSON is text JSON can hold, so it encodes again, to the same manifest.
  auto json = EncodeManifest(*m);
  FUZZ_REQUIRE(json.ok());
  auto again = DecodeManifest(*json, "fuzz");
  FUZZ_REQUIRE(again.ok() && SameManifest(*again, *m));
}

std::vector<std::string> ManifestSeeds() {
  std::vector<std::string> seeds;
  for (const CheckpointManifest& m : {SampleManifest("step-100", 0), SampleManifest("a", 3)}) {
    auto json = EncodeManifest(m);
    FUZZ_REQUIRE(json.ok());
    seeds.push_back(*json);
  }
  return seeds;
}

void FuzzManifestEncode(std::string_view input) {
  CheckpointManifest m = ManifestFrom(input);
  // The manifest's test of text is the encoder's (lib/manifest.cc IsUtf8).
  FUZZ_REQUIRE(IsUtf8(m.tag) == JsonTakesAsText(m.tag));
  FUZZ_REQUIRE(IsUtf8(m.metadata) == JsonTakesAsText(m.metadata));
  for (const BlobInfo& b : m.blobs) FUZZ_REQUIRE(IsUtf8(b.name) == JsonTakesAsText(b.name));
  std::stable_sort(m.blobs.begin(), m.blobs.end(),
                   [](const BlobInfo& a, const BlobInfo& b) { return a.name < b.name; });
  auto json = EncodeManifest(m);
  if (!json.ok()) {
    FUZZ_REQUIRE(json.status().IsInvalidArgument());
    bool all_text = IsUtf8(m.tag) && IsUtf8(m.metadata) &&
                    std::all_of(m.blobs.begin(), m.blobs.end(),
                                [](const BlobInfo& b) { return IsUtf8(b.name); });
    FUZZ_REQUIRE(!all_text);  // refused only for a string that is not UTF-8
    return;
  }
  auto again = DecodeManifest(*json, "fuzz");
  FUZZ_REQUIRE(again.ok() && SameManifest(*again, m));
}

std::vector<std::string> ManifestEncodeSeeds() {
  std::vector<std::string> seeds;
  for (const CheckpointManifest& m : {SampleManifest("step-100", 0), SampleManifest("a", 3)}) {
    std::string s;
    Append<uint64_t>(&s, m.sequence);
    Append<int64_t>(&s, m.commit_time_ns);
    Append<uint32_t>(&s, m.world_size);
    Append<uint8_t>(&s, static_cast<uint8_t>(m.blobs.size()));
    for (const std::string& str : {m.tag, m.metadata}) {
      Append<uint8_t>(&s, static_cast<uint8_t>(str.size()));
      s += str;
    }
    for (const BlobInfo& b : m.blobs) {
      Append<uint8_t>(&s, static_cast<uint8_t>(b.name.size()));
      s += b.name;
      Append<uint64_t>(&s, b.size);
      Append<uint32_t>(&s, b.crc32c);
      Append<uint32_t>(&s, b.rank);
    }
    seeds.push_back(std::move(s));
  }
  return seeds;
}

// ---- engine/path.h: object and directory names ----
// Input: the name.

void FuzzPath(std::string_view path) {
  Status object = engine::ValidateObjectPath(path);
  Status dir = engine::ValidateDirPath(path);
  FUZZ_REQUIRE(object.ok() || object.IsInvalidArgument());
  FUZZ_REQUIRE(dir.ok() || dir.IsInvalidArgument());
  FUZZ_REQUIRE(dir.ok() == (path.empty() || object.ok()));
  if (!object.ok()) return;
  FUZZ_REQUIRE(path.size() <= engine::kMaxPathBytes);
  FUZZ_REQUIRE(path.find('\0') == std::string_view::npos);
  // The parent is a directory name, the leaf an object name of one component, and they join
  // back to the name.
  auto [parent, leaf] = engine::SplitParent(path);
  FUZZ_REQUIRE(engine::ValidateDirPath(parent).ok());
  FUZZ_REQUIRE(engine::ValidateObjectPath(leaf).ok());
  FUZZ_REQUIRE(leaf.find('/') == std::string_view::npos);
  FUZZ_REQUIRE(leaf.size() <= engine::kMaxComponentBytes);
  FUZZ_REQUIRE((parent.empty() ? std::string(leaf) : fmt::format("{}/{}", parent, leaf)) == path);
}

std::vector<std::string> PathSeeds() {
  return {"a",      "ckpt/step-100/rank-3.bin",  "data/x.y.z",          "a b/c", "...",
          ".a/..b", "unicode/\xc3\xa9t\xc3\xa9", std::string(255, 'x'), "",      "a//b",
          "a/../b"};
}

// ---- lib/manifest.h: checkpoint tags and manifest names ----
// FuzzTag's input: u64 sequence, then the tag. FuzzManifestName's input: the name.

void FuzzTag(std::string_view input) {
  Input in(input);
  auto sequence = in.Take<uint64_t>();
  std::string_view tag = in.Rest();
  Status s = ValidateTag(tag);
  if (!s.ok()) {
    FUZZ_REQUIRE(s.IsInvalidArgument());
    return;
  }
  FUZZ_REQUIRE(IsUtf8(tag));
  // A tag is one component of an object name (<root>/data/<tag>/...).
  FUZZ_REQUIRE(engine::ValidateObjectPath(tag).ok() && tag.find('/') == std::string_view::npos);
  if (sequence >= 10'000'000'000'000'000ull) return;  // 16 digits in a manifest name
  auto t = ParseManifestName(ManifestName(sequence, tag));
  FUZZ_REQUIRE(t && t->sequence == sequence && t->tag == tag);
}

std::vector<std::string> TagSeeds() {
  std::vector<std::string> seeds;
  for (std::string_view tag : {"step-100", "a", "v1.2_final", "x-"}) {
    std::string s;
    Append<uint64_t>(&s, 42);
    s += tag;
    seeds.push_back(std::move(s));
  }
  return seeds;
}

void FuzzManifestName(std::string_view name) {
  auto t = ParseManifestName(name);
  if (!t) return;
  FUZZ_REQUIRE(ValidateTag(t->tag).ok());
  FUZZ_REQUIRE(ManifestName(t->sequence, t->tag) == name);
}

std::vector<std::string> ManifestNameSeeds() {
  return {ManifestName(1, "step-1"), ManifestName(9999999999999999ull, "final.v2"),
          "0000000000000001.", "000000000000000x.a"};
}

// ---- engine/member_info.h: a member's rendezvous record ----
// Input: the record.

void FuzzMemberInfo(std::string_view input) {
  auto m = engine::DecodeMemberInfo(AsBytes(input));
  if (!m.ok()) {
    FUZZ_REQUIRE(m.status().IsInvalidArgument());
    return;
  }
  FUZZ_REQUIRE(m->member_id.size() == 32 && !m->node.empty() && !m->ucx_address.empty());
  transport::Blob blob = engine::EncodeMemberInfo(*m);
  FUZZ_REQUIRE(AsChars(blob) == input);  // one encoding per record
  auto again = engine::DecodeMemberInfo(blob);
  FUZZ_REQUIRE(again.ok() && again->job_rank == m->job_rank && again->slot == m->slot &&
               again->member_id == m->member_id &&
               again->node == m->node && again->ucx_address == m->ucx_address);
}

std::vector<std::string> MemberInfoSeeds() {
  std::vector<std::string> seeds;
  engine::MemberInfo m{3, 0, "0123456789abcdef0123456789abcdef", "node-a", {}};
  for (int i = 0; i < 40; ++i) m.ucx_address.push_back(static_cast<std::byte>(i * 7));
  seeds.emplace_back(AsChars(engine::EncodeMemberInfo(m)));
  m.job_rank = 0;
  m.slot = 2;
  m.node = std::string(255, 'n');
  m.ucx_address.resize(1);
  seeds.emplace_back(AsChars(engine::EncodeMemberInfo(m)));
  return seeds;
}

// ---- transport/rendezvous.h: one rank's packed member blobs (RendezvousGroup) ----
// Input: the packed blob another rank sent.

void FuzzMemberBlobs(std::string_view input) {
  const auto bytes = AsBytes(input);
  transport::Blob packed(bytes.begin(), bytes.end());
  auto table = transport::UnpackMemberBlobs({packed});
  if (!table.ok()) {
    FUZZ_REQUIRE(table.status().IsInvalidArgument());
    return;
  }
  FUZZ_REQUIRE(!table->empty());
  FUZZ_REQUIRE(transport::PackMemberBlobs(*table) == packed);  // one encoding per table
}

std::vector<std::string> MemberBlobsSeeds() {
  auto blob = [](std::string_view s) {
    const auto bytes = AsBytes(s);
    return transport::Blob(bytes.begin(), bytes.end());
  };
  std::vector<std::string> seeds;
  seeds.emplace_back(AsChars(transport::PackMemberBlobs({blob("one")})));
  seeds.emplace_back(AsChars(transport::PackMemberBlobs({blob("a"), blob(""), blob("ccc")})));
  return seeds;
}

// ---- transport/rendezvous_wire.h: the world description an observer gets ----
// Input: the description (after its MAC).

void FuzzRendezvousWorld(std::string_view input) {
  const auto bytes = AsBytes(input);
  auto world = transport::DecodeWorld(bytes);
  if (!world.ok()) {
    FUZZ_REQUIRE(world.status().IsInvalidArgument());
    return;
  }
  FUZZ_REQUIRE(!world->members.empty());
  for (const auto& m : world->members) FUZZ_REQUIRE(m.size() <= transport::kMaxBlobBytes);
  const transport::Blob again = transport::EncodeWorld(world->members, world->info);
  FUZZ_REQUIRE(again.size() == bytes.size() &&
               std::equal(again.begin(), again.end(), bytes.begin()));  // one encoding
}

std::vector<std::string> RendezvousWorldSeeds() {
  auto blob = [](std::string_view s) {
    const auto b = AsBytes(s);
    return transport::Blob(b.begin(), b.end());
  };
  std::vector<std::string> seeds;
  seeds.emplace_back(AsChars(transport::EncodeWorld({blob("m0")}, {})));
  seeds.emplace_back(AsChars(
      transport::EncodeWorld({blob("m0"), blob(""), blob("member two")}, AsBytes("epoch 7"))));
  return seeds;
}

// ---- engine/membership.h: a world's membership record ----
// Input: the record.

void FuzzMembership(std::string_view input) {
  auto m = engine::DecodeMembership(input);
  if (!m.ok()) {
    FUZZ_REQUIRE(m.status().IsCorruption());
    return;
  }
  FUZZ_REQUIRE(m->owners.size() == m->shards && m->holders.size() == m->shards);
  const std::string once = engine::EncodeMembership(*m);
  auto again = engine::DecodeMembership(once);
  FUZZ_REQUIRE(again.ok() && *again == *m);
}

std::vector<std::string> MembershipSeeds() {
  std::vector<std::string> seeds;
  std::vector<engine::MemberState> present;
  for (int i = 0; i < 3; ++i) {
    present.push_back({std::string(31, '0') + static_cast<char>('a' + i), "n" + std::to_string(i), {}, {}});
  }
  auto plan = engine::PlanOpen(present, 2, {}, 8);
  if (plan.ok()) seeds.push_back(engine::EncodeMembership(plan->next));
  return seeds;
}

// ---- transport/launch_info.h: numbers in launcher variables (RANK, MASTER_PORT, ...) ----
// Input: u64 maximum, then the text.

void FuzzNumber(std::string_view input) {
  Input in(input);
  auto max = in.Take<uint64_t>();
  std::string_view text = in.Rest();
  auto n = transport::ParseNumber("FUZZ", text, max);
  if (!n.ok()) {
    FUZZ_REQUIRE(n.status().IsInvalidArgument());
    return;
  }
  FUZZ_REQUIRE(*n <= max);
  FUZZ_REQUIRE(!text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos);
  auto again = transport::ParseNumber("FUZZ", fmt::format("{}", *n), max);
  FUZZ_REQUIRE(again.ok() && *again == *n);
}

std::vector<std::string> NumberSeeds() {
  std::vector<std::string> seeds;
  for (auto [max, text] : {std::pair<uint64_t, std::string_view>{65535, "29500"},
                           {~0ull, "18446744073709551615"},
                           {7, "0"}}) {
    std::string s;
    Append<uint64_t>(&s, max);
    s += text;
    seeds.push_back(std::move(s));
  }
  return seeds;
}

}  // namespace shoal::fuzz
