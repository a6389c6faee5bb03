// shoal-fuzz targets for engine/protocol.h: every member-to-member message decoder.
//
// Input: one byte choosing the message type (modulo the number of types), then the payload
// (and, for decoders that take one, a u32 parameter first: the world size, the asked length,
// the list limit or the contributing rank). An accepted payload must re-encode to bytes that
// decode again, and encoding that value once more must give the same bytes (the encoding is a
// function of the decoded value); a refused one must be refused with InvalidArgument (requests)
// or Corruption (replies) — never a crash, an out-of-bounds read or a huge allocation.
#include <algorithm>
#include <functional>

#include "base/bytes.h"
#include "engine/protocol.h"
#include "tests/fuzz/fuzz_target.h"

namespace shoal::fuzz {
namespace {

namespace p = engine::protocol;
using p::Bytes;

bool Refused(const Status& s) { return s.IsInvalidArgument() || s.IsCorruption(); }

// Decode, and where accepted: encode, decode again, encode again == first encoding.
template <typename Msg, typename Decode>
void RoundTrip(std::span<const std::byte> payload, Decode decode) {
  Msg m;
  Status s = decode(payload, &m);
  if (!s.ok()) {
    FUZZ_REQUIRE(Refused(s));
    return;
  }
  const Bytes once = p::Encode(m);
  Msg again;
  FUZZ_REQUIRE(decode(once, &again).ok());
  FUZZ_REQUIRE(p::Encode(again) == once);
}

}  // namespace

void FuzzProtocol(std::string_view input) {
  Input in(input);
  const auto which = in.Take<uint8_t>();
  const auto param = in.Take<uint32_t>();
  const std::string_view rest = in.Rest();
  const std::span<const std::byte> b = AsBytes(rest);
  const std::string path = "fuzz/object";
  switch (which % 24) {
    case 0: return RoundTrip<p::Contribute>(b, [](std::span<const std::byte> x, auto* m) { return p::Decode(x, m); });
    case 1:
      return RoundTrip<p::CollectiveResult>(
          b, [&](std::span<const std::byte> x, auto* m) { return p::Decode(x, param % 64, m); });
    case 2: {
      RoundTrip<p::ChunkWrite>(b, [](std::span<const std::byte> x, auto* m) { return p::Decode(x, m); });
      // A gathered request (head and body received apart) is accepted exactly when the whole
      // one is, with the same fields; a head of another length never is.
      const size_t h = std::min<size_t>(b.size(), param % 2 == 0 ? p::kChunkWriteHead : param % 64);
      p::ChunkWrite split, whole;
      const Status hs = p::DecodeHead(b.first(h), b.subspan(h), &split);
      const Status ws = p::Decode(b, &whole);
      if (h != p::kChunkWriteHead) {
        FUZZ_REQUIRE(hs.IsInvalidArgument());
        return;
      }
      FUZZ_REQUIRE(hs.ok() == ws.ok());
      if (hs.ok()) {
        FUZZ_REQUIRE(p::Encode(split) == p::Encode(whole));
      } else {
        FUZZ_REQUIRE(Refused(hs));
      }
      return;
    }
    case 3: return RoundTrip<p::UidRequest>(b, [](std::span<const std::byte> x, auto* m) { return p::Decode(x, m); });
    case 4: return RoundTrip<p::ChunkRead>(b, [](std::span<const std::byte> x, auto* m) { return p::Decode(x, m); });
    case 5: {
      RoundTrip<p::ChunkReadReply>(b,
                                   [&](std::span<const std::byte> x, auto* m) { return p::Decode(x, param, m); });
      // The head alone (a CallInto reply, whose bytes landed elsewhere) is accepted exactly
      // when the whole reply is, with the same CRC.
      const size_t h = std::min(b.size(), p::kChunkReadReplyHead);
      uint32_t crc = 0;
      p::ChunkReadReply whole;
      const Status hs = p::DecodeChunkReadHead(b.first(h), b.size() - h, param, &crc);
      const Status ws = p::Decode(b, param, &whole);
      FUZZ_REQUIRE(hs.ok() == ws.ok());
      if (hs.ok()) {
        FUZZ_REQUIRE(crc == whole.crc);
      } else {
        FUZZ_REQUIRE(Refused(hs));
      }
      return;
    }
    case 6: return RoundTrip<p::PathRequest>(b, [](std::span<const std::byte> x, auto* m) { return p::Decode(x, m); });
    case 7:
      return RoundTrip<p::InodeReply>(b, [&](std::span<const std::byte> x, auto* m) { return p::Decode(x, path, m); });
    case 8: return RoundTrip<p::MetaInsert>(b, [](std::span<const std::byte> x, auto* m) { return p::Decode(x, m); });
    case 9: return RoundTrip<p::MetaReplace>(b, [](std::span<const std::byte> x, auto* m) { return p::Decode(x, m); });
    case 10: return RoundTrip<p::MetaRemove>(b, [](std::span<const std::byte> x, auto* m) { return p::Decode(x, m); });
    case 11: return RoundTrip<p::MetaList>(b, [](std::span<const std::byte> x, auto* m) { return p::Decode(x, m); });
    case 12:
      RoundTrip<p::MetaListReply>(b, [&](std::span<const std::byte> x, auto* m) { return p::Decode(x, param, m); });
      RoundTrip<p::CommitPart>(b, [&](std::span<const std::byte> x, auto* m) { return p::Decode(x, param, m); });
      RoundTrip<p::Verdict>(b, [](std::span<const std::byte> x, auto* m) { return p::Decode(x, m); });
      return;
    case 13: return RoundTrip<p::VersionReply>(b, [](std::span<const std::byte> x, auto* m) { return p::Decode(x, m); });
    case 14:
      return RoundTrip<p::RemoveReply>(b, [&](std::span<const std::byte> x, auto* m) { return p::Decode(x, path, m); });
    case 15: return RoundTrip<p::ShardPage>(b, [](std::span<const std::byte> x, auto* m) { return p::Decode(x, m); });
    case 16:
      return RoundTrip<p::ShardPageReply>(
          b, [&](std::span<const std::byte> x, auto* m) { return p::Decode(x, param % 4096, m); });
    case 17: return RoundTrip<p::ChunkCommit>(b, [](std::span<const std::byte> x, auto* m) { return p::Decode(x, m); });
    case 18: return RoundTrip<p::PathsRequest>(b, [](std::span<const std::byte> x, auto* m) { return p::Decode(x, m); });
    case 19: {
      const std::vector<std::string_view> asked(param % 8 + 1, path);
      return RoundTrip<p::InodesReply>(
          b, [&](std::span<const std::byte> x, auto* m) { return p::Decode(x, asked, m); });
    }
    case 20: return RoundTrip<p::ChunkPutMany>(b, [](std::span<const std::byte> x, auto* m) { return p::Decode(x, m); });
    case 21: return RoundTrip<p::MetaInsertMany>(b, [](std::span<const std::byte> x, auto* m) { return p::Decode(x, m); });
    case 22:
      return RoundTrip<p::VersionsReply>(
          b, [&](std::span<const std::byte> x, auto* m) { return p::Decode(x, param % 8 + 1, m); });
    case 23:
      RoundTrip<p::LeaseRequest>(b, [](std::span<const std::byte> x, auto* m) { return p::Decode(x, m); });
      RoundTrip<p::LeaseReply>(b, [](std::span<const std::byte> x, auto* m) { return p::Decode(x, m); });
      return;
  }
}

std::vector<std::string> ProtocolSeeds() {
  std::vector<std::string> seeds;
  auto add = [&](uint8_t which, uint32_t param, const Bytes& payload) {
    std::string s;
    s.push_back(static_cast<char>(which));
    s.append(reinterpret_cast<const char*>(&param), 4);
    s.append(AsChars(payload));
    seeds.push_back(std::move(s));
  };
  const std::vector<std::byte> data(100, std::byte{7});
  engine::Inode striped;
  striped.is_striped = true;
  striped.size = 3 * 65536 + 5;
  striped.chunk_size = 65536;
  striped.uid = 9;
  striped.replicas = 2;
  striped.layout = {{"0123456789abcdef0123456789abcdef", "a"},
                    {"fedcba9876543210fedcba9876543210", "b"}};
  striped.written = {0x0b};
  striped.copies = {{1, {"0123456789abcdef0123456789abcdef", "a"}, 11}};
  engine::Inode small;
  small.is_inline = true;
  small.size = 3;
  small.chunk_size = 65536;
  small.inline_data = "abc";
  add(0, 0, p::Encode(p::Contribute{5}));
  add(1, 2, p::Encode(p::CollectiveResult{5, {Bytes(3, std::byte{1}), {}}}));
  add(2, 0, p::Encode(p::ChunkWrite{9, 65536, 2, 100, data}));
  add(3, 0, p::Encode(p::UidRequest{9}));
  add(4, 0, p::Encode(p::ChunkRead{9, 65536, 2, 100, 1000}));
  add(5, 100, p::Encode(p::ChunkReadReply{1234, data}));
  add(6, 0, p::Encode(p::PathRequest{"fuzz/object"}));
  add(7, 0, p::Encode(p::InodeReply{striped}));
  add(8, 0, p::Encode(p::MetaInsert{"a/b", 7, striped}));
  add(8, 0, p::Encode(p::MetaInsert{"a/c", 0, small}));
  add(9, 0, p::Encode(p::MetaReplace{"a/b", 9, 4, striped}));
  add(10, 0, p::Encode(p::MetaRemove{"a/b", 9, 3}));
  add(11, 0, p::Encode(p::MetaList{"a", "b", 100}));
  add(12, 10, p::Encode(p::MetaListReply{true, {{"x", false, 5}, {"y", true, 2}}}));
  add(12, 3, p::Encode(p::CommitPart{Status::OK(), {{"rank-0/model", 100, 7, 0}}}));
  add(12, 0, p::Encode(p::Verdict{Status::NoSpace("full")}));
  add(13, 0, p::Encode(p::VersionReply{(uint64_t{3} << 40) | 7}));
  add(14, 0, p::Encode(p::RemoveReply{5, striped}));
  add(14, 0, p::Encode(p::RemoveReply{6, std::nullopt}));
  add(15, 0, p::Encode(p::ShardPage{17, "a/b", 1024}));
  add(17, 0, p::Encode(p::ChunkCommit{9, "a/b"}));
  add(16, 8, p::Encode(p::ShardPageReply{"a/c", {{"a/b", 9, false, engine::EncodeInode(striped)},
                                                   {"a/c", 11, true, ""}}}));
  add(18, 0, p::Encode(p::PathsRequest{{"a/b", "fuzz/object", "c"}}));
  add(19, 2, p::Encode(p::InodesReply{{striped, Status::NotFound("no object"), small}}));
  add(20, 0, p::Encode(p::ChunkPutMany{65536, {{9, "a/b", data}, {10, "a/c", {}}}}));
  add(21, 0, p::Encode(p::MetaInsertMany{{{"a/b", 0, striped}, {"a/c", 7, small}}}));
  add(22, 1, p::Encode(p::VersionsReply{{uint64_t{3} << 40, Status::AlreadyExists("taken")}}));
  add(23, 0, p::Encode(p::LeaseRequest{"a/c/x", 7, 30000, false}));
  add(23, 0, p::Encode(p::LeaseReply{true, 7, 12}));
  return seeds;
}

}  // namespace shoal::fuzz
