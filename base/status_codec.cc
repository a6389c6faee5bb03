#include "base/status_codec.h"

namespace shoal {

bool IsWireCode(uint8_t code) { return code <= static_cast<uint8_t>(Code::kInternal); }

void EncodeStatus(const Status& s, ByteWriter* w) {
  w->Put<uint8_t>(static_cast<uint8_t>(s.code()));
  w->Prefixed(s.message());
}

bool DecodeStatus(ByteReader* r, size_t max_message, Status* out) {
  uint8_t code = 0;
  std::span<const std::byte> msg;
  if (!r->Get(&code) || !IsWireCode(code) || !r->Prefixed(max_message, &msg)) return false;
  *out = code == 0 ? Status::OK() : Status(static_cast<Code>(code), AsChars(msg));
  return true;
}

}  // namespace shoal
