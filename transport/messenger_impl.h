// Messenger::Impl: the UCX messenger's state and the progress thread's work, declared once for
// its three files (internal to transport/; include only from them):
//   messenger.cc          the worker's life: Init, Bind, Connect, the progress loop, shutdown
//   messenger_calls.cc    the caller's side: pending calls, deadlines, replies received
//                         straight into a CallInto's memory
//   messenger_wire.cc     messages in and out: sending, receiving (eager and rendezvous),
//                         delivery to handlers and replies, members held until connected,
//                         peer failure
// Threads: every member below the public part runs on the progress thread (Post hands work to
// it), except Post itself, peer_up, counters and SetHandler, which any thread may call.
#pragma once

#include <ucp/api/ucp.h>

#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <type_traits>
#include <vector>

#include "base/task_pool.h"
#include "base/thread_annotations.h"
#include "transport/message.h"
#include "transport/messenger.h"

namespace shoal::transport {

class Messenger::Impl {
 public:
  explicit Impl(const MessengerOptions& o);
  ~Impl();

  Status Init(std::vector<std::byte>* address);
  // Sets the index and world size of a messenger created without them (world_size 0).
  Status Bind(uint32_t self, uint32_t world_size);
  Status Connect(uint32_t peer, std::span<const std::byte> address);
  void SetHandler(uint16_t op, Handler h);
  void SetBodyHandler(uint16_t op, size_t head_bytes, BodySink sink, BodyHandler handler);
  void CallGather(uint32_t peer, uint16_t op, Payload head, std::span<const std::byte> body,
                  std::chrono::milliseconds deadline, std::function<void(Result<Payload>)> done,
                  Transport::Released released);
  void CallAsync(uint32_t peer, uint16_t op, Payload payload, std::chrono::milliseconds deadline,
                 std::function<void(Result<Payload>)> done);
  void CallInto(uint32_t peer, uint16_t op, Payload payload, size_t skip, std::span<std::byte> into,
                std::chrono::milliseconds deadline, Transport::DoneInto done);
  void SetGuestHandler(uint16_t op, Handler h);
  // A guest's hello to member `peer`, just connected: learns the index the member gave it.
  Status Greet(uint32_t peer);
  bool peer_up(uint32_t peer) const;
  MessengerCounters counters() const;
  void SendRaw(uint32_t peer, std::vector<std::byte> header, Payload payload);

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr unsigned kAmId = 17;  // the UCX active-message id of every message
  struct ContextDeleter {
    void operator()(ucp_context_h c) const { ucp_cleanup(c); }
  };
  struct WorkerDeleter {
    void operator()(ucp_worker_h w) const { ucp_worker_destroy(w); }
  };
  using ContextPtr = std::unique_ptr<std::remove_pointer_t<ucp_context_h>, ContextDeleter>;
  using WorkerPtr = std::unique_ptr<std::remove_pointer_t<ucp_worker_h>, WorkerDeleter>;

  struct Peer {
    Impl* impl = nullptr;
    uint32_t index = 0;
    ucp_ep_h ep = nullptr;       // requests and replies; reports the peer's failure
    ucp_ep_h data_ep = nullptr;  // messages with a body (Messenger::Impl::Connect says why)
    bool up = false;
    bool up_once = false;  // was connected: after a failure its messages are not held
    bool left = false;     // said it is closing (Kind::kLeaving): its end is not a failure
    bool guest = false;    // a guest of this member (guests_), not a member
    // The sender index this messenger's messages to the peer carry: options_.self, or, in a
    // guest, kGuestHello until the member's answer to its hello gave it an index.
    uint32_t as_sender = 0;
    std::atomic<bool> up_flag{false};
  };
  struct Pending {
    uint32_t peer = 0;
    Clock::time_point deadline;
    std::function<void(Result<Payload>)> done;  // CallAsync
    // CallInto (set when into_done is): the reply from byte `skip` on goes to `into`;
    // into_done gets the head.
    size_t skip = 0;
    std::span<std::byte> into;
    Transport::DoneInto into_done;
    // A rendezvous receive into `into` is in flight: the call ends when it does, with
    // `failed` if the deadline or a failure came meanwhile.
    bool receiving = false;
    std::optional<Status> failed;
    // A CallGather whose body UCX still reads: past the deadline the peer is taken for failed
    // (a peer that stalls in the middle of pulling the body would hold the caller's memory).
    bool gathering = false;
  };
  struct IntoRecv {  // a rendezvous reply received into a CallInto's memory
    Impl* impl;
    uint64_t id;
    Payload head;
    ucp_dt_iov_t iov[2];
    size_t body = 0;
    size_t data = 0;  // bytes UCX receives (the body, after the head when it was not in the header)
  };
  struct OutMsg {
    Impl* impl;
    uint32_t peer;
    std::vector<std::byte> header;
    Payload payload;
    bool is_request;
    uint64_t request_id;
    // A reply's lent body or a CallGather's, sent after the payload as a second iov, or alone
    // when there is no payload (no copy); `keep` owns it, or `released` is told when UCX reads
    // it no more (ReleaseBody).
    std::span<const std::byte> body = {};
    std::shared_ptr<const void> keep = {};
    Transport::Released released = {};
    ucp_dt_iov_t iov[2] = {};
  };
  struct RndvRecv {  // a rendezvous message received whole, after its head (if any)
    Impl* impl;
    Header header;
    Payload payload;
    size_t data = 0;  // bytes UCX receives
  };
  struct BodyOp {  // SetBodyHandler's
    size_t head_bytes;
    BodySink sink;
    BodyHandler handler;
  };
  struct BodyRecv {  // a request body received by rendezvous into its handler's memory
    Impl* impl;
    Header header;
    Payload head;
    Body body;
  };

  // --- messenger.cc: the worker's life and the progress loop.
  // Queues fn for the progress thread; false once it has stopped.
  bool Post(std::function<void()> fn) EXCLUDES(post_mu_);
  void Publish();  // peers' up flags for other threads
  void Loop();
  // Tells every connected peer this member is closing and gives those messages a bounded
  // time to leave, so that the peers log its end as a departure rather than a failure.
  void SayLeaving();
  void CloseEndpoints();
  // Creates p's two endpoints to `address` (Connect says why two) and marks it up.
  ucs_status_t CreateEndpoints(Peer& p, const std::vector<std::byte>& address);
  // The member or guest at `index` (a guest: GuestIndex, of the slot's current generation), or
  // null.
  Peer* PeerAt(uint32_t index);
  // Closes both of p's endpoints at once (UCP_EP_CLOSE_FLAG_FORCE); the closes still in
  // progress are added to `closing`, for the caller to wait for or free.
  static void ForceClose(Peer& p, std::vector<void*>* closing);

  // --- messenger_calls.cc: the caller's side.
  // CallAsync and CallInto: `proto` holds the call's way of ending (done, or into_done).
  // CallGather: `payload` is the head, sent in the AM header, and `body` the AM data.
  void Start(uint32_t peer, uint16_t op, Payload payload, std::chrono::milliseconds deadline,
             Pending&& proto, std::span<const std::byte> body = {},
             Transport::Released released = {});
  // Ends call `id` with `r` (a whole reply, or an error).
  void Complete(uint64_t id, Result<Payload> r);
  // Runs a call's end: a CallInto's whole reply is split into its head and `into` here.
  static void Finish(Pending& p, Result<Payload> r);
  // Removes call `id` (at `it`) with its deadline and returns it, to be ended by the caller.
  Pending Take(std::map<uint64_t, Pending>::iterator it);
  // A response for a CallInto: received into its memory (`head`, the AM header's head, and
  // the data are the reply's bytes in that order; when the head is the call's `skip` bytes the
  // data lands contiguously in `into`). Returns false when the response is not one (the caller
  // delivers it as any other).
  bool ReceiveInto(const Header& h, std::span<const std::byte> head, void* data, size_t length,
                   bool rndv);
  static void OnIntoDone(void* request, ucs_status_t status, size_t length, void* user_data);
  // The receive of a CallInto's reply ended: the call ends now (its deadline or a failure
  // that came meanwhile wins over the bytes).
  void EndInto(IntoRecv* r, Status s);
  void FailAll(const Status& s);
  void Expire();  // ends the calls past their deadline

  // --- messenger_wire.cc: messages in and out.
  // Sends a message with header `h` followed by `extra` in the AM header (its head), or,
  // when h is null (tests), `extra` as the whole header; a lent `body` follows the payload
  // without being copied (owned by `keep`, or held until `released` ran).
  void Send(uint32_t peer, const Header* h, std::vector<std::byte> extra, Payload payload,
            std::span<const std::byte> body = {}, std::shared_ptr<const void> keep = {},
            Transport::Released released = {});
  static void OnSendDone(void* request, ucs_status_t status, void* user_data);
  // UCX reads m's body no more: its `released` runs (once), its `keep` is dropped.
  static void ReleaseBody(OutMsg* m);
  static void OnEpError(void* arg, ucp_ep_h ep, ucs_status_t status);
  // The peer is down from here on: its calls fail with `why`, its endpoints are closed (which
  // also ends a rendezvous receive from it that is still in flight).
  void FailPeer(Peer& p, const Status& why, std::string_view reason);
  void ReplayHeld(uint32_t peer);  // a member just connected: its held messages, in order
  void Drop(std::string_view why);
  static ucs_status_t OnAm(void* arg, const void* header, size_t header_length, void* data,
                           size_t length, const ucp_am_recv_param_t* param);
  // Any other message: its head (if any) and data joined into one payload and delivered.
  ucs_status_t ReceiveWhole(const Header& h, std::span<const std::byte> head, void* data,
                            size_t length, bool rndv);
  static void OnRndvDone(void* request, ucs_status_t status, size_t length, void* user_data);
  // A request whose head came in the AM header: its body goes straight into the memory of its
  // op's BodySink when it has one, else head and data are joined into a payload. Returns what
  // OnAm returns.
  ucs_status_t ReceiveRequest(const Header& h, std::span<const std::byte> head, void* data,
                              size_t length, bool rndv);
  static void OnBodyDone(void* request, ucs_status_t status, size_t length, void* user_data);
  void DeliverBody(const Header& h, Payload head, Body body);
  void Deliver(const Header& h, Payload payload);
  // A request served on the pool by its op's handler (a guest's: guest_handlers_), its reply
  // posted back; without one it is answered InvalidArgument.
  void Serve(const Header& h, Payload payload, bool guest) EXCLUDES(handlers_mu_);
  // A guest's message (its sender IsGuestSender): a hello, a request of a guest op, leaving.
  void DeliverFromGuest(const Header& h, Payload payload);
  void AcceptGuest(const Header& h, std::span<const std::byte> payload);
  void Respond(const Header& req, Reply r);

  // The label of a guest's hello MAC (over its worker address).
  static constexpr std::string_view kGuestLabel = "shoal-guest-hello-v1";
  std::vector<std::byte> own_address_;  // this worker's, as Init got it
  MessengerOptions options_;  // self and world_size change once, by Bind, on the progress thread
  ContextPtr context_;
  WorkerPtr worker_;
  int wake_fd_ = -1;
  int epoll_fd_ = -1;
  std::thread thread_;

  // Progress-thread state.
  std::vector<Peer> peers_;
  std::array<std::unique_ptr<Peer>, kMaxGuests> guests_;  // a slot is reused once its guest is gone
  std::array<uint32_t, kMaxGuests> guest_generation_{};   // of each slot's next guest
  std::map<uint64_t, Pending> pending_;
  std::set<std::pair<Clock::time_point, uint64_t>> deadlines_;
  uint64_t next_id_ = 1;
  static constexpr size_t kMaxHeld = 256;
  static constexpr uint32_t kMaxBoundWorld = 1u << 16;  // engine/protocol.h: kMaxWorldSize
  static constexpr size_t kMaxHeldBytes = 64u << 20;
  std::deque<std::pair<Header, Payload>> held_;  // from members not connected yet
  size_t held_bytes_ = 0;
  // Sends UCX still holds (their OutMsg is freed by OnSendDone); those a closed endpoint never
  // completed are freed after the worker is gone (~Impl), so none leaks at shutdown.
  std::unordered_set<OutMsg*> sending_;
  bool stopping_ = false;
  bool stop_ = false;
  // Written by the progress thread, read by any.
  struct {
    std::atomic<uint64_t> requests_sent{0}, requests_served{0}, bytes_sent{0}, bytes_received{0},
        bad_messages{0}, timeouts{0}, peer_failures{0};
  } counters_;

  Mutex post_mu_;
  std::deque<std::function<void()>> posted_ GUARDED_BY(post_mu_);
  bool loop_exited_ GUARDED_BY(post_mu_) = false;

  Mutex handlers_mu_;
  std::map<uint16_t, Handler> handlers_ GUARDED_BY(handlers_mu_);
  std::map<uint16_t, std::shared_ptr<const BodyOp>> body_ops_ GUARDED_BY(handlers_mu_);
  std::map<uint16_t, Handler> guest_handlers_ GUARDED_BY(handlers_mu_);

  TaskPool pool_;
};

}  // namespace shoal::transport
