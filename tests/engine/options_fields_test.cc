// Options by name (include/shoal/options.h: OptionFields / SetOption / GetOption): the table
// covers every field the header declares (so no front end's list can fall behind), values
// round-trip through text, and bad text is refused naming the option.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "shoal/options.h"

namespace shoal {
namespace {

std::set<std::string> DeclaredFields() {
  std::ifstream in(std::string(SHOAL_SOURCE_DIR) + "/include/shoal/options.h");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const size_t begin = text.find("struct Options {");
  const size_t end = text.find("\n};", begin);
  EXPECT_NE(begin, std::string::npos);
  const std::string body = text.substr(begin, end - begin);
  std::set<std::string> names;
  static const std::regex field(R"(\n  [A-Za-z0-9_:<>]+ ([a-z_]+)( = [^;]*)?;)");
  for (std::sregex_iterator it(body.begin(), body.end(), field), last; it != last; ++it) {
    names.insert((*it)[1]);
  }
  return names;
}

TEST(OptionFields, CoverEveryFieldTheHeaderDeclares) {
  std::set<std::string> table;
  for (const OptionField& f : OptionFields()) EXPECT_TRUE(table.insert(f.name).second) << f.name;
  std::set<std::string> declared = DeclaredFields();
  EXPECT_GE(declared.size(), 25u);
  EXPECT_EQ(declared.erase("allgather"), 1u);  // a function: not settable by name
  EXPECT_EQ(table, declared);
}

TEST(OptionFields, RoundTripThroughText) {
  Options o;
  EXPECT_EQ(*GetOption(o, "chunk_size"), "4194304");
  EXPECT_EQ(*GetOption(o, "direct_io"), "true");
  EXPECT_EQ(*GetOption(o, "io_backend"), "auto");
  ASSERT_TRUE(SetOption(&o, "chunk_size", "1048576").ok());
  ASSERT_TRUE(SetOption(&o, "direct_io", "0").ok());
  ASSERT_TRUE(SetOption(&o, "io_backend", "posix").ok());
  ASSERT_TRUE(SetOption(&o, "segment_size", "17179869184").ok());
  ASSERT_TRUE(SetOption(&o, "lost_members", "m-1,,m-2").ok());
  ASSERT_TRUE(SetOption(&o, "metrics_listen", ":9400").ok());
  EXPECT_EQ(o.chunk_size, 1u << 20);
  EXPECT_FALSE(o.direct_io);
  EXPECT_EQ(o.io_backend, IoBackend::kPosix);
  EXPECT_EQ(o.segment_size, 16ull << 30);
  EXPECT_EQ(o.lost_members, (std::vector<std::string>{"m-1", "m-2"}));
  EXPECT_EQ(o.metrics_listen, ":9400");
  Options copy;
  for (const OptionField& f : OptionFields()) {
    auto text = GetOption(o, f.name);
    ASSERT_TRUE(text.ok()) << f.name;
    ASSERT_TRUE(SetOption(&copy, f.name, *text).ok()) << f.name << "=" << *text;
    EXPECT_EQ(*GetOption(copy, f.name), *text) << f.name;
  }
}

TEST(OptionFields, BadTextIsRefusedNamingTheOption) {
  Options o;
  for (auto [name, value] : std::vector<std::pair<const char*, const char*>>{
           {"chunk_size", "-1"}, {"chunk_size", "4M"}, {"chunk_size", ""},
           {"chunk_size", "99999999999"}, {"direct_io", "yes"}, {"io_backend", "aio"},
           {"segment_size", "1e9"}}) {
    Status s = SetOption(&o, name, value);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << name << "=" << value;
    EXPECT_NE(s.message().find(name), std::string::npos) << s.ToString();
  }
  Status s = SetOption(&o, "chunksize", "1");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("known: store_dir"), std::string::npos) << s.ToString();
  EXPECT_EQ(o.chunk_size, Options{}.chunk_size);  // nothing changed by a refused value
}

}  // namespace
}  // namespace shoal
