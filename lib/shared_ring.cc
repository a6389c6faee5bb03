#include "lib/shared_ring.h"

#include <linux/futex.h>
#include <openssl/evp.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/status_codec.h"

namespace shoal::shm {
namespace {

uint64_t RoundUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
constexpr size_t kMaxMessage = 4096;  // of a status in a reply
constexpr size_t kMaxPath = 4096;

}  // namespace

void FutexWait(std::atomic<uint32_t>* word, uint32_t expected, int timeout_ms) {
  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));
  timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void FutexWakeAll(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

bool Ring::TryPush(uint32_t type, std::span<const std::byte> payload) {
  const uint64_t need = RoundUp(8 + payload.size(), 8);
  if (need > cap_ / 2) return false;  // never fits (callers check max_payload first)
  const uint64_t head = c_->head.load(std::memory_order_relaxed);
  const uint64_t tail = c_->tail.load(std::memory_order_acquire);
  uint64_t at = head % cap_;
  uint64_t pad = 0;
  if (cap_ - at < need) pad = cap_ - at;  // the record would wrap: pad to the end
  if (cap_ - (head - tail) < pad + need) return false;
  if (pad != 0) {
    const uint32_t hdr[2] = {static_cast<uint32_t>(pad - 8), kPad};
    std::memcpy(data_ + at, hdr, 8);
    at = 0;
  }
  const uint32_t hdr[2] = {static_cast<uint32_t>(payload.size()), type};
  std::memcpy(data_ + at, hdr, 8);
  if (!payload.empty()) std::memcpy(data_ + at + 8, payload.data(), payload.size());
  c_->head.store(head + pad + need, std::memory_order_release);
  c_->bell.fetch_add(1, std::memory_order_release);
  return true;
}

std::optional<Ring::Record> Ring::Peek() const {
  uint64_t tail = c_->tail.load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t head = c_->head.load(std::memory_order_acquire);
    if (head == tail) return std::nullopt;
    const uint64_t at = tail % cap_;
    const uint64_t published = head - tail;
    if (published > cap_ || published < 8 || at % 8 != 0 || cap_ - at < 8) {
      return Record{kPad, {}, tail, true};
    }
    uint32_t hdr[2];
    std::memcpy(hdr, data_ + at, 8);
    const uint64_t len = RoundUp(8 + uint64_t{hdr[0]}, 8);
    if (len > published || len > cap_ - at) return Record{kPad, {}, tail, true};
    if (hdr[1] == kPad) {  // skip to the start
      tail += len;
      c_->tail.store(tail, std::memory_order_release);
      continue;
    }
    return Record{hdr[1], {data_ + at + 8, hdr[0]}, tail + len};
  }
}

void FillLayout(const SharedReadOptions& o, Header* out) {
  Header& h = *out;
  h.magic = kMagic;
  h.version = kVersion;
  h.channels = o.channels;
  h.part_bytes = RoundUp(o.part_bytes, kPage);
  h.ring_bytes = RoundUp(o.ring_bytes, kPage);
  h.channels_offset = RoundUp(sizeof(Header), 64);
  h.rings_offset = RoundUp(h.channels_offset + sizeof(Channel) * o.channels, kPage);
  h.pool_offset = h.rings_offset + 2 * h.ring_bytes * o.channels;
  h.total_bytes = h.pool_offset + h.part_bytes * o.channels;
}

bool DigestToken(const std::string& token, unsigned char out[32]) {
  unsigned int n = 0;
  return EVP_Digest(token.data(), token.size(), out, &n, EVP_sha256(), nullptr) == 1 && n == 32;
}

std::vector<std::byte> EncodeRequest(uint64_t id, std::span<const ReadItem> items) {
  ByteWriter w;
  w.Put<uint64_t>(id);
  w.Put<uint32_t>(static_cast<uint32_t>(items.size()));
  for (const ReadItem& it : items) {
    w.Put<uint32_t>(it.dataset);
    w.Put<uint64_t>(it.index);
    w.Put<uint64_t>(it.offset);
    w.Put<uint64_t>(it.size);
    w.Prefixed(it.path);
  }
  return w.Take();
}

Status DecodeRequest(std::span<const std::byte> in, uint64_t* id, std::vector<ReadItem>* items) {
  ByteReader r(in);
  uint32_t n = 0;
  if (!r.Get(id) || !r.Get(&n) || n > kMaxItems) {
    return Status::InvalidArgument("a shared-ring request with a bad header");
  }
  items->assign(n, ReadItem{});
  for (ReadItem& it : *items) {
    std::span<const std::byte> path;
    if (!r.Get(&it.dataset) || !r.Get(&it.index) || !r.Get(&it.offset) || !r.Get(&it.size) ||
        !r.Prefixed(kMaxPath, &path)) {
      return Status::InvalidArgument("a shared-ring request with a truncated item");
    }
    it.path.assign(AsChars(path));
  }
  if (!r.done()) return Status::InvalidArgument("a shared-ring request with trailing bytes");
  return Status::OK();
}

std::vector<std::byte> EncodeRelease(std::span<const uint64_t> offsets) {
  ByteWriter w;
  w.Put<uint32_t>(static_cast<uint32_t>(offsets.size()));
  for (uint64_t o : offsets) w.Put<uint64_t>(o);
  return w.Take();
}

Status DecodeRelease(std::span<const std::byte> in, std::vector<uint64_t>* offsets) {
  ByteReader r(in);
  uint32_t n = 0;
  if (!r.Get(&n) || r.left() != uint64_t{n} * 8) {
    return Status::InvalidArgument("a shared-ring release of the wrong size");
  }
  offsets->resize(n);
  for (uint64_t& o : *offsets) r.Get(&o);
  return Status::OK();
}

std::vector<std::byte> EncodeReply(uint64_t id, const Status& s, std::span<const ReplyItem> items) {
  ByteWriter w;
  w.Put<uint64_t>(id);
  EncodeStatus(s, &w);
  w.Put<uint32_t>(static_cast<uint32_t>(items.size()));
  for (const ReplyItem& it : items) {
    EncodeStatus(it.status, &w);
    w.Put<uint64_t>(it.offset);
    w.Put<uint64_t>(it.bytes);
  }
  return w.Take();
}

Status DecodeReply(std::span<const std::byte> in, uint64_t* id, Status* s,
                   std::vector<ReplyItem>* items) {
  ByteReader r(in);
  uint32_t n = 0;
  if (!r.Get(id) || !DecodeStatus(&r, kMaxMessage, s) || !r.Get(&n) || n > kMaxItems) {
    return Status::Internal("a shared-ring reply with a bad header");
  }
  items->assign(n, ReplyItem{});
  for (ReplyItem& it : *items) {
    if (!DecodeStatus(&r, kMaxMessage, &it.status) || !r.Get(&it.offset) || !r.Get(&it.bytes)) {
      return Status::Internal("a shared-ring reply with a truncated item");
    }
  }
  return Status::OK();
}

}  // namespace shoal::shm
