// The shared-memory segment of SharedReadServer / SharedReader (include/shoal/shared_reader.h):
// its layout, the single-producer single-consumer byte rings of a channel, the futex waits and
// the messages. Everything here lives in memory two processes map at different addresses:
// offsets, never pointers; lock-free atomics only (address-free on Linux), never a mutex.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "shoal/result.h"
#include "shoal/shared_reader.h"

namespace shoal::shm {

inline constexpr uint64_t kMagic = 0x474e524c414f4853ull;  // "SHOALRNG" in memory
inline constexpr uint32_t kVersion = 1;
inline constexpr uint64_t kPage = 4096;
inline constexpr uint32_t kMaxItems = 4096;

enum class ServerState : uint32_t { kStarting = 0, kServing = 1, kStopped = 2 };

// Futex wait/wake on a 32-bit word of shared memory (not FUTEX_PRIVATE: across processes).
// Wait returns when *word != expected, on a wake, or after timeout_ms.
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected, int timeout_ms);
void FutexWakeAll(std::atomic<uint32_t>* word);

// A byte ring: one producer, one consumer. Records are [u32 size][u32 type][payload], 8-byte
// aligned; a record never wraps (a padding record fills the end instead). `head` and `tail`
// count bytes ever written / consumed.
struct RingControl {
  alignas(64) std::atomic<uint64_t> head{0};
  alignas(64) std::atomic<uint64_t> tail{0};
  alignas(64) std::atomic<uint32_t> bell{0};  // bumped by the producer after each record
};

class Ring {
 public:
  Ring(RingControl* c, std::byte* data, uint64_t capacity) : c_(c), data_(data), cap_(capacity) {}
  // Largest payload that fits in an empty ring.
  uint64_t max_payload() const { return cap_ / 2 - 8; }
  // Producer: false when there is no room now (the caller waits for the consumer).
  bool TryPush(uint32_t type, std::span<const std::byte> payload);
  // Consumer: the next record, or nullopt when empty. Pop after using the payload. A record
  // whose header does not fit what the producer published (head, the ring's end) comes back
  // with `corrupt` set and an empty payload: the consumer must not read on (it resets the
  // channel); Peek never reads outside the ring.
  struct Record {
    uint32_t type;
    std::span<const std::byte> payload;
    uint64_t next_tail;
    bool corrupt = false;
  };
  std::optional<Record> Peek() const;
  void Pop(const Record& r) { c_->tail.store(r.next_tail, std::memory_order_release); }
  void Reset() {
    c_->head.store(0, std::memory_order_relaxed);
    c_->tail.store(0, std::memory_order_relaxed);
  }
  RingControl* control() const { return c_; }

 private:
  RingControl* c_;
  std::byte* data_;
  uint64_t cap_;
};

struct Channel {
  alignas(64) std::atomic<int32_t> owner_pid{0};  // 0: free; a reader's pid: claimed
  std::atomic<uint32_t> server_bell{0};           // bumped when the reader pushes (wakes server)
  RingControl to_server;
  RingControl to_reader;
};

struct Header {
  uint64_t magic;
  uint32_t version;
  uint32_t channels;
  uint64_t part_bytes;
  uint64_t ring_bytes;
  uint64_t channels_offset;  // Channel[channels]
  uint64_t rings_offset;     // per channel: to_server data, to_reader data
  uint64_t pool_offset;      // per channel: its part
  uint64_t total_bytes;
  int32_t server_pid;
  std::atomic<uint32_t> state;  // ServerState
  unsigned char token_digest[32];  // SHA-256 of the token
};

// Sets the sizes and offsets of a segment with these options.
void FillLayout(const SharedReadOptions& o, Header* h);
bool DigestToken(const std::string& token, unsigned char out[32]);

inline Channel* ChannelAt(std::byte* base, const Header& h, uint32_t i) {
  return reinterpret_cast<Channel*>(base + h.channels_offset) + i;
}
inline Ring ToServer(std::byte* base, const Header& h, uint32_t i) {
  return Ring(&ChannelAt(base, h, i)->to_server, base + h.rings_offset + 2 * i * h.ring_bytes,
              h.ring_bytes);
}
inline Ring ToReader(std::byte* base, const Header& h, uint32_t i) {
  return Ring(&ChannelAt(base, h, i)->to_reader, base + h.rings_offset + (2 * i + 1) * h.ring_bytes,
              h.ring_bytes);
}

// ---- messages ----
enum MsgType : uint32_t { kPad = 0, kRequest = 1, kRelease = 2, kBye = 3, kReply = 4 };
// The id of a reply that fails every request in flight (the server reset the channel).
inline constexpr uint64_t kChannelReset = ~0ull;

// Request: u64 id, u32 n, n x {u32 dataset, u64 index, u64 offset, u64 size, u32 path_len, path}.
std::vector<std::byte> EncodeRequest(uint64_t id, std::span<const ReadItem> items);
Status DecodeRequest(std::span<const std::byte> in, uint64_t* id, std::vector<ReadItem>* items);
// Release: u32 n, n x u64 pool offset (relative to the channel's part).
std::vector<std::byte> EncodeRelease(std::span<const uint64_t> offsets);
Status DecodeRelease(std::span<const std::byte> in, std::vector<uint64_t>* offsets);
// Reply: u64 id, status, u32 n, n x {status, u64 offset, u64 bytes}.
struct ReplyItem {
  Status status;
  uint64_t offset = 0;
  uint64_t bytes = 0;
};
std::vector<std::byte> EncodeReply(uint64_t id, const Status& s, std::span<const ReplyItem> items);
Status DecodeReply(std::span<const std::byte> in, uint64_t* id, Status* s,
                   std::vector<ReplyItem>* items);

}  // namespace shoal::shm
