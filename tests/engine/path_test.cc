#include "engine/path.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/test_util.h"

namespace shoal::engine {
namespace {

TEST(Path, AcceptsHierarchicalNames) {
  for (const char* p : {"a", "ckpt/step-100/rank-3.bin", "data/x.y.z", "a b/c", "...", ".a/..b",
                        "unicode/\xc3\xa9t\xc3\xa9"}) {
    EXPECT_OK(ValidateObjectPath(p)) << p;
  }
  EXPECT_OK(ValidateObjectPath(std::string(255, 'x')));
  EXPECT_OK(ValidateDirPath(""));
}

TEST(Path, RejectsBadNames) {
  const std::string nul("a\0b", 3);
  for (std::string p : {std::string(""), std::string("/a"), std::string("a/"), std::string("a//b"),
                        std::string("."), std::string(".."), std::string("a/./b"),
                        std::string("a/../b"), std::string("../a"), nul, std::string("a\nb"),
                        std::string("a\x7f"), std::string(256, 'x'), std::string("/")}) {
    Status s = ValidateObjectPath(p);
    EXPECT_TRUE(s.IsInvalidArgument()) << "accepted: " << p;
  }
}

TEST(Path, RejectsOverlongPath) {
  std::string p;
  while (p.size() <= kMaxPathBytes) p += "abcdefgh/";
  p += "x";
  Status s = ValidateObjectPath(p);
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.message().find("longer than 4096"), std::string::npos) << s;
}

TEST(Path, ErrorNamesTheRuleAndEscapesControlBytes) {
  Status s = ValidateObjectPath("a\x01/b");
  EXPECT_NE(s.message().find("\\x01"), std::string::npos) << s;
  EXPECT_NE(s.message().find("control character"), std::string::npos) << s;
  s = ValidateObjectPath("/abs");
  EXPECT_NE(s.message().find("leading '/'"), std::string::npos) << s;
}

TEST(Path, SplitParent) {
  EXPECT_EQ(SplitParent("a/b/c"), std::make_pair(std::string_view("a/b"), std::string_view("c")));
  EXPECT_EQ(SplitParent("c"), std::make_pair(std::string_view(""), std::string_view("c")));
}

}  // namespace
}  // namespace shoal::engine
