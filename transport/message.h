// The wire header of every shoal message between members, and its validating codec.
//
// A message is one UCX active message: this fixed 40-byte header travels as the AM header, the
// payload as the AM data (eager or rendezvous, chosen by UCX). A request sent by CallGather
// carries its small head after the header, in the AM header too, so that its body is the whole
// AM data and moves by rendezvous straight from the sender's memory into the receiver's; an OK
// response with a body (a chunk read's reply) does the same, so the receiver takes the body
// contiguously into the caller's memory (UCX 1.13 receives a rendezvous into an iov through
// bounce-buffer fragments). The payload of each op is defined, encoded and checked in one
// place: engine/protocol.h. Every field is checked on receipt; a message that fails a check is
// dropped and counted, never acted upon.
//
//   offset size field
//   0      4    magic "SHL1"
//   4      1    protocol version (kWireVersion; 2 added the epoch, 3 the request head,
//               4 the head of an OK response)
//   5      1    kind (1 request, 2 response, 3 leaving: the sender is closing; no payload)
//   6      2    op (request type; echoed in the response)
//   8      8    request id (chosen by the requester, echoed)
//   16     4    sender member index in the world; a guest's (an observer's, below) index
//               at that member, or kGuestHello in its first request
//   20     4    payload length in bytes (must equal the AM data length)
//   24     1    status code of a response (shoal::Code), 0 in requests
//   25     1    reserved, must be zero
//   26     2    bytes of head after the header (<= kMaxHeadBytes; 0 in error responses)
//   28     8    sender's membership epoch (a member drops requests of another epoch)
//   36     4    CRC32C of bytes 0..35
//   40     n    the head (n = bytes 26..27), checked by the op's decoder
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "shoal/result.h"

namespace shoal::transport {

inline constexpr uint32_t kWireMagic = 0x314C4853;  // "SHL1" little-endian
inline constexpr uint8_t kWireVersion = 4;
inline constexpr size_t kHeaderBytes = 40;
inline constexpr uint32_t kMaxPayloadBytes = 1u << 30;
inline constexpr uint16_t kMaxHeadBytes = 256;

enum class Kind : uint8_t { kRequest = 1, kResponse = 2, kLeaving = 3 };

// Guests: processes outside the world (the shoal CLI observing a live job: docs/bootstrap.md)
// that call members and serve nothing. A guest's first request to a member is op kGuestHelloOp
// from sender kGuestHello; the member answers from an endpoint of its own to the guest with
// the index it gave it, GuestIndex(slot, generation), which the guest's later requests carry.
// The generation changes each time a slot is given again, so that a reply meant for a guest
// that left never reaches the next one in its slot. Guests only send requests (and a leaving
// message); members only answer them.
inline constexpr uint32_t kGuestBase = 0xFFFF0000u;
inline constexpr uint32_t kMaxGuests = 64;
inline constexpr uint32_t kGuestGenerations = 1023;  // 0..1022: never kGuestHello's bits
inline constexpr uint32_t kGuestHello = 0xFFFFFFFFu;
inline constexpr uint16_t kGuestHelloOp = 0xFFFF;
constexpr bool IsGuestSender(uint32_t sender) { return sender >= kGuestBase; }
constexpr uint32_t GuestIndex(uint32_t slot, uint32_t generation) {
  return kGuestBase | (generation % kGuestGenerations) << 6 | (slot % kMaxGuests);
}
constexpr uint32_t GuestSlot(uint32_t index) { return index & (kMaxGuests - 1); }

struct Header {
  Kind kind = Kind::kRequest;
  uint16_t op = 0;
  uint64_t request_id = 0;
  uint32_t sender = 0;
  uint32_t payload_bytes = 0;
  Code status = Code::kOk;
  uint64_t epoch = 0;
  uint16_t head_bytes = 0;  // head following the 40 bytes (a request, or an OK response)
};

// Writes the 40-byte encoding of `h` to `out` (the head, if any, follows it there).
void EncodeHeader(const Header& h, std::byte out[kHeaderBytes]);

// Decodes and validates a received header: `bytes` is the whole AM header (40 bytes and the
// head they announce). `payload_bytes` is the length of the data that came with it; `world_size`
// bounds the sender index of members (a guest's index is allowed in its requests and leaving
// message, never in a response). InvalidArgument names the first bad field.
Result<Header> DecodeHeader(std::span<const std::byte> bytes, size_t payload_bytes,
                            uint32_t world_size);

}  // namespace shoal::transport
