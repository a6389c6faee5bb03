// The observer protocol's decoders (engine/observer_protocol.h): what a member accepts from a
// guest and what a guest accepts from a member. Round trips, and hostile documents refused
// with InvalidArgument naming what is wrong (the fuzz target `observer` covers the rest).
#include "engine/observer_protocol.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/test_util.h"

namespace shoal::engine::observer {
namespace {

Bytes Doc(std::string_view s) {
  auto* p = reinterpret_cast<const std::byte*>(s.data());
  return Bytes(p, p + s.size());
}

TEST(ObserverProtocol, RequestsAndRepliesRoundTrip) {
  ReadRequestMsg r;
  ASSERT_OK(Decode(Encode(ReadRequestMsg{"a/b", 7, 4096}), &r));
  EXPECT_EQ(r.path, "a/b");
  EXPECT_EQ(r.offset, 7u);
  EXPECT_EQ(r.length, 4096u);
  ListRequest l;
  ASSERT_OK(Decode(Encode(ListRequest{"", ListOptions{"m", 10}}), &l));
  EXPECT_EQ(l.dir, "");
  EXPECT_EQ(l.options.start_after, "m");
  EXPECT_EQ(l.options.limit, 10u);
  MemberReport m;
  m.member = 3;
  m.node = "n";
  m.space.free_bytes = 1ull << 40;
  m.background.lost = {"x"};
  m.stats.counters["engine.read.ops"] = 9;
  m.stats.histograms["engine.read.latency_ns"] = HistogramStats{2, 20, 8, 16, 16, 16};
  MemberReport back;
  ASSERT_OK(Decode(Encode(m), &back));
  EXPECT_EQ(back.member, 3u);
  EXPECT_EQ(back.space.free_bytes, 1ull << 40);
  EXPECT_EQ(back.background.lost, std::vector<std::string>{"x"});
  EXPECT_EQ(back.stats.counters["engine.read.ops"], 9u);
  EXPECT_EQ(back.stats.histograms["engine.read.latency_ns"], (HistogramStats{2, 20, 8, 16, 16, 16}));
}

TEST(ObserverProtocol, HostileDocumentsAreRefusedNamingTheField) {
  auto refused = [](const Status& s, std::string_view words) {
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
    EXPECT_NE(s.message().find(words), std::string::npos) << s.ToString();
  };
  ReadRequestMsg r;
  refused(Decode(Doc("not json"), &r), "not a JSON object");
  refused(Decode(Doc("[1,2]"), &r), "not a JSON object");
  refused(Decode(Doc(R"({"path":"a","offset":0})"), &r), "length");
  refused(Decode(Doc(R"({"path":"a","offset":-1,"length":1})"), &r), "offset");
  refused(Decode(Doc(R"({"path":7,"offset":0,"length":1})"), &r), "path");
  refused(Decode(Doc(R"({"path":"a","offset":0,"length":16777217})"), &r), "at most");
  refused(Decode(Doc(R"({"path":"../etc","offset":0,"length":1})"), &r), "observer read");
  refused(Decode(Doc(R"({"path":"","offset":0,"length":1})"), &r), "observer read");
  ListRequest l;
  refused(Decode(Doc(R"({"dir":"","start_after":"","limit":0})"), &l), "limit");
  refused(Decode(Doc(R"({"dir":"","start_after":"","limit":99999999999})"), &l), "limit");
  refused(Decode(Doc(R"({"dir":"a//b","start_after":"","limit":5})"), &l), "observer list");
  ListPage page;
  refused(Decode(Doc(R"({"entries":[5],"truncated":false,"next_start_after":""})"), &page),
          "entry");
  std::vector<std::vector<uint32_t>> holders;
  refused(Decode(Doc(R"({"chunks":[[1,-2]]})"), &holders), "holder");
  refused(Decode(Doc(R"({"chunks":[[4294967296]]})"), &holders), "holder");
  MemberReport m;
  refused(Decode(Doc(R"({"member":1})"), &m), "no field");
  Bytes huge(kMaxGuestDocument + 1, std::byte{' '});
  refused(Decode(huge, &r), "document of");
}

}  // namespace
}  // namespace shoal::engine::observer
