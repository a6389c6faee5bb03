// The shared-reads ring (lib/shared_ring.h) as the server sees it: a ring whose control words
// and bytes were written by a reader that may be broken. Peek must never read outside the
// ring, and every record it returns must decode or be refused; what decodes must re-encode to
// the same bytes.
#include "lib/shared_ring.h"
#include "tests/fuzz/fuzz_target.h"

namespace shoal::fuzz {

void FuzzSharedRing(std::string_view input) {
  Input in(input);
  const uint64_t head = in.Take<uint32_t>();
  const uint64_t tail = in.Take<uint32_t>();
  std::string_view bytes = in.Rest();
  constexpr uint64_t kCap = 4096;
  std::vector<std::byte> data(kCap);
  std::memcpy(data.data(), bytes.data(), std::min<size_t>(bytes.size(), kCap));
  shm::RingControl c;
  c.head.store(head);
  c.tail.store(tail);
  shm::Ring ring(&c, data.data(), kCap);
  for (int i = 0; i < 64; ++i) {
    auto rec = ring.Peek();
    if (!rec) return;
    if (rec->corrupt) {
      FUZZ_REQUIRE(rec->payload.empty());
      return;
    }
    FUZZ_REQUIRE(rec->payload.data() >= data.data() &&
                 rec->payload.data() + rec->payload.size() <= data.data() + kCap);
    FUZZ_REQUIRE(rec->next_tail > c.tail.load() && rec->next_tail <= c.head.load());
    if (rec->type == shm::kRequest) {
      uint64_t id = 0;
      std::vector<ReadItem> items;
      if (shm::DecodeRequest(rec->payload, &id, &items).ok()) {
        FUZZ_REQUIRE(items.size() <= shm::kMaxItems);
        std::vector<std::byte> again = shm::EncodeRequest(id, items);
        FUZZ_REQUIRE(again.size() == rec->payload.size() &&
                     std::memcmp(again.data(), rec->payload.data(), again.size()) == 0);
      }
    } else if (rec->type == shm::kRelease) {
      std::vector<uint64_t> offsets;
      if (shm::DecodeRelease(rec->payload, &offsets).ok()) {
        FUZZ_REQUIRE(shm::EncodeRelease(offsets).size() == rec->payload.size());
      }
    } else if (rec->type == shm::kReply) {
      uint64_t id = 0;
      Status s;
      std::vector<shm::ReplyItem> items;
      (void)shm::DecodeReply(rec->payload, &id, &s, &items);
    }
    ring.Pop(*rec);
  }
}

std::vector<std::string> SharedRingSeeds() {
  std::vector<std::string> seeds;
  auto ring_of = [&](const std::vector<std::pair<uint32_t, std::vector<std::byte>>>& records) {
    std::vector<std::byte> data(4096);
    shm::RingControl c;
    shm::Ring ring(&c, data.data(), data.size());
    for (const auto& [type, payload] : records) ring.TryPush(type, payload);
    std::string s;
    Append<uint32_t>(&s, static_cast<uint32_t>(c.head.load()));
    Append<uint32_t>(&s, static_cast<uint32_t>(c.tail.load()));
    s.append(reinterpret_cast<const char*>(data.data()), static_cast<size_t>(c.head.load()));
    seeds.push_back(std::move(s));
  };
  ReadItem a;
  a.path = "datasets/x/c0/s001.bin";
  ReadItem b;
  b.dataset = 3;
  b.index = 41;
  ReadItem c;
  c.path = "o/7";
  c.offset = 100;
  c.size = 50;
  std::vector<ReadItem> items = {a, b, c};
  const uint64_t offsets[] = {0, 4096, 65536};
  shm::ReplyItem r;
  r.offset = 8192;
  r.bytes = 300;
  std::vector<shm::ReplyItem> replies = {r, shm::ReplyItem{Status::NotFound("no object"), ~0ull, 0}};
  ring_of({{shm::kRequest, shm::EncodeRequest(7, items)},
           {shm::kRelease, shm::EncodeRelease(offsets)},
           {shm::kBye, {}}});
  ring_of({{shm::kReply, shm::EncodeReply(7, Status::OK(), replies)}});
  return seeds;
}

}  // namespace shoal::fuzz
