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

TEST(Crc32c, DetectsOneFlippedBit) {
  std::string s(4096, 'a');
  uint32_t before = Crc32c(s.data(), s.size());
  s[1000] ^= 0x10;
  EXPECT_NE(before, Crc32c(s.data(), s.size()));
}

}  // namespace
}  // namespace shoal
