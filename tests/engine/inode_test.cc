#include "engine/inode.h"

#include <gtest/gtest.h>

#include "engine/interval_set.h"
#include "tests/test_util.h"

namespace shoal::engine {
namespace {

Inode Sample() {
  Inode n;
  n.id = 7;
  n.size = (3ull << 20) + 5;
  n.chunk_size = 1u << 20;
  n.seal_time_ns = 123;
  for (uint64_t i = 0; i < n.NumChunks(); ++i) {
    n.chunks.push_back(Extent{1, i * 4096 * 256, n.ChunkLength(i), static_cast<uint32_t>(i)});
  }
  n.chunks[1].segment = kHoleSegment;
  return n;
}

TEST(Inode, RoundTrip) {
  Inode n = Sample();
  auto d = DecodeInode(EncodeInode(n), "p");
  ASSERT_OK(d);
  EXPECT_EQ(d->size, n.size);
  EXPECT_EQ(d->chunks.size(), 4u);
  EXPECT_EQ(d->chunks[3].length, 5u);
  EXPECT_TRUE(d->chunks[1].is_hole());
  EXPECT_EQ(d->chunks[2].offset, n.chunks[2].offset);

  Inode in;
  in.chunk_size = 1u << 20;
  in.is_inline = true;
  in.size = 3;
  in.inline_data = "abc";
  auto di = DecodeInode(EncodeInode(in), "p");
  ASSERT_OK(di);
  EXPECT_EQ(di->inline_data, "abc");
}

TEST(Inode, EveryTruncationIsCorruption) {
  std::string b = EncodeInode(Sample());
  for (size_t n = 0; n < b.size(); ++n) {
    auto d = DecodeInode(std::string_view(b).substr(0, n), "obj");
    EXPECT_TRUE(d.status().IsCorruption()) << "length " << n;
  }
}

TEST(Inode, InconsistentFieldsAreCorruption) {
  Inode n = Sample();
  n.size += (1u << 20);  // one chunk more than the table holds
  EXPECT_TRUE(DecodeInode(EncodeInode(n), "x").status().IsCorruption());
  n = Sample();
  n.chunk_size = 12345;
  EXPECT_TRUE(DecodeInode(EncodeInode(n), "x").status().IsCorruption());
  n = Sample();
  n.chunks[0].length = 17;
  EXPECT_TRUE(DecodeInode(EncodeInode(n), "x").status().IsCorruption());
  std::string b = EncodeInode(Sample());
  b[0] = 9;  // unknown version
  auto d = DecodeInode(b, "x");
  EXPECT_TRUE(d.status().IsCorruption());
  EXPECT_NE(d.status().message().find("\"x\""), std::string::npos);
}

// Found by shoal-fuzz (tests/fuzz/corpus/inode/regress-size-wraps-chunk-count): a size near
// 2^64 made NumChunks() wrap to 0, so a record with an empty chunk table decoded as a huge object.
TEST(Inode, SizeAboveTheMaximumIsCorruption) {
  Inode n;
  n.chunk_size = 64u << 10;
  n.size = ~0ull - 5;
  EXPECT_TRUE(DecodeInode(EncodeInode(n), "x").status().IsCorruption());
  n.size = kMaxObjectSize + 1;
  auto d = DecodeInode(EncodeInode(n), "x");
  EXPECT_TRUE(d.status().IsCorruption());
  EXPECT_NE(d.status().message().find("above the maximum"), std::string::npos);
  n.is_striped = true;
  n.size = ~0ull - 5;
  n.uid = 1;
  n.replicas = 1;
  n.layout = {{"00000000000000000000000000000001", "node-a"}};
  EXPECT_TRUE(DecodeInode(EncodeInode(n), "x").status().IsCorruption());
}

TEST(IntervalSet, MergesAndDetectsOverlap) {
  IntervalSet s;
  s.Add(10, 20);
  s.Add(30, 40);
  EXPECT_TRUE(s.Overlaps(15, 16));
  EXPECT_TRUE(s.Overlaps(5, 11));
  EXPECT_TRUE(s.Overlaps(39, 50));
  EXPECT_FALSE(s.Overlaps(20, 30));
  EXPECT_FALSE(s.Overlaps(0, 10));
  EXPECT_FALSE(s.Covers(10, 40));
  s.Add(20, 30);
  EXPECT_TRUE(s.Covers(10, 40));
  EXPECT_FALSE(s.Covers(0, 40));
  std::vector<std::pair<uint64_t, uint64_t>> gaps;
  s.ForEachGap(50, [&](uint64_t b, uint64_t e) { gaps.emplace_back(b, e); });
  ASSERT_EQ(gaps.size(), 2u);
  EXPECT_EQ(gaps[0], std::make_pair(uint64_t{0}, uint64_t{10}));
  EXPECT_EQ(gaps[1], std::make_pair(uint64_t{40}, uint64_t{50}));
}

Inode Striped() {
  Inode n;
  n.size = (5ull << 20) + 1;
  n.chunk_size = 1u << 20;
  n.is_striped = true;
  n.uid = 0xABCDEF;
  n.replicas = 2;
  n.layout = {{"00000000000000000000000000000001", "node-a"},
              {"00000000000000000000000000000002", "node-b"}};
  n.written = {0b00101101};  // 6 chunks; 1 and 4 never written
  return n;
}

TEST(Inode, StripedRoundTripKeepsLayoutAndBitmap) {
  Inode n = Striped();
  auto d = DecodeInode(EncodeInode(n), "p");
  ASSERT_OK(d);
  EXPECT_TRUE(d->is_striped);
  EXPECT_EQ(d->uid, n.uid);
  EXPECT_EQ(d->replicas, 2u);
  EXPECT_EQ(d->layout, n.layout);
  EXPECT_TRUE(d->ChunkWritten(0));
  EXPECT_FALSE(d->ChunkWritten(1));
  EXPECT_FALSE(d->ChunkWritten(4));
  EXPECT_TRUE(d->ChunkWritten(5));
  EXPECT_FALSE(d->own_replicas);
  n.own_replicas = true;  // a count its creator chose: kept by repair
  d = DecodeInode(EncodeInode(n), "p");
  ASSERT_OK(d);
  EXPECT_TRUE(d->own_replicas);
  EXPECT_EQ(d->replicas, 2u);
  std::string bad = EncodeInode(n);
  bad[1] = 4;  // the flag without kFlagStriped
  EXPECT_CODE(DecodeInode(bad, "p"), kCorruption);
}

TEST(Inode, StripedRecordsThatDisagreeAreCorruption) {
  Inode n = Striped();
  n.written = {1, 0};  // bitmap longer than 6 chunks need
  EXPECT_CODE(DecodeInode(EncodeInode(n), "p"), kCorruption);
  n = Striped();
  n.replicas = 3;  // more replicas than members
  EXPECT_CODE(DecodeInode(EncodeInode(n), "p"), kCorruption);
  std::string rec = EncodeInode(Striped());
  for (size_t cut = 0; cut < rec.size(); ++cut) {
    EXPECT_CODE(DecodeInode(rec.substr(0, cut), "p"), kCorruption) << "cut at " << cut;
  }
}

TEST(Inode, StripedTailKeepsHomeAndRepairedCopies) {
  Inode n = Striped();
  n.home = 1;
  n.copies = {{0, {"m-c", "node-c"}, 77}, {5, {"m-d", "node-d"}, 78}};
  const std::string rec = EncodeInode(n);
  auto d = DecodeInode(rec, "p");
  ASSERT_OK(d);
  EXPECT_EQ(d->home, 1);
  EXPECT_EQ(d->copies, n.copies);
  // A record without the tail (written before it existed) is the same object, home -1.
  const size_t plain = EncodeInode(Striped()).size();
  auto old = DecodeInode(rec.substr(0, plain), "p");
  ASSERT_OK(old);
  EXPECT_EQ(old->home, -1);
  EXPECT_TRUE(old->copies.empty());
  for (size_t cut = plain + 1; cut < rec.size(); ++cut) {
    EXPECT_CODE(DecodeInode(rec.substr(0, cut), "p"), kCorruption) << "cut at " << cut;
  }
  n.home = 2;  // only two members
  EXPECT_CODE(DecodeInode(EncodeInode(n), "p"), kCorruption);
  n.home = -1;
  n.copies = {{6, {"m-c", "node-c"}, 77}};  // past the last chunk
  EXPECT_CODE(DecodeInode(EncodeInode(n), "p"), kCorruption);
}

}  // namespace
}  // namespace shoal::engine
