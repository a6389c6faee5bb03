// shoal-fuzz target for engine/observer_protocol.h: the decoders of what a guest sends a
// member and of what members answer it (JSON documents).
//
// Input: one byte choosing the decoder (modulo 8), then the document. An accepted document
// must re-encode to bytes that decode again, and encoding that value once more must give the
// same bytes; a refused one must be refused with InvalidArgument — never a crash, an exception
// or an out-of-bounds read.
#include "base/bytes.h"
#include "engine/observer_protocol.h"
#include "tests/fuzz/fuzz_target.h"

namespace shoal::fuzz {
namespace {

namespace o = engine::observer;

template <typename Msg>
void RoundTrip(std::span<const std::byte> doc) {
  Msg m;
  Status s = o::Decode(doc, &m);
  if (!s.ok()) {
    FUZZ_REQUIRE(s.IsInvalidArgument());
    return;
  }
  const o::Bytes once = o::Encode(m);
  Msg again;
  FUZZ_REQUIRE(o::Decode(once, &again).ok());
  FUZZ_REQUIRE(o::Encode(again) == once);
}

}  // namespace

void FuzzObserver(std::string_view input) {
  Input in(input);
  const auto which = in.Take<uint8_t>();
  const std::span<const std::byte> b = AsBytes(in.Rest());
  switch (which % 8) {
    case 0: return RoundTrip<o::PathRequest>(b);
    case 1: return RoundTrip<o::ListRequest>(b);
    case 2: return RoundTrip<o::ReadRequestMsg>(b);
    case 3: return RoundTrip<ObjectInfo>(b);
    case 4: return RoundTrip<ListPage>(b);
    case 5: return RoundTrip<std::vector<std::vector<uint32_t>>>(b);
    case 6: return RoundTrip<o::MemberReport>(b);
    case 7: return RoundTrip<o::ScrubReport>(b);
  }
}

std::vector<std::string> ObserverSeeds() {
  std::vector<std::string> seeds;
  auto add = [&](uint8_t which, const o::Bytes& doc) {
    std::string s(1, static_cast<char>(which));
    s.append(AsChars(doc));
    seeds.push_back(std::move(s));
  };
  add(0, o::Encode(o::PathRequest{"a/b"}));
  add(1, o::Encode(o::ListRequest{"dir", ListOptions{"x", 100}}));
  add(2, o::Encode(o::ReadRequestMsg{"a/b", 5, 4096}));
  add(3, o::Encode(ObjectInfo{"a/b", 5, 65536, 1, false, 1700000000000000000}));
  ListPage page;
  page.entries = {{"a", true, 3}, {"b", false, 9}};
  page.truncated = true;
  page.next_start_after = "b";
  add(4, o::Encode(page));
  add(5, o::Encode(std::vector<std::vector<uint32_t>>{{0, 1}, {}, {2}}));
  o::MemberReport r;
  r.member = 1;
  r.members = 4;
  r.node = "n1";
  r.background.lost = {"x/y"};
  r.stats.counters["engine.read.ops"] = 5;
  r.stats.histograms["engine.read.latency_ns"] = HistogramStats{3, 30, 8, 16, 16, 16};
  add(6, o::Encode(r));
  o::ScrubReport sr;
  sr.chunk_objects = 3;
  sr.unrepaired = {"p/q"};
  sr.ms = 1.5;
  add(7, o::Encode(sr));
  return seeds;
}

}  // namespace shoal::fuzz
