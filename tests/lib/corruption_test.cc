// A flipped byte in the store is reported as Corruption naming object and chunk, never returned
// as data; the other chunks and objects still read.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "shoal/engine.h"
#include "tests/test_util.h"

namespace shoal {
namespace {

using testing::Pattern;
using testing::TempDir;

constexpr uint32_t kChunk = 64u << 10;

// Finds `needle` in the file and flips one bit of its first byte. Returns false if not found.
bool FlipFirstMatch(const std::string& file, const std::vector<std::byte>& needle) {
  std::ifstream in(file, std::ios::binary);
  std::string hay((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string n(reinterpret_cast<const char*>(needle.data()), needle.size());
  size_t pos = hay.find(n);
  if (pos == std::string::npos) return false;
  int fd = ::open(file.c_str(), O_RDWR);
  char c = static_cast<char>(hay[pos] ^ 0x01);
  bool ok = ::pwrite(fd, &c, 1, static_cast<off_t>(pos)) == 1 && ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

std::string OnlySegment(const std::string& chunks_dir) {
  std::string found;
  for (auto& f : std::filesystem::directory_iterator(chunks_dir)) found = f.path();
  return found;
}

TEST(Corruption, FlippedChunkByteIsReportedNotReturned) {
  TempDir dir;
  Options o;
  o.store_dir = dir.Sub("store");
  o.chunk_size = kChunk;
  auto data = Pattern(4 * kChunk + 100, 11);
  auto other = Pattern(kChunk, 12);
  {
    auto e = Engine::Open(o);
    ASSERT_OK(e);
    ASSERT_OK((*e)->Put("ds/victim", data));
    ASSERT_OK((*e)->Put("ds/bystander", other));
  }
  // Flip a byte inside chunk 2 of the victim.
  std::vector<std::byte> needle(data.begin() + 2 * kChunk + 500, data.begin() + 2 * kChunk + 564);
  ASSERT_TRUE(FlipFirstMatch(OnlySegment(dir.Sub("store/chunks")), needle));

  auto e = Engine::Open(o);
  ASSERT_OK(e);
  Engine& engine = **e;
  std::vector<std::byte> buf(data.size());
  auto n = engine.Read("ds/victim", 0, buf);
  ASSERT_EQ(n.status().code(), Code::kCorruption) << n.status();
  EXPECT_NE(n.status().message().find("chunk 2 of \"ds/victim\""), std::string::npos)
      << n.status();
  EXPECT_NE(n.status().message().find("CRC32C mismatch"), std::string::npos) << n.status();
  // The damaged range never shows up in the buffer as data.
  std::vector<std::byte> bad(kChunk);
  auto direct = engine.Read("ds/victim", 2 * kChunk, bad);
  EXPECT_EQ(direct.status().code(), Code::kCorruption);
  EXPECT_NE(std::vector<std::byte>(data.begin() + 2 * kChunk, data.begin() + 3 * kChunk), bad);
  // Chunks around it and other objects are fine.
  std::vector<std::byte> first(2 * kChunk);
  ASSERT_OK(engine.Read("ds/victim", 0, first));
  EXPECT_TRUE(std::equal(first.begin(), first.end(), data.begin()));
  std::vector<std::byte> tail(kChunk + 100);
  ASSERT_OK(engine.Read("ds/victim", 3 * kChunk, tail));
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), data.begin() + 3 * kChunk));
  std::vector<std::byte> ob(kChunk);
  ASSERT_OK(engine.Read("ds/bystander", 0, ob));
  EXPECT_EQ(ob, other);
}

TEST(Corruption, FlippedInlineByteIsReported) {
  TempDir dir;
  Options o;
  o.store_dir = dir.Sub("store");
  auto small = Pattern(1500, 5);
  {
    auto e = Engine::Open(o);
    ASSERT_OK(e);
    ASSERT_OK((*e)->Put("tiny/label", small));
  }
  ASSERT_TRUE(FlipFirstMatch(dir.Sub("store/meta/data.mdb"),
                             std::vector<std::byte>(small.begin() + 700, small.begin() + 764)));
  auto e = Engine::Open(o);
  ASSERT_OK(e);
  std::vector<std::byte> buf(small.size());
  auto n = (*e)->Read("tiny/label", 0, buf);
  EXPECT_EQ(n.status().code(), Code::kCorruption) << n.status();
  EXPECT_NE(n.status().message().find("tiny/label"), std::string::npos);
}

}  // namespace
}  // namespace shoal
