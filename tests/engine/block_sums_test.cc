// Block sums (engine/block_sums.h): a small read of a large chunk reads and checks only the
// 4 KiB blocks it touches, and still never returns damaged bytes.
#include "engine/block_sums.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <lmdb.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "base/crc32c.h"
#include "engine/fault_disk.h"
#include "engine/lmdb_txn.h"
#include "engine/object_store.h"
#include "engine/store_layout.h"
#include "tests/test_util.h"

namespace shoal::engine {
namespace {

using shoal::testing::Pattern;
using shoal::testing::TempDir;
using shoal::testing::TestOptions;

TEST(BlockSums, TheChunkCrcIsCombinedFromTheBlocksInOnePass) {
  for (uint32_t len : {1u, 4095u, 4096u, 4097u, 65536u, 65536u + 1000u, 3u * 4096u + 1u}) {
    const std::vector<std::byte> data = Pattern(len, len);
    std::vector<uint32_t> sums;
    EXPECT_EQ(ComputeBlockSums(data.data(), len, &sums), Crc32c(data.data(), len)) << len;
    ASSERT_EQ(sums.size(), SumBlocks(len)) << len;
    for (uint32_t b = 0; b < sums.size(); ++b) {
      const uint32_t n = std::min<uint32_t>(kSumBlock, len - b * kSumBlock);
      EXPECT_EQ(sums[b], Crc32c(data.data() + b * kSumBlock, n)) << len << " block " << b;
    }
  }
}

TEST(BlockSums, CoverBlocksAndFirstBadBlock) {
  EXPECT_EQ(CoverBlocks(0, 1, 65536).begin, 0u);
  EXPECT_EQ(CoverBlocks(0, 1, 65536).end, 4096u);
  EXPECT_EQ(CoverBlocks(4095, 2, 65536).begin, 0u);  // straddles two blocks
  EXPECT_EQ(CoverBlocks(4095, 2, 65536).end, 8192u);
  EXPECT_EQ(CoverBlocks(8192, 4096, 65536).begin, 8192u);  // exactly one
  EXPECT_EQ(CoverBlocks(8192, 4096, 65536).end, 12288u);
  EXPECT_EQ(CoverBlocks(9000, 50000, 10000).end, 12288u);  // cut at the chunk's last block
  const uint32_t len = 5 * 4096 + 10;
  std::vector<std::byte> data = Pattern(len, 3);
  std::vector<uint32_t> sums;
  ComputeBlockSums(data.data(), len, &sums);
  const BlockSpan all{0, 6 * 4096};
  std::vector<std::byte> disk(all.end, std::byte{0});
  std::memcpy(disk.data(), data.data(), len);
  EXPECT_FALSE(FirstBadBlock(disk.data(), all, len, sums).has_value());
  disk[len + 5] = std::byte{1};  // after the logical end: padding, not data
  EXPECT_FALSE(FirstBadBlock(disk.data(), all, len, sums).has_value());
  disk[3 * 4096 + 7] ^= std::byte{0x40};
  EXPECT_EQ(FirstBadBlock(disk.data(), all, len, sums), 3u);
  // A span starting at block 2 reads its own bytes from the start of `data`.
  const BlockSpan mid{2 * 4096, 3 * 4096};
  EXPECT_FALSE(FirstBadBlock(disk.data() + 2 * 4096, mid, len, sums).has_value());
  EXPECT_EQ(FirstBadBlock(disk.data() + 3 * 4096, BlockSpan{3 * 4096, 4 * 4096}, len, sums), 3u);
  // Too few sums for the span: refused, never read past them.
  EXPECT_EQ(FirstBadBlock(disk.data(), all, len, std::span(sums).first(2)), 2u);
}

constexpr uint32_t kChunk = 1u << 20;  // 256 blocks: a small read is a small part of it

class SmallReads : public ::testing::TestWithParam<IoBackend> {
 protected:
  void SetUp() override {
    Open();
    data_ = Pattern(3 * kChunk + 5000, 11);
    ASSERT_OK(store_->Create("big", {}));
    ASSERT_OK(store_->Write("big", 0, data_));
    ASSERT_OK(store_->Seal("big"));
  }
  void Open() {
    store_.reset();
    auto disk = NewDisk(GetParam(), 8);
    ASSERT_OK(disk);
    auto fault = std::make_unique<FaultDisk>(std::move(disk).value());
    disk_ = fault.get();
    Options o = TestOptions(dir_.Sub("store"), GetParam());
    o.chunk_size = kChunk;
    auto s = ObjectStore::Open(o, std::move(fault));
    ASSERT_OK(s);
    store_ = std::move(s).value();
  }
  // Reads the ranges in one batch; returns the bytes the disk was asked for.
  uint64_t Read(std::vector<ReadRequest>& reqs) {
    const uint64_t before = disk_->bytes_read();
    EXPECT_OK(store_->ReadBatch(reqs));
    return disk_->bytes_read() - before;
  }
  // Flips one bit of the object's byte `at` in its segment (the store closed meanwhile).
  void Damage(uint64_t at) {
    store_.reset();
    ASSERT_TRUE(shoal::testing::FlipBitAt(dir_.Sub("store/chunks"),
                                          std::span(data_).subspan(at, 64)));
    Open();
  }

  TempDir dir_;
  FaultDisk* disk_ = nullptr;
  std::unique_ptr<ObjectStore> store_;
  std::vector<std::byte> data_;
};

TEST_P(SmallReads, ReadOnlyTheBlocksTheyTouchAndReturnTheRightBytes) {
  std::mt19937_64 rng(GetParam() == IoBackend::kPosix ? 1 : 2);
  // Within a block, across a block boundary, across a chunk boundary, the short last chunk,
  // and random ones; in one batch, so several fall in one chunk.
  struct Range {
    uint64_t off;
    uint32_t len;
  };
  std::vector<Range> ranges = {{100, 10},          {4090, 12},        {kChunk - 3, 7},
                               {3 * kChunk, 5000}, {3 * kChunk + 4999, 1}, {2 * kChunk, 4096}};
  for (int i = 0; i < 40; ++i) {
    const uint32_t len = 1 + rng() % 9000;
    ranges.push_back({rng() % (data_.size() - len), len});
  }
  std::vector<std::vector<std::byte>> bufs;
  std::vector<ReadRequest> reqs;
  uint64_t wanted = 0;
  for (const Range& r : ranges) {
    bufs.emplace_back(r.len);
    wanted += r.len;
  }
  for (size_t i = 0; i < ranges.size(); ++i) {
    reqs.push_back(ReadRequest{"big", ranges[i].off, bufs[i], {}, 0});
  }
  const uint64_t read = Read(reqs);
  for (size_t i = 0; i < ranges.size(); ++i) {
    ASSERT_OK(reqs[i].status) << i;
    ASSERT_EQ(reqs[i].bytes_read, ranges[i].len) << i;
    ASSERT_EQ(0, std::memcmp(bufs[i].data(), data_.data() + ranges[i].off, ranges[i].len))
        << "range " << i << " at " << ranges[i].off << " +" << ranges[i].len;
  }
  // Each range costs at most its length rounded out to blocks plus one block at each end;
  // the whole chunks would be 4 MiB.
  EXPECT_LE(read, wanted + ranges.size() * 2 * kSumBlock) << "wanted " << wanted;
  EXPECT_LT(read, kChunk);

  // One 4 KiB read: one block from the disk.
  std::vector<std::byte> one(4096);
  std::vector<ReadRequest> single{ReadRequest{"big", kChunk + 8192, one, {}, 0}};
  EXPECT_EQ(Read(single), kSumBlock);
  ASSERT_OK(single[0].status);
  EXPECT_EQ(0, std::memcmp(one.data(), data_.data() + kChunk + 8192, 4096));
  // Most of a chunk reads it whole (one I/O, one CRC pass); its 50 bytes in the next chunk
  // are one block.
  std::vector<std::byte> most(kChunk - 100);
  std::vector<ReadRequest> large{ReadRequest{"big", 150, most, {}, 0}};
  EXPECT_EQ(Read(large), kChunk + kSumBlock);
  ASSERT_OK(large[0].status);
  EXPECT_EQ(0, std::memcmp(most.data(), data_.data() + 150, most.size()));
}

TEST_P(SmallReads, ADamagedBlockFailsTheReadsThatTouchItOnly) {
  const uint64_t bad = kChunk + 10 * 4096 + 300;
  Damage(bad);
  std::vector<std::byte> a(100), b(100), c(kChunk);
  // Each in its own batch (ranges of one chunk in one batch share its read).
  std::vector<ReadRequest> reqs{ReadRequest{"big", bad - 50, a, {}, 0},     // the bad block
                                ReadRequest{"big", bad + 8192, b, {}, 0},   // two blocks on
                                ReadRequest{"big", kChunk, c, {}, 0}};      // the whole chunk
  for (ReadRequest& r : reqs) EXPECT_OK(store_->ReadBatch({&r, 1}));
  EXPECT_EQ(reqs[0].status.code(), Code::kCorruption) << reqs[0].status;
  EXPECT_NE(reqs[0].status.message().find("block 10"), std::string::npos) << reqs[0].status;
  EXPECT_EQ(reqs[0].bytes_read, 0u);
  ASSERT_OK(reqs[1].status);
  EXPECT_EQ(0, std::memcmp(b.data(), data_.data() + bad + 8192, 100));
  EXPECT_EQ(reqs[2].status.code(), Code::kCorruption) << reqs[2].status;
  // A holder's lent range checks the same way: the bad block is not lent, the good one is.
  EXPECT_FALSE(store_->LendChunkRange("big", bad - 50, 100));
  auto good = store_->LendChunkRange("big", bad + 8192, 100);
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ(0, std::memcmp(good->data.data(), data_.data() + bad + 8192, 100));
}

// A chunk sealed before format 6 has an extent record without sums: its small reads read the
// whole chunk and check its CRC, as they did.
TEST_P(SmallReads, AChunkWithoutSumsIsReadWhole) {
  store_.reset();
  {
    MDB_env* env = nullptr;
    ASSERT_EQ(mdb_env_create(&env), 0);
    ASSERT_EQ(mdb_env_set_maxdbs(env, 64), 0);
    ASSERT_EQ(mdb_env_open(env, dir_.Sub("store/meta").c_str(), 0, 0600), 0);
    MDB_txn* txn = nullptr;
    ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
    MDB_dbi dbi;
    ASSERT_EQ(mdb_dbi_open(txn, "extents", 0, &dbi), 0);
    MDB_cursor* cur = nullptr;
    ASSERT_EQ(mdb_cursor_open(txn, dbi, &cur), 0);
    MDB_val k{}, v{};
    int n = 0;
    std::vector<std::pair<std::string, uint32_t>> records;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      ASSERT_EQ(v.mv_size, 4 + 4 * ((uint64_t{*static_cast<uint32_t*>(v.mv_data)}) / 4096));
      uint32_t disk = 0;
      std::memcpy(&disk, v.mv_data, 4);
      records.emplace_back(std::string(static_cast<char*>(k.mv_data), k.mv_size), disk);
      ++n;
    }
    mdb_cursor_close(cur);
    EXPECT_EQ(n, 4);  // four chunks, each with its sums
    for (auto& [key, disk] : records) {
      MDB_val kk{key.size(), key.data()}, vv{4, &disk};
      ASSERT_EQ(mdb_put(txn, dbi, &kk, &vv, 0), 0);
    }
    ASSERT_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
  }
  Open();
  std::vector<std::byte> one(4096);
  std::vector<ReadRequest> single{ReadRequest{"big", kChunk + 8192, one, {}, 0}};
  EXPECT_EQ(Read(single), kChunk);
  ASSERT_OK(single[0].status);
  EXPECT_EQ(0, std::memcmp(one.data(), data_.data() + kChunk + 8192, 4096));
}

INSTANTIATE_TEST_SUITE_P(Backends, SmallReads,
                         ::testing::Values(IoBackend::kIoUring, IoBackend::kPosix),
                         shoal::testing::BackendName());

}  // namespace
}  // namespace shoal::engine
