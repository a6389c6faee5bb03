// Transport: how one member sends requests to the others and answers theirs. The world, the
// member service and the client paths above it see only this interface; two implementations:
//   Messenger        (transport/messenger.h)  UCX active messages between processes/hosts.
//   InProcTransport  (transport/inproc_transport.h)  members of one process, with faults
//                    (drop, delay, reorder, partition, kill) injected per peer by a seeded
//                    scheduler, so distributed logic is tested deterministically in one process.
//
// Contract shared by both:
//   - A request is (op, payload) to a peer index; the peer's handler for `op` answers with a
//     Reply. A non-OK reply status crosses as is (code and message).
//   - Every call ends exactly once: with the reply, with Timeout at its deadline, or with
//     Unavailable when the peer is down (its endpoint failed) or the transport shuts down.
//   - Handlers run on handler threads and may block (disk I/O) or make calls of their own.
//   - Messages carry the sender's membership epoch (transport/message.h); a member drops
//     requests of another epoch (issue 7 moves worlds between epochs).
//
// Shaped for the zero-copy data path (issues 8, 13): `CallInto` lets the reply's bytes land in
// the caller's memory (UCX: rendezvous receive into a registered destination; in-process: one
// copy from the handler's buffer); `CallGather` sends a request whose body is the caller's
// memory without joining it into one vector, and `SetBodyHandler` lets the serving side say
// where such a body lands (UCX: the rendezvous moves it from the caller's memory straight into
// the holder's I/O buffer). Each has a copying default below; an implementation overrides it
// when it can do better.
//
// Thread-safety: every method is thread-safe, except that SetHandler must be called before the
// first Connect.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "shoal/result.h"

namespace shoal::transport {

using Payload = std::vector<std::byte>;

// What a request handler answers: a status and, when OK, a payload, optionally followed by
// `body`: bytes the handler lends without copying them into the payload (a chunk holder's I/O
// buffer). The reply's bytes are payload + body; `keep` owns the body's memory and is released
// once the transport no longer needs it (sent, or the peer failed). A reply that is all body
// (empty payload) is sent from that memory as it is; payload + body go as two pieces, which
// UCX moves more slowly.
struct Reply {
  Status status;
  Payload payload;
  std::span<const std::byte> body = {};
  std::shared_ptr<const void> keep = {};
};

// Runs on a handler thread. `sender` is the requester's index in the world.
using Handler = std::function<Reply(uint32_t sender, std::span<const std::byte> payload)>;
using Done = std::function<void(Result<Payload>)>;

// A request's body received into memory its handler's side chose; `keep` owns `bytes` (the
// handler may keep it past its return, e.g. to adopt the buffer).
struct Body {
  std::span<std::byte> bytes;
  std::shared_ptr<void> keep;
};
// Memory for a request body of `length` bytes. Runs on a transport thread (UCX: the progress
// thread, as the body arrives): must be quick and must not block. It may return less than
// `length` bytes (say, when `length` is not a size it keeps buffers of): the transport then
// allocates the body itself.
using BodySink = std::function<Body(size_t length)>;
// Runs on a handler thread with the request's head (its first `head_bytes`) and its body.
using BodyHandler =
    std::function<Reply(uint32_t sender, std::span<const std::byte> head, Body body)>;

class Transport {
 public:
  virtual ~Transport() = default;

  // This member's index and the world's size.
  virtual uint32_t self() const = 0;
  virtual uint32_t world_size() const = 0;
  // What the rendezvous publishes so the others can Connect to this member.
  virtual const std::vector<std::byte>& address() const = 0;
  // Creates the endpoint to member `peer` from its published address (may be self).
  virtual Status Connect(uint32_t peer, std::span<const std::byte> address) = 0;
  // Installs the handler of requests with this op. Call before Connect.
  virtual void SetHandler(uint16_t op, Handler handler) = 0;
  // Installs the handler of requests with this op that are a head of exactly `head_bytes`
  // followed by a body received into `sink`'s memory; a request shorter than the head is
  // answered InvalidArgument without reaching the handler. Call before Connect. The default
  // installs a Handler that copies the body out of the payload into the sink's memory.
  virtual void SetBodyHandler(uint16_t op, size_t head_bytes, BodySink sink, BodyHandler handler);

  // Sends a request and returns at once; `done` runs exactly once, on a transport thread, and
  // must not block. A deadline of 0 means the transport's default.
  virtual void CallAsync(uint32_t peer, uint16_t op, Payload payload,
                         std::chrono::milliseconds deadline, Done done) = 0;

  // Sends a request and waits for its reply (the request is moved in: pass a temporary).
  Result<Payload> Call(uint32_t peer, uint16_t op, Payload payload,
                       std::chrono::milliseconds deadline = std::chrono::milliseconds(0));

  // Like CallAsync with a request of `head` (at most message.h's kMaxHeadBytes) followed by
  // `body`, which is not copied: it must stay valid until `released` ran. `released` runs
  // exactly once, on a transport thread or the caller's, as soon as the transport reads `body`
  // no more (it was sent, or the send failed or was cancelled), which may be before or after
  // `done`; it must not block. The default copies the request and releases at once.
  using Released = std::function<void()>;
  virtual void CallGather(uint32_t peer, uint16_t op, Payload head,
                          std::span<const std::byte> body, std::chrono::milliseconds deadline,
                          Done done, Released released);

  // Like CallAsync, but the reply's bytes from offset `skip` on land in `into` (which must stay
  // valid until `done` ran); `done` gets the first `skip` bytes of the reply and the count of
  // bytes written to `into`. A reply longer than skip + into.size() fails with Corruption.
  using DoneInto = std::function<void(Result<Payload> head, size_t body_bytes)>;
  virtual void CallInto(uint32_t peer, uint16_t op, Payload payload, size_t skip,
                        std::span<std::byte> into, std::chrono::milliseconds deadline,
                        DoneInto done);
  // CallInto's check of a reply of `length` bytes against skip + into (Corruption if it does
  // not fit), and its end for a whole reply received elsewhere: the bytes after `skip` are
  // copied into `into` and `done` gets the head (every implementation ends a CallInto so).
  static Status CheckFitsInto(size_t length, size_t skip, size_t into);
  static void EndIntoFromWhole(Result<Payload> whole, size_t skip, std::span<std::byte> into,
                               const DoneInto& done);
  // SetBodyHandler's default parts, shared with implementations: `length` bytes of the sink's
  // memory (or of a vector the Body owns, when the sink gives less); `bytes` copied into such
  // memory; a whole request split at `head_bytes` (InvalidArgument when shorter) and served so.
  static Body BodyMemory(const BodySink& sink, size_t length);
  static Body ReceiveBody(const BodySink& sink, std::span<const std::byte> bytes);
  static Reply ServeBody(size_t head_bytes, const BodySink& sink, const BodyHandler& handler,
                         uint32_t sender, std::span<const std::byte> payload);

  // Installs the handler of requests with this op from guests (processes outside the world
  // holding the job token: transport/message.h). A transport without guests ignores it.
  virtual void SetGuestHandler(uint16_t op, Handler handler) {
    (void)op;
    (void)handler;
  }

  // False once the peer's endpoint failed (it died, or the link broke) or it never connected.
  virtual bool peer_up(uint32_t peer) const = 0;

  // Gives the member its index and the world's size when they were not known at creation (a
  // rank serving several stores learns its members' indices from the rendezvous, after it
  // published their addresses): call once, before the first Connect. An endpoint created with
  // a fixed index accepts only that index and size (InvalidArgument otherwise).
  virtual Status Bind(uint32_t self, uint32_t world_size);
};

}  // namespace shoal::transport
