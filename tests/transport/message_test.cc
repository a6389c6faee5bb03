#include "transport/message.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "tests/test_util.h"

namespace shoal::transport {
namespace {

Header Sample() {
  Header h;
  h.kind = Kind::kResponse;
  h.op = 7;
  h.request_id = 0x1122334455667788ull;
  h.sender = 3;
  h.payload_bytes = 4096;
  h.status = Code::kNotFound;
  return h;
}

TEST(Message, RoundTrip) {
  std::byte buf[kHeaderBytes];
  EncodeHeader(Sample(), buf);
  auto h = DecodeHeader(buf, 4096, 4);
  ASSERT_OK(h);
  EXPECT_EQ(h->kind, Kind::kResponse);
  EXPECT_EQ(h->op, 7);
  EXPECT_EQ(h->request_id, 0x1122334455667788ull);
  EXPECT_EQ(h->sender, 3u);
  EXPECT_EQ(h->status, Code::kNotFound);
}

TEST(Message, RejectsInconsistentFields) {
  std::byte buf[kHeaderBytes];
  EncodeHeader(Sample(), buf);
  EXPECT_CODE(DecodeHeader(buf, 4095, 4), kInvalidArgument);  // length mismatch
  EXPECT_CODE(DecodeHeader(buf, 4096, 3), kInvalidArgument);  // sender outside the world
  EXPECT_CODE(DecodeHeader({buf, kHeaderBytes - 1}, 4096, 4), kInvalidArgument);
  Header r = Sample();
  r.kind = Kind::kRequest;  // requests carry no status
  EncodeHeader(r, buf);
  EXPECT_CODE(DecodeHeader(buf, 4096, 4), kInvalidArgument);
  r.status = Code::kOk;
  r.payload_bytes = kMaxPayloadBytes + 1;
  EncodeHeader(r, buf);
  EXPECT_CODE(DecodeHeader(buf, kMaxPayloadBytes + 1, 4), kInvalidArgument);
}

// A member closing says so (Kind::kLeaving): no payload, no status; anything else is refused.
TEST(Message, ALeavingMessageCarriesNothing) {
  Header h;
  h.kind = Kind::kLeaving;
  h.sender = 2;
  std::byte buf[kHeaderBytes];
  EncodeHeader(h, buf);
  auto got = DecodeHeader(buf, 0, 4);
  ASSERT_OK(got);
  EXPECT_EQ(got->kind, Kind::kLeaving);
  h.payload_bytes = 8;
  EncodeHeader(h, buf);
  EXPECT_CODE(DecodeHeader(buf, 8, 4), kInvalidArgument);
  h.payload_bytes = 0;
  h.status = Code::kInternal;
  EncodeHeader(h, buf);
  EXPECT_CODE(DecodeHeader(buf, 0, 4), kInvalidArgument);
  buf[5] = std::byte{4};  // no kind 4
  EXPECT_CODE(DecodeHeader(buf, 0, 4), kInvalidArgument);
}

TEST(Message, AHeadFollowsTheHeaderAndIsCountedExactly) {
  Header r = Sample();
  r.kind = Kind::kRequest;
  r.status = Code::kOk;
  r.head_bytes = 24;
  std::vector<std::byte> buf(kHeaderBytes + 24, std::byte{0x5a});
  EncodeHeader(r, buf.data());
  auto h = DecodeHeader(buf, 4096, 4);
  ASSERT_OK(h);
  EXPECT_EQ(h->head_bytes, 24u);
  EXPECT_EQ(h->payload_bytes, 4096u);
  // The AM header must be exactly the 40 bytes and the head they announce.
  EXPECT_CODE(DecodeHeader({buf.data(), kHeaderBytes + 23}, 4096, 4), kInvalidArgument);
  buf.push_back(std::byte{0});
  EXPECT_CODE(DecodeHeader(buf, 4096, 4), kInvalidArgument);
  EXPECT_CODE(DecodeHeader({buf.data(), kHeaderBytes}, 4096, 4), kInvalidArgument);
  // An OK response carries a head too (a reply whose body is received apart).
  Header ok = Sample();
  ok.status = Code::kOk;
  ok.head_bytes = 12;
  buf.assign(kHeaderBytes + 12, std::byte{0x5a});
  EncodeHeader(ok, buf.data());
  h = DecodeHeader(buf, 4096, 4);
  ASSERT_OK(h);
  EXPECT_EQ(h->kind, Kind::kResponse);
  EXPECT_EQ(h->head_bytes, 12u);
  // A head above the limit, or in an error response, is refused.
  r.head_bytes = kMaxHeadBytes + 1;
  buf.assign(kHeaderBytes + r.head_bytes, std::byte{0});
  EncodeHeader(r, buf.data());
  EXPECT_CODE(DecodeHeader(buf, 4096, 4), kInvalidArgument);
  Header resp = Sample();
  resp.head_bytes = 8;
  buf.assign(kHeaderBytes + 8, std::byte{0});
  EncodeHeader(resp, buf.data());
  EXPECT_CODE(DecodeHeader(buf, 4096, 4), kInvalidArgument);
}

TEST(Message, EveryFlippedBitIsRejected) {
  std::byte good[kHeaderBytes];
  EncodeHeader(Sample(), good);
  for (size_t byte = 0; byte < kHeaderBytes; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::byte b[kHeaderBytes];
      std::memcpy(b, good, kHeaderBytes);
      b[byte] ^= static_cast<std::byte>(1 << bit);
      EXPECT_FALSE(DecodeHeader(b, 4096, 4).ok()) << "byte " << byte << " bit " << bit;
    }
  }
}

TEST(Message, RandomBytesNeverDecode) {
  std::mt19937_64 rng(1);
  std::vector<std::byte> b(64);
  for (int i = 0; i < 200000; ++i) {
    size_t n = rng() % b.size();
    for (auto& x : b) x = static_cast<std::byte>(rng());
    auto h = DecodeHeader({b.data(), n}, rng() % 8192, 1 + rng() % 8);
    ASSERT_FALSE(h.ok());  // 2^-32 CRC and magic odds make a pass a bug
  }
}

}  // namespace
}  // namespace shoal::transport
