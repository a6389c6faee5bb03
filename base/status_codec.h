// The one wire form of a Status, for every message that carries an outcome (checkpoint verdicts,
// collective results; the messenger carries the code in its header and the message as payload,
// through the same range check): a u8 code and a u32-length-prefixed message.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/bytes.h"
#include "shoal/status.h"

namespace shoal {

// True when `code` names a shoal::Code (kOk .. kInternal).
bool IsWireCode(uint8_t code);

void EncodeStatus(const Status& s, ByteWriter* w);

// Reads one encoded Status into *out. False (and *out untouched) when the bytes are short, the
// code is out of range or the message is longer than `max_message`.
bool DecodeStatus(ByteReader* r, size_t max_message, Status* out);

}  // namespace shoal
