// ObjectStore::LendChunkRange: the chunk holder's read that a reply sends from without a copy.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "base/crc32c.h"
#include "engine/object_store.h"
#include "tests/test_util.h"

namespace shoal::engine {
namespace {

using shoal::testing::kTestChunk;
using shoal::testing::Pattern;
using shoal::testing::TempDir;
using shoal::testing::TestOptions;

Status PutObject(ObjectStore& s, std::string_view path, const std::vector<std::byte>& data) {
  SHOAL_RETURN_IF_ERROR(s.Create(path, {}));
  SHOAL_RETURN_IF_ERROR(s.Write(path, 0, data));
  return s.Seal(path);
}

class LendTest : public ::testing::TestWithParam<IoBackend> {
 protected:
  void SetUp() override {
    auto s = ObjectStore::Open(TestOptions(dir_.Sub("store"), GetParam()));
    ASSERT_OK(s);
    store_ = std::move(s).value();
    data_ = Pattern(3 * kTestChunk + 1000, 7);
    ASSERT_OK(PutObject(*store_, "o", data_));
  }
  TempDir dir_;
  std::unique_ptr<ObjectStore> store_;
  std::vector<std::byte> data_;
};

TEST_P(LendTest, AWholeChunkComesWithItsStoredCrcAndRoomForAHead) {
  auto lent = store_->LendChunkRange("o", kTestChunk, kTestChunk);
  ASSERT_TRUE(lent.has_value());
  ASSERT_EQ(lent->data.size(), kTestChunk);
  EXPECT_EQ(0, std::memcmp(lent->data.data(), data_.data() + kTestChunk, kTestChunk));
  ASSERT_TRUE(lent->crc.has_value());
  EXPECT_EQ(*lent->crc, Crc32c(lent->data.data(), lent->data.size()));
  // The room before the data is the caller's (ASan catches a write outside the buffer).
  std::memset(lent->data.data() - ObjectStore::kLendRoom, 0xab, ObjectStore::kLendRoom);
  EXPECT_EQ(0, std::memcmp(lent->data.data(), data_.data() + kTestChunk, kTestChunk));
  // The last chunk is short: cut at the object's end, still whole.
  auto last = store_->LendChunkRange("o", 3 * kTestChunk, kTestChunk);
  ASSERT_TRUE(last.has_value());
  ASSERT_EQ(last->data.size(), 1000u);
  EXPECT_EQ(0, std::memcmp(last->data.data(), data_.data() + 3 * kTestChunk, 1000));
  ASSERT_TRUE(last->crc.has_value());
  EXPECT_EQ(*last->crc, Crc32c(last->data.data(), 1000));
}

TEST_P(LendTest, APartOfAChunkHasNoCrcAndTheBytesOfThatPart) {
  auto part = store_->LendChunkRange("o", 2 * kTestChunk + 100, 5000);
  ASSERT_TRUE(part.has_value());
  ASSERT_EQ(part->data.size(), 5000u);
  EXPECT_EQ(0, std::memcmp(part->data.data(), data_.data() + 2 * kTestChunk + 100, 5000));
  EXPECT_FALSE(part->crc.has_value());
}

TEST_P(LendTest, WhatItCannotLendIsLeftToReadBatch) {
  EXPECT_FALSE(store_->LendChunkRange("o", kTestChunk - 10, 20));          // across chunks
  EXPECT_FALSE(store_->LendChunkRange("o", data_.size(), 10));             // at the end
  EXPECT_FALSE(store_->LendChunkRange("o", data_.size() + 4096, 10));      // past it
  EXPECT_FALSE(store_->LendChunkRange("o", 0, 0));                         // nothing
  EXPECT_FALSE(store_->LendChunkRange("nothing-here", 0, 10));             // no object
  EXPECT_FALSE(store_->LendChunkRange("../bad", 0, 10));                   // no name
  ASSERT_OK(PutObject(*store_, "small", Pattern(100, 1)));                 // inline
  EXPECT_FALSE(store_->LendChunkRange("small", 0, 100));
  ASSERT_OK(store_->Create("holes", {}));                                  // a hole
  ASSERT_OK(store_->Write("holes", 2 * kTestChunk, Pattern(kTestChunk, 2)));
  ASSERT_OK(store_->Seal("holes"));
  EXPECT_FALSE(store_->LendChunkRange("holes", 0, kTestChunk));
  EXPECT_TRUE(store_->LendChunkRange("holes", 2 * kTestChunk, kTestChunk));
}

TEST_P(LendTest, ADamagedChunkIsNotLentAndReadBatchSaysWhy) {
  store_.reset();
  ASSERT_TRUE(shoal::testing::FlipBitAt(dir_.Sub("store/chunks"),
                                        std::span(data_).subspan(kTestChunk + 300, 64)));
  auto s = ObjectStore::Open(TestOptions(dir_.Sub("store"), GetParam()));
  ASSERT_OK(s);
  store_ = std::move(s).value();
  EXPECT_FALSE(store_->LendChunkRange("o", kTestChunk, kTestChunk));
  EXPECT_TRUE(store_->LendChunkRange("o", 0, kTestChunk));  // the other chunks are fine
  std::vector<std::byte> buf(kTestChunk);
  ReadRequest r{"o", kTestChunk, buf, {}, 0};
  ASSERT_OK(store_->ReadBatch({&r, 1}));
  EXPECT_EQ(r.status.code(), Code::kCorruption) << r.status;
}

TEST_P(LendTest, ALentBufferMayOutliveTheStoreAndManyMayBeOut) {
  // More lent at once than the pool has registered buffers: the rest come from its cache.
  std::vector<ObjectStore::LentRange> out;
  for (int i = 0; i < 40; ++i) {
    auto lent = store_->LendChunkRange("o", (i % 3) * kTestChunk, kTestChunk);
    ASSERT_TRUE(lent.has_value()) << i;
    out.push_back(std::move(*lent));
  }
  for (int i = 0; i < 40; ++i) {
    ASSERT_EQ(0, std::memcmp(out[i].data.data(), data_.data() + (i % 3) * kTestChunk, kTestChunk));
  }
  store_.reset();  // the buffers go back to a pool the store no longer has (ASan: no misuse)
  EXPECT_EQ(0, std::memcmp(out[5].data.data(), data_.data() + 2 * kTestChunk, kTestChunk));
  out.clear();
}

INSTANTIATE_TEST_SUITE_P(Backends, LendTest,
                         ::testing::Values(IoBackend::kIoUring, IoBackend::kPosix),
                         shoal::testing::BackendName());

}  // namespace
}  // namespace shoal::engine
