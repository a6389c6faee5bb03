#include "transport/message.h"

#include <fmt/format.h>

#include <cstring>

#include "base/crc32c.h"
#include "base/status_codec.h"

namespace shoal::transport {
namespace {

template <typename T>
void Put(std::byte* p, size_t off, T v) {
  std::memcpy(p + off, &v, sizeof(T));
}
template <typename T>
T Get(const std::byte* p, size_t off) {
  T v;
  std::memcpy(&v, p + off, sizeof(T));
  return v;
}

}  // namespace

void EncodeHeader(const Header& h, std::byte out[kHeaderBytes]) {
  std::memset(out, 0, kHeaderBytes);
  Put<uint32_t>(out, 0, kWireMagic);
  Put<uint8_t>(out, 4, kWireVersion);
  Put<uint8_t>(out, 5, static_cast<uint8_t>(h.kind));
  Put<uint16_t>(out, 6, h.op);
  Put<uint64_t>(out, 8, h.request_id);
  Put<uint32_t>(out, 16, h.sender);
  Put<uint32_t>(out, 20, h.payload_bytes);
  Put<uint8_t>(out, 24, static_cast<uint8_t>(h.status));
  Put<uint16_t>(out, 26, h.head_bytes);
  Put<uint64_t>(out, 28, h.epoch);
  Put<uint32_t>(out, 36, Crc32c(out, 36));
}

Result<Header> DecodeHeader(std::span<const std::byte> bytes, size_t payload_bytes,
                            uint32_t world_size) {
  auto bad = [](std::string why) {
    return Status::InvalidArgument("message header: " + why);
  };
  if (bytes.size() < kHeaderBytes) {
    return bad(fmt::format("{} bytes, expected at least {}", bytes.size(), kHeaderBytes));
  }
  const std::byte* p = bytes.data();
  if (Get<uint32_t>(p, 0) != kWireMagic) return bad("bad magic");
  if (Get<uint32_t>(p, 36) != Crc32c(p, 36)) return bad("header checksum mismatch");
  uint8_t version = Get<uint8_t>(p, 4);
  if (version != kWireVersion) return bad(fmt::format("unsupported version {}", version));
  Header h;
  uint8_t kind = Get<uint8_t>(p, 5);
  if (kind < 1 || kind > 3) return bad(fmt::format("unknown kind {}", kind));
  h.kind = static_cast<Kind>(kind);
  h.op = Get<uint16_t>(p, 6);
  h.request_id = Get<uint64_t>(p, 8);
  h.sender = Get<uint32_t>(p, 16);
  if (h.sender >= world_size && (!IsGuestSender(h.sender) || h.kind == Kind::kResponse)) {
    return bad(fmt::format("sender {} outside a world of {}", h.sender, world_size));
  }
  h.payload_bytes = Get<uint32_t>(p, 20);
  if (h.payload_bytes > kMaxPayloadBytes) {
    return bad(fmt::format("payload of {} bytes above the limit", h.payload_bytes));
  }
  if (h.payload_bytes != payload_bytes) {
    return bad(fmt::format("payload length {} but {} bytes arrived", h.payload_bytes,
                           payload_bytes));
  }
  uint8_t code = Get<uint8_t>(p, 24);
  if (!IsWireCode(code)) return bad(fmt::format("status {}", code));
  if (h.kind != Kind::kResponse && code != 0) return bad("status set in a request");
  if (h.kind == Kind::kLeaving && h.payload_bytes != 0) return bad("payload in a leaving message");
  h.status = static_cast<Code>(code);
  if (Get<uint8_t>(p, 25) != 0) return bad("reserved byte set");
  h.head_bytes = Get<uint16_t>(p, 26);
  if (h.head_bytes > kMaxHeadBytes) return bad(fmt::format("head of {} bytes", h.head_bytes));
  if (h.status != Code::kOk && h.head_bytes != 0) return bad("head in an error response");
  if (bytes.size() != kHeaderBytes + h.head_bytes) {
    return bad(fmt::format("{} bytes, expected {} and a head of {}", bytes.size(), kHeaderBytes,
                           h.head_bytes));
  }
  h.epoch = Get<uint64_t>(p, 28);
  return h;
}

}  // namespace shoal::transport
