// The wire header of every shoal message between members, and its validating codec.
//
// A message is one UCX active message: this fixed 40-byte header travels as the AM header, the
// payload as the AM data (eager or rendezvous, chosen by UCX). The payload of each op is
// defined, encoded and checked in one place: engine/protocol.h. Every field is checked on
// receipt; a message that fails a check is dropped and counted, never acted upon.
//
//   offset size field
//   0      4    magic "SHL1"
//   4      1    protocol version (kWireVersion; 2 added the epoch)
//   5      1    kind (1 request, 2 response)
//   6      2    op (request type; echoed in the response)
//   8      8    request id (chosen by the requester, echoed)
//   16     4    sender member index in the world
//   20     4    payload length in bytes (must equal the AM data length)
//   24     1    status code of a response (shoal::Code), 0 in requests
//   25     3    reserved, must be zero
//   28     8    sender's membership epoch (a member drops requests of another epoch)
//   36     4    CRC32C of bytes 0..35
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "shoal/result.h"

namespace shoal::transport {

inline constexpr uint32_t kWireMagic = 0x314C4853;  // "SHL1" little-endian
inline constexpr uint8_t kWireVersion = 2;
inline constexpr size_t kHeaderBytes = 40;
inline constexpr uint32_t kMaxPayloadBytes = 1u << 30;

enum class Kind : uint8_t { kRequest = 1, kResponse = 2 };

struct Header {
  Kind kind = Kind::kRequest;
  uint16_t op = 0;
  uint64_t request_id = 0;
  uint32_t sender = 0;
  uint32_t payload_bytes = 0;
  Code status = Code::kOk;
  uint64_t epoch = 0;
};

// Writes the 40-byte encoding of `h` to `out`.
void EncodeHeader(const Header& h, std::byte out[kHeaderBytes]);

// Decodes and validates a received header. `payload_bytes` is the length of the data that came
// with it; `world_size` bounds the sender index. InvalidArgument names the first bad field.
Result<Header> DecodeHeader(std::span<const std::byte> bytes, size_t payload_bytes,
                            uint32_t world_size);

}  // namespace shoal::transport
