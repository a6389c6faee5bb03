// engine/protocol.h: every message round-trips, and every truncation, count or range a peer
// could send wrong is refused with an error (the fuzzer, tests/fuzz, tries the rest).
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "base/status_codec.h"
#include "engine/protocol.h"
#include "tests/test_util.h"

namespace shoal::engine::protocol {
namespace {

using testing::Pattern;

Inode Striped() {
  Inode i;
  i.is_striped = true;
  i.size = 3 * 65536 + 5;
  i.chunk_size = 65536;
  i.uid = 77;
  i.replicas = 2;
  i.layout = {{"0123456789abcdef0123456789abcdef", "a"}, {"fedcba9876543210fedcba9876543210", "b"}};
  i.written = {0x0f};
  return i;
}

// Every strict prefix of a valid encoding is refused.
template <typename Msg, typename DecodeFn>
void ExpectPrefixesRefused(const Bytes& full, DecodeFn decode) {
  for (size_t n = 0; n < full.size(); ++n) {
    Msg m;
    EXPECT_FALSE(decode(std::span<const std::byte>(full.data(), n), &m).ok()) << "prefix " << n;
  }
}

TEST(Protocol, ChunkMessagesRoundTripAndCheckRanges) {
  auto data = Pattern(1000, 1);
  ChunkWrite w{5, 65536, 3, 100, data};
  ChunkWrite w2;
  const Bytes w_bytes = Encode(w);
  ASSERT_OK(Decode(w_bytes, &w2));
  EXPECT_EQ(w2.uid, 5u);
  EXPECT_EQ(w2.chunk, 3u);
  EXPECT_EQ(w2.in_chunk, 100u);
  EXPECT_TRUE(std::equal(w2.data.begin(), w2.data.end(), data.begin(), data.end()));
  EXPECT_CODE(Decode(Encode(ChunkWrite{5, 65536, 3, 65000, data}), &w2), kInvalidArgument);
  EXPECT_CODE(Decode(Encode(ChunkWrite{5, 1000, 0, 0, data}), &w2), kInvalidArgument);
  EXPECT_CODE(Decode(Encode(ChunkWrite{5, 65536, 0, 0, {}}), &w2), kInvalidArgument);

  ChunkRead r{9, 65536, 2, 10, 500}, r2;
  ASSERT_OK(Decode(Encode(r), &r2));
  EXPECT_EQ(r2.len, 500u);
  EXPECT_CODE(Decode(Encode(ChunkRead{9, 65536, 2, 10, 65536}), &r2), kInvalidArgument);
  ExpectPrefixesRefused<ChunkRead>(Encode(r), [](auto b, auto* m) { return Decode(b, m); });

  auto bytes = Pattern(300, 2);
  ChunkReadReply rep{1234, bytes}, rep2;
  const Bytes rep_bytes = Encode(rep);
  ASSERT_OK(Decode(rep_bytes, 300, &rep2));
  EXPECT_EQ(rep2.crc, 1234u);
  EXPECT_CODE(Decode(Encode(rep), 299, &rep2), kCorruption);  // more than asked
}

TEST(Protocol, MetadataMessagesRoundTripAndValidatePaths) {
  MetaInsert ins{"a/b", 5, Striped()}, ins2;
  const Bytes ins_bytes = Encode(ins);  // decoded messages borrow from their bytes
  ASSERT_OK(Decode(ins_bytes, &ins2));
  EXPECT_EQ(ins2.path, "a/b");
  EXPECT_EQ(ins2.inode.uid, 77u);
  EXPECT_CODE(Decode(Encode(MetaInsert{"../x", 0, Striped()}), &ins2), kInvalidArgument);
  MetaReplace rep;
  EXPECT_CODE(Decode(Encode(MetaReplace{"a/b", 78, 0, Striped()}), &rep), kInvalidArgument);
  ExpectPrefixesRefused<MetaInsert>(Encode(ins), [](auto b, auto* m) { return Decode(b, m); });

  MetaList l{"d", "x", 10}, l2;
  const Bytes l_bytes = Encode(l);
  ASSERT_OK(Decode(l_bytes, &l2));
  EXPECT_EQ(l2.start_after, "x");
  EXPECT_CODE(Decode(Encode(MetaList{"d", "", 0}), &l2), kInvalidArgument);
  EXPECT_CODE(Decode(Encode(MetaList{"/d", "", 5}), &l2), kInvalidArgument);

  MetaListReply page{true, {{"a", false, 5}, {"b", true, 2}}}, page2;
  ASSERT_OK(Decode(Encode(page), 10, &page2));
  ASSERT_EQ(page2.entries.size(), 2u);
  EXPECT_TRUE(page2.truncated);
  EXPECT_EQ(page2.entries[1].size, 2u);
  EXPECT_CODE(Decode(Encode(page), 1, &page2), kCorruption);  // more entries than the limit
  MetaListReply slash{false, {{"a/b", false, 1}}};
  EXPECT_CODE(Decode(Encode(slash), 10, &page2), kCorruption);
  // A count far beyond what the bytes can hold allocates nothing and fails.
  Bytes lying = Encode(MetaListReply{false, {}});
  uint32_t huge = 1000000;
  std::memcpy(lying.data() + 1, &huge, 4);
  EXPECT_CODE(Decode(lying, 1000000, &page2), kCorruption);
}

TEST(Protocol, BatchedLookupsRoundTripAndRefuseWhatDoesNotMatchTheRequest) {
  PathsRequest req{{"a/b", "c", "d/e/f"}}, req2;
  const Bytes req_bytes = Encode(req);
  ASSERT_OK(Decode(req_bytes, &req2));
  EXPECT_EQ(req2.paths, req.paths);
  ExpectPrefixesRefused<PathsRequest>(req_bytes, [](auto b, auto* m) { return Decode(b, m); });
  EXPECT_CODE(Decode(Encode(PathsRequest{}), &req2), kInvalidArgument);  // no path
  EXPECT_CODE(Decode(Encode(PathsRequest{{"a", "../x"}}), &req2), kInvalidArgument);
  Bytes trailing = req_bytes;
  trailing.push_back(std::byte{0});
  EXPECT_CODE(Decode(trailing, &req2), kInvalidArgument);
  std::vector<std::string> many(kMaxPathsPerRequest + 1, "p");
  EXPECT_CODE(Decode(Encode(PathsRequest{{many.begin(), many.end()}}), &req2), kInvalidArgument);
  Bytes lying = Encode(PathsRequest{{"a"}});
  const uint32_t huge = kMaxPathsPerRequest;  // more than the bytes can hold
  std::memcpy(lying.data(), &huge, 4);
  EXPECT_CODE(Decode(lying, &req2), kInvalidArgument);

  const std::vector<std::string_view> asked = {"a/b", "c", "d/e/f"};
  InodesReply rep{{Striped(), Status::NotFound("no object"), Status::Unavailable("catching up")}};
  InodesReply rep2;
  const Bytes rep_bytes = Encode(rep);
  ASSERT_OK(Decode(rep_bytes, asked, &rep2));
  ASSERT_EQ(rep2.inodes.size(), 3u);
  ASSERT_OK(rep2.inodes[0]);
  EXPECT_EQ(rep2.inodes[0]->uid, 77u);
  EXPECT_CODE(rep2.inodes[1], kNotFound);
  EXPECT_CODE(rep2.inodes[2], kUnavailable);
  // Another count than asked, a cut, trailing bytes: Corruption.
  EXPECT_CODE(Decode(rep_bytes, std::span(asked).first(2), &rep2), kCorruption);
  for (size_t n = 0; n < rep_bytes.size(); ++n) {
    EXPECT_FALSE(Decode(std::span(rep_bytes).first(n), asked, &rep2).ok()) << "prefix " << n;
  }
  Bytes more = rep_bytes;
  more.push_back(std::byte{1});
  EXPECT_CODE(Decode(more, asked, &rep2), kCorruption);
}

TEST(Protocol, BatchedIngestRoundTripsAndRefusesWhatDoesNotFit) {
  const auto a = Pattern(100, 1), b = Pattern(65536, 2);
  ChunkPutMany put{65536, {{7, "d/a", a}, {8, "d/b", b}, {9, "d/empty", {}}}}, put2;
  const Bytes put_bytes = Encode(put);
  ASSERT_OK(Decode(put_bytes, &put2));
  ASSERT_EQ(put2.items.size(), 3u);
  EXPECT_EQ(put2.chunk_size, 65536u);
  EXPECT_EQ(put2.items[1].uid, 8u);
  EXPECT_EQ(put2.items[1].path, "d/b");
  EXPECT_TRUE(std::equal(b.begin(), b.end(), put2.items[1].data.begin()));
  EXPECT_TRUE(put2.items[2].data.empty());
  ExpectPrefixesRefused<ChunkPutMany>(put_bytes, [](auto x, auto* m) { return Decode(x, m); });
  EXPECT_CODE(Decode(Encode(ChunkPutMany{65536, {}}), &put2), kInvalidArgument);  // none
  EXPECT_CODE(Decode(Encode(ChunkPutMany{1000, {{7, "a", a}}}), &put2), kInvalidArgument);
  EXPECT_CODE(Decode(Encode(ChunkPutMany{65536, {{0, "a", a}}}), &put2), kInvalidArgument);
  EXPECT_CODE(Decode(Encode(ChunkPutMany{65536, {{7, "../a", a}}}), &put2), kInvalidArgument);
  const auto over = Pattern(65537, 3);  // more than the chunk size
  EXPECT_CODE(Decode(Encode(ChunkPutMany{65536, {{7, "a", over}}}), &put2), kInvalidArgument);
  Bytes lying = Encode(ChunkPutMany{65536, {{7, "a", a}}});
  const uint32_t huge = kMaxPutBatch;  // more items than the bytes can hold
  std::memcpy(lying.data() + 4, &huge, 4);
  EXPECT_CODE(Decode(lying, &put2), kInvalidArgument);

  MetaInsertMany ins{{{"a/b", 0, Striped()}, {"c", 5, Striped()}}}, ins2;
  ins.records[1].inode.is_striped = false;
  ins.records[1].inode.is_inline = true;
  ins.records[1].inode.size = 3;
  ins.records[1].inode.inline_data = "abc";
  const Bytes ins_bytes = Encode(ins);
  ASSERT_OK(Decode(ins_bytes, &ins2));
  ASSERT_EQ(ins2.records.size(), 2u);
  EXPECT_EQ(ins2.records[0].inode.uid, 77u);
  EXPECT_EQ(ins2.records[1].version, 5u);
  EXPECT_EQ(ins2.records[1].inode.inline_data, "abc");
  ExpectPrefixesRefused<MetaInsertMany>(ins_bytes, [](auto x, auto* m) { return Decode(x, m); });
  EXPECT_CODE(Decode(Encode(MetaInsertMany{}), &ins2), kInvalidArgument);
  engine::Inode local;  // local extents are never a world record
  local.size = 0;
  local.chunk_size = 65536;
  EXPECT_CODE(Decode(Encode(MetaInsertMany{{{"a", 0, local}}}), &ins2), kInvalidArgument);

  VersionsReply rep{{uint64_t{5} << 40, Status::AlreadyExists("taken")}}, rep2;
  const Bytes rep_bytes = Encode(rep);
  ASSERT_OK(Decode(rep_bytes, 2, &rep2));
  ASSERT_OK(rep2.versions[0]);
  EXPECT_EQ(*rep2.versions[0], uint64_t{5} << 40);
  EXPECT_CODE(rep2.versions[1], kAlreadyExists);
  EXPECT_CODE(Decode(rep_bytes, 3, &rep2), kCorruption);  // another count than asked
  for (size_t n = 0; n < rep_bytes.size(); ++n) {
    EXPECT_FALSE(Decode(std::span(rep_bytes).first(n), 2, &rep2).ok()) << "prefix " << n;
  }
  EXPECT_CODE(Decode(Encode(VersionsReply{{uint64_t{0}}}), 1, &rep2), kCorruption);  // version 0
}

TEST(Protocol, LeasesRoundTripAndRefuseHolderZeroAndBadTtls) {
  LeaseRequest req{"a/c/x", 0x100000007, 30000, false}, req2;
  const Bytes bytes = Encode(req);
  ASSERT_OK(Decode(bytes, &req2));
  EXPECT_EQ(req2.path, "a/c/x");
  EXPECT_EQ(req2.holder, 0x100000007u);
  EXPECT_EQ(req2.ttl_ms, 30000u);
  EXPECT_FALSE(req2.release);
  ExpectPrefixesRefused<LeaseRequest>(bytes, [](auto x, auto* m) { return Decode(x, m); });
  EXPECT_CODE(Decode(Encode(LeaseRequest{"a", 0, 10, false}), &req2), kInvalidArgument);
  EXPECT_CODE(Decode(Encode(LeaseRequest{"a", 1, 0, false}), &req2), kInvalidArgument);
  EXPECT_CODE(Decode(Encode(LeaseRequest{"a", 1, kMaxLeaseMs + 1, false}), &req2),
              kInvalidArgument);
  EXPECT_CODE(Decode(Encode(LeaseRequest{"../a", 1, 10, false}), &req2), kInvalidArgument);
  ASSERT_OK(Decode(Encode(LeaseRequest{"a", 1, 0, true}), &req2));  // a release has no ttl
  EXPECT_TRUE(req2.release);
  Bytes flag = Encode(LeaseRequest{"a", 1, 10, false});
  flag.back() = std::byte{2};
  EXPECT_CODE(Decode(flag, &req2), kInvalidArgument);

  LeaseReply rep{true, 9, 1234}, rep2;
  const Bytes rep_bytes = Encode(rep);
  ASSERT_OK(Decode(rep_bytes, &rep2));
  EXPECT_TRUE(rep2.granted);
  EXPECT_EQ(rep2.holder, 9u);
  EXPECT_EQ(rep2.age_ms, 1234u);
  for (size_t n = 0; n < rep_bytes.size(); ++n) {
    EXPECT_FALSE(Decode(std::span(rep_bytes).first(n), &rep2).ok()) << "prefix " << n;
  }
}

TEST(Protocol, CollectiveAndCommitMessages) {
  CollectiveResult res{4, {Pattern(3, 1), {}, Pattern(9, 2)}}, res2;
  ASSERT_OK(Decode(Encode(res), 3, &res2));
  EXPECT_EQ(res2.table[2], res.table[2]);
  EXPECT_CODE(Decode(Encode(res), 4, &res2), kInvalidArgument);  // another world size

  CommitPart part{Status::OK(), {{"rank-0/model", 100, 7, 0}}}, part2;
  ASSERT_OK(Decode(Encode(part), 3, &part2));
  ASSERT_EQ(part2.blobs.size(), 1u);
  EXPECT_EQ(part2.blobs[0].rank, 3u);
  CommitPart failed{Status::NoSpace("disk full"), {}};
  ASSERT_OK(Decode(Encode(failed), 1, &part2));
  EXPECT_EQ(part2.status.code(), Code::kNoSpace);
  Bytes bad_code = Encode(Verdict{Status::OK()});
  bad_code[0] = std::byte{200};  // no such status code
  Verdict v;
  EXPECT_CODE(Decode(bad_code, &v), kCorruption);
}

TEST(Protocol, OpNamesCoverEveryOp) {
  for (Op op : kAllOps) EXPECT_NE(OpName(Wire(op)), "unknown");
  EXPECT_EQ(OpName(999), "unknown");
}

}  // namespace
}  // namespace shoal::engine::protocol
