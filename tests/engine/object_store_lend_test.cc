// ObjectStore::LendChunkRange: the chunk holder's read that a reply sends from without a copy;
// ObjectStore::LendWriteBuffer: the buffer a remote write is received into and staged from.
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

TEST_P(LendTest, AWholeChunkComesWithItsStoredCrc) {
  auto lent = store_->LendChunkRange("o", kTestChunk, kTestChunk);
  ASSERT_TRUE(lent.has_value());
  ASSERT_EQ(lent->data.size(), kTestChunk);
  EXPECT_EQ(0, std::memcmp(lent->data.data(), data_.data() + kTestChunk, kTestChunk));
  ASSERT_TRUE(lent->crc.has_value());
  EXPECT_EQ(*lent->crc, Crc32c(lent->data.data(), lent->data.size()));
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

std::vector<std::byte> ReadAll(ObjectStore& s, std::string_view path, size_t size) {
  std::vector<std::byte> out(size);
  ReadRequest r;
  r.path = std::string(path);
  r.dst = out;
  EXPECT_OK(s.ReadBatch({&r, 1}));
  EXPECT_OK(r.status);
  return out;
}

TEST_P(LendTest, AWriteBufferIsStagedAsItIsWhenItStartsAChunkElseCopied) {
  const auto data = Pattern(3 * kTestChunk + 5000, 11);
  ASSERT_OK(store_->Create("w", {}));
  auto fill = [&](uint64_t at, size_t len) {
    std::shared_ptr<IoBuffer> buf = store_->LendWriteBuffer(len);
    EXPECT_NE(buf, nullptr);
    std::memcpy(buf->data, data.data() + at, len);
    return buf;
  };
  // Chunk 0 whole, from a lent buffer: adopted (the pointer is left empty), no copy.
  auto b0 = fill(0, kTestChunk);
  ASSERT_OK(store_->Write("w", 0, {b0->data, kTestChunk}, b0.get()));
  EXPECT_TRUE(b0->empty());
  // Chunk 1 in two pieces: the first starts the chunk (adopted), the second lands after it in
  // that same buffer (copied from its own lent buffer, which stays the caller's).
  auto b1 = fill(kTestChunk, 1000);
  ASSERT_OK(store_->Write("w", kTestChunk, {b1->data, 1000}, b1.get()));
  EXPECT_TRUE(b1->empty());
  auto b1b = fill(kTestChunk + 1000, kTestChunk - 1000);
  ASSERT_OK(store_->Write("w", kTestChunk + 1000, {b1b->data, kTestChunk - 1000}, b1b.get()));
  EXPECT_FALSE(b1b->empty());
  // Chunk 2 from its middle first: copied; then its start, from a lent buffer, also copied
  // (the chunk is staged already), and the overlap rule still holds.
  auto b2 = fill(2 * kTestChunk + 4096, kTestChunk - 4096);
  ASSERT_OK(store_->Write("w", 2 * kTestChunk + 4096, {b2->data, kTestChunk - 4096}, b2.get()));
  EXPECT_FALSE(b2->empty());
  auto b2a = fill(2 * kTestChunk, 4096);
  ASSERT_OK(store_->Write("w", 2 * kTestChunk, {b2a->data, 4096}, b2a.get()));
  EXPECT_FALSE(b2a->empty());
  auto again = fill(2 * kTestChunk, 10);
  EXPECT_CODE(store_->Write("w", 2 * kTestChunk, {again->data, 10}, again.get()),
              kInvalidArgument);
  EXPECT_FALSE(again->empty());
  // The short last chunk, adopted; then the buffers the caller kept go back to the pool.
  auto b3 = fill(3 * kTestChunk, 5000);
  ASSERT_OK(store_->Write("w", 3 * kTestChunk, {b3->data, 5000}, b3.get()));
  EXPECT_TRUE(b3->empty());
  b0.reset(), b1.reset(), b1b.reset(), b2.reset(), b2a.reset(), again.reset(), b3.reset();
  ASSERT_OK(store_->Seal("w"));
  EXPECT_EQ(ReadAll(*store_, "w", data.size()), data);
  // A piece larger than the pool's buffers gets none (the transport allocates it).
  EXPECT_EQ(store_->LendWriteBuffer(kTestChunk + 1), nullptr);
}

TEST_P(LendTest, AnAdoptedBufferOfAnAbortedObjectGoesBackToThePool) {
  ASSERT_OK(store_->Create("a", {}));
  for (int i = 0; i < 40; ++i) {  // more than the pool registers: ASan/LSan see any leak
    auto b = store_->LendWriteBuffer(kTestChunk);
    ASSERT_NE(b, nullptr);
    std::memset(b->data, i, 100);
    ASSERT_OK(store_->Write("a", uint64_t(i) * kTestChunk, {b->data, 100}, b.get()));
    EXPECT_TRUE(b->empty());
  }
  ASSERT_OK(store_->Abort("a"));
  EXPECT_CODE(store_->Stat("a"), kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Backends, LendTest,
                         ::testing::Values(IoBackend::kIoUring, IoBackend::kPosix),
                         shoal::testing::BackendName());

}  // namespace
}  // namespace shoal::engine
