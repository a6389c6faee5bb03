// Disk full, I/O errors and a full metadata map, injected through FaultDisk: each gives a clear
// error, and nothing sealed is damaged.
#include <gtest/gtest.h>

#include "engine/fault_disk.h"
#include "engine/object_store.h"
#include "lib/engine_impl.h"
#include "shoal/engine.h"
#include "tests/test_util.h"

namespace shoal {
namespace {

using engine::FaultDisk;
using testing::Pattern;
using testing::TempDir;

constexpr uint32_t kChunk = testing::kTestChunk;

class FaultTest : public ::testing::TestWithParam<IoBackend> {
 protected:
  Options MakeOptions() const {
    return testing::TestOptions(dir_.Sub("store"), GetParam(), 4);
  }
  void Open(Options o) {
    engine_.reset();
    auto inner = engine::NewDisk(o.io_backend, o.queue_depth);
    ASSERT_OK(inner);
    auto fault = std::make_unique<FaultDisk>(std::move(inner).value());
    fault_ = fault.get();
    auto store = engine::ObjectStore::Open(o, std::move(fault));
    ASSERT_OK(store);
    engine_ = Engine::Impl::Wrap(std::move(store).value());
  }
  void SetUp() override { Open(MakeOptions()); }

  void ExpectIntact(const std::string& path, const std::vector<std::byte>& want) {
    std::vector<std::byte> got(want.size() + 1);
    auto n = engine_->Read(path, 0, got);
    ASSERT_OK(n) << path;
    ASSERT_EQ(*n, want.size());
    got.resize(want.size());
    EXPECT_EQ(got, want) << path;
  }

  TempDir dir_;
  FaultDisk* fault_ = nullptr;
  std::unique_ptr<Engine> engine_;
};

TEST_P(FaultTest, DiskFullGivesNoSpaceAndDamagesNothingSealed) {
  auto a = Pattern(5 * kChunk + 3, 1), b = Pattern(100, 2);
  ASSERT_OK(engine_->Put("keep/a", a));
  ASSERT_OK(engine_->Put("keep/b", b));
  fault_->SetSpaceLeft(3 * kChunk);
  auto big = Pattern(20 * kChunk, 3);
  ASSERT_OK(engine_->Create("full/big"));
  Status s;
  for (uint64_t off = 0; off < big.size() && s.ok(); off += kChunk) {
    s = engine_->Write("full/big", off, big.data() + off, kChunk);
  }
  if (s.ok()) s = engine_->Seal("full/big");
  EXPECT_TRUE(s.IsNoSpace()) << s;
  EXPECT_NE(s.message().find("full/big"), std::string::npos) << s;
  EXPECT_CODE(engine_->Seal("full/big"), kNoSpace);  // stays failed until aborted
  ASSERT_OK(engine_->Abort("full/big"));
  EXPECT_CODE(engine_->Stat("full/big"), kNotFound);
  EXPECT_CODE(engine_->Put("full/other", Pattern(4 * kChunk, 4)), kNoSpace);
  ExpectIntact("keep/a", a);
  ExpectIntact("keep/b", b);

  fault_->SetSpaceLeft(UINT64_MAX);  // space freed: work goes on
  ASSERT_OK(engine_->Put("full/big", big));
  Open(MakeOptions());
  ExpectIntact("keep/a", a);
  ExpectIntact("keep/b", b);
  ExpectIntact("full/big", big);
  EXPECT_CODE(engine_->Stat("full/other"), kNotFound);
}

TEST_P(FaultTest, ReadErrorsAreIOErrorAndPass) {
  auto a = Pattern(3 * kChunk, 1);
  ASSERT_OK(engine_->Put("r/a", a));
  fault_->SetFailReads(true);
  std::vector<std::byte> buf(a.size());
  auto n = engine_->Read("r/a", 0, buf);
  EXPECT_CODE(n, kIOError);
  EXPECT_NE(n.status().message().find("chunk 0 of \"r/a\""), std::string::npos) << n.status();
  fault_->SetFailReads(false);
  ExpectIntact("r/a", a);
}

TEST_P(FaultTest, WriteErrorFailsSealAndLeavesNothingVisible) {
  auto a = Pattern(kChunk + 5, 1);
  ASSERT_OK(engine_->Put("w/keep", a));
  fault_->SetFailWrites(true);
  EXPECT_CODE(engine_->Put("w/bad", Pattern(4 * kChunk, 2)), kIOError);
  EXPECT_CODE(engine_->Stat("w/bad"), kNotFound);
  fault_->SetFailWrites(false);
  ASSERT_OK(engine_->Put("w/bad", Pattern(4 * kChunk, 2)));
  ExpectIntact("w/keep", a);
}

TEST_P(FaultTest, FsyncErrorFailsSeal) {
  fault_->SetFailSync(true);
  Status s = engine_->Put("s/obj", Pattern(2 * kChunk, 1));
  EXPECT_TRUE(s.IsIOError()) << s;
  EXPECT_NE(s.message().find("fdatasync"), std::string::npos) << s;
  EXPECT_CODE(engine_->Stat("s/obj"), kNotFound);
  fault_->SetFailSync(false);
  ASSERT_OK(engine_->Put("s/obj", Pattern(2 * kChunk, 1)));
  ExpectIntact("s/obj", Pattern(2 * kChunk, 1));
}

TEST_P(FaultTest, FullMetadataMapGivesNoSpace) {
  Options o = MakeOptions();
  o.metadata_map_size = 16ull << 20;
  o.inline_threshold = 65536;
  Open(o);
  std::vector<std::string> sealed;
  Status s;
  for (int i = 0; i < 2000 && s.ok(); ++i) {
    std::string p = "m/obj-" + std::to_string(i);
    s = engine_->Put(p, Pattern(60000, i));
    if (s.ok()) sealed.push_back(p);
  }
  EXPECT_TRUE(s.IsNoSpace()) << s;
  ASSERT_GT(sealed.size(), 10u);
  for (size_t i = 0; i < sealed.size(); i += 37) ExpectIntact(sealed[i], Pattern(60000, i));
  Open(o);
  ExpectIntact(sealed.back(), Pattern(60000, sealed.size() - 1));
  ASSERT_OK(engine_->Remove(sealed[0]));
}

// A batch of ranges packed back to back across chunk boundaries (a state dict's tensors, one
// blob) goes to the disk once per chunk, not once per range, and every range gets its bytes;
// a read error reaches every range of the failed chunk.
TEST_P(FaultTest, BatchOfRangesSharingChunksReadsEachChunkOnce) {
  auto data = Pattern(4 * kChunk, 9);
  ASSERT_OK(engine_->Put("blob", data));
  // 13 ranges of uneven sizes covering the 4 chunks, most straddling a boundary.
  std::vector<uint64_t> cuts = {0};
  for (uint64_t c = kChunk / 3; c < data.size(); c += kChunk / 3 + 77) cuts.push_back(c);
  cuts.push_back(data.size());
  std::vector<std::vector<std::byte>> got(cuts.size() - 1);
  std::vector<ReadRequest> reqs(got.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    got[i].resize(cuts[i + 1] - cuts[i]);
    reqs[i].path = "blob";
    reqs[i].offset = cuts[i];
    reqs[i].dst = got[i];
  }
  ASSERT_GT(reqs.size(), 8u);
  const uint64_t before = fault_->reads();
  ASSERT_OK(engine_->ReadBatch(reqs));
  EXPECT_EQ(fault_->reads() - before, 4u);
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_OK(reqs[i].status) << i;
    EXPECT_EQ(reqs[i].bytes_read, got[i].size());
    EXPECT_TRUE(std::equal(got[i].begin(), got[i].end(), data.begin() + cuts[i])) << i;
  }
  fault_->SetFailReads(true);
  ASSERT_OK(engine_->ReadBatch(reqs));
  fault_->SetFailReads(false);
  for (const ReadRequest& r : reqs) {
    EXPECT_CODE(r.status, kIOError);
    EXPECT_EQ(r.bytes_read, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, FaultTest,
                         ::testing::Values(IoBackend::kIoUring, IoBackend::kPosix), testing::BackendName());

}  // namespace
}  // namespace shoal
