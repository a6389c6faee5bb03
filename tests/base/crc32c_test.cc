#include "base/crc32c.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace shoal {
namespace {

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);  // RFC 3720 check value
  EXPECT_EQ(Crc32c("", 0), 0u);
  std::vector<unsigned char> zeros(32, 0);
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);  // RFC 3720 B.4
}

TEST(Crc32c, IncrementalEqualsWhole) {
  std::string s(100000, 'q');
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(i * 131);
  uint32_t whole = Crc32c(s.data(), s.size());
  uint32_t part = Crc32c(s.data(), 12345);
  part = Crc32c(s.data() + 12345, s.size() - 12345, part);
  EXPECT_EQ(whole, part);
}

TEST(Crc32c, CombineEqualsTheCrcOfTheConcatenation) {
  std::string s(3 * 4096 + 777, 'q');
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(i * 7919 + (i >> 9));
  const uint32_t whole = Crc32c(s.data(), s.size());
  for (size_t cut : {size_t{0}, size_t{1}, size_t{4096}, size_t{5000}, s.size()}) {
    EXPECT_EQ(Crc32cCombine(Crc32c(s.data(), cut), Crc32c(s.data() + cut, s.size() - cut),
                            s.size() - cut),
              whole)
        << "cut at " << cut;
  }
  // Block by block, as a chunk's CRC is built from its 4 KiB blocks' CRCs.
  const Crc32cAppender block(4096);
  uint32_t acc = 0;
  size_t pos = 0;
  for (; pos + 4096 <= s.size(); pos += 4096) acc = block.Combine(acc, Crc32c(s.data() + pos, 4096));
  acc = Crc32cCombine(acc, Crc32c(s.data() + pos, s.size() - pos), s.size() - pos);
  EXPECT_EQ(acc, whole);
  // A wrong length gives another CRC: the length is part of the combination.
  EXPECT_NE(Crc32cCombine(Crc32c(s.data(), 10), Crc32c(s.data() + 10, 20), 21),
            Crc32c(s.data(), 30));
}

TEST(Crc32c, DetectsOneFlippedBit) {
  std::string s(4096, 'a');
  uint32_t before = Crc32c(s.data(), s.size());
  s[1000] ^= 0x10;
  EXPECT_NE(before, Crc32c(s.data(), s.size()));
}

}  // namespace
}  // namespace shoal
