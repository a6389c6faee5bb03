// Messenger: request/response messages between the members of a world, over UCX active
// messages (RDMA, TCP or shared memory: UCX picks per peer, no code change).
//
// Threads: one progress thread owns the UCX worker and makes every UCX call (the worker runs in
// UCS_THREAD_MODE_SINGLE); other threads hand it commands through a queue and an eventfd. It
// sleeps on the worker's event fd between events. Request handlers run on a small pool of
// handler threads, so a handler may block (disk I/O) or make calls of its own.
//
// Messages: a validated 32-byte header (transport/message.h) plus a payload. Payloads of any
// size up to 1 GiB; UCX moves large ones with its rendezvous protocol straight into the
// receiver's buffer (zero-copy on RDMA). A message that fails validation is dropped, counted
// (counters().bad_messages) and logged; it never reaches a handler.
//
// Joining: a member may be written to before it has connected back to the writer (it is still
// reading the rendezvous table); up to 256 such messages (64 MiB) are held and replayed when
// Connect creates the endpoint, so no start-up ordering is needed between members.
//
// Failure: every call has a deadline (Timeout). An endpoint error (peer died, link reset)
// marks the peer down and fails its pending calls with Unavailable at once; later calls to it
// fail fast. Destroying the Messenger fails pending calls with Unavailable.
//
// Guests: a process outside the world holding the job token (the shoal CLI observing a live
// job) may call a member's guest ops (SetGuestHandler) and nothing else: MessengerOptions.
//
// Thread-safety: all public methods are thread-safe, except that SetHandler must be called
// before the first Connect.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "shoal/result.h"
#include "transport/transport.h"

namespace shoal::transport {

struct MessengerOptions {
  uint32_t self = 0;        // this member's index in the world
  // Messages claiming another sender index are dropped. 0: not known yet — Bind gives both
  // before the first Connect; until then messages are held (bounded), as from any member not
  // connected yet.
  uint32_t world_size = 1;
  uint32_t handler_threads = 2;
  std::chrono::milliseconds default_deadline{30000};
  uint64_t epoch = 0;       // sent in every header; requests of another epoch are dropped
  // Guests (transport/message.h): a member accepts those whose hello proves this job token
  // (an HMAC of their address: transport/job_token.h), at most kMaxGuests at once, and serves
  // them only the ops installed with SetGuestHandler. Empty: no guest is accepted.
  std::string guest_token = {};
  // This messenger is a guest of a world of `world_size` members (self is not used): Connect
  // also says hello with `guest_token` and learns the index the member gives it. It serves
  // nothing; its leaving changes nothing at the members.
  bool guest = false;
};

struct MessengerCounters {
  uint64_t requests_sent = 0;
  uint64_t requests_served = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t bad_messages = 0;   // dropped: failed validation, unknown peer, stray response
  uint64_t timeouts = 0;
  uint64_t peer_failures = 0;  // endpoint errors
};

class Messenger final : public Transport {
 public:
  static Result<std::unique_ptr<Messenger>> Create(const MessengerOptions& options);
  ~Messenger();
  Messenger(const Messenger&) = delete;
  Messenger& operator=(const Messenger&) = delete;

  // Transport (transport/transport.h). The address is this worker's UCX address; `done` of
  // CallAsync runs on the progress thread.
  uint32_t self() const override { return self_; }
  uint32_t world_size() const override { return world_size_; }
  const std::vector<std::byte>& address() const override { return address_; }
  Status Connect(uint32_t peer, std::span<const std::byte> address) override;
  void SetHandler(uint16_t op, Handler handler) override;
  // A request sent by CallGather carries its head in the AM header; its body, the AM data,
  // moves by rendezvous (large bodies) from the caller's memory straight into the sink's.
  void SetBodyHandler(uint16_t op, size_t head_bytes, BodySink sink,
                      BodyHandler handler) override;
  // `body` is sent as it is, never copied into a vector (UCX's rendezvous reads it where it
  // is); `released` runs from UCX's send completion, or when the peer fails, the deadline
  // passes with the body not taken (the peer is then failed), or the messenger stops.
  void CallGather(uint32_t peer, uint16_t op, Payload head, std::span<const std::byte> body,
                  std::chrono::milliseconds deadline, Done done, Released released) override;
  void CallAsync(uint32_t peer, uint16_t op, Payload payload, std::chrono::milliseconds deadline,
                 Done done) override;
  // A rendezvous reply (UCX's large messages) is received straight into `into` (its first
  // `skip` bytes into the head): no reply vector, no copy after the transfer. An eager reply is
  // copied there from UCX's receive buffer. While a receive into `into` is in flight, the call
  // does not end (its deadline or a peer failure is reported once the receive ended), so `into`
  // is never written after `done` ran.
  void CallInto(uint32_t peer, uint16_t op, Payload payload, size_t skip,
                std::span<std::byte> into, std::chrono::milliseconds deadline,
                DoneInto done) override;
  // Requests of guests with this op go to `handler` (its `sender` is the guest's index,
  // transport/message.h: GuestIndex); a guest's request of any other op is answered
  // InvalidArgument.
  void SetGuestHandler(uint16_t op, Handler handler) override;
  bool peer_up(uint32_t peer) const override;
  Status Bind(uint32_t self, uint32_t world_size) override;

  MessengerCounters counters() const;

  // For tests of message validation: sends `header` bytes as they are, with `payload`.
  void SendRawForTest(uint32_t peer, std::vector<std::byte> header, Payload payload);

  class Impl;

 private:
  explicit Messenger(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::vector<std::byte> address_;
  uint32_t self_ = 0;
  uint32_t world_size_ = 1;
  bool guest_ = false;
};

}  // namespace shoal::transport
