// A member process for messenger tests: publishes its UCX address in a directory, connects to
// the other members, serves test ops, and exits when <dir>/stop appears (or is killed).
//
//   transport_peer DIR SELF WORLD
//
// Ops: 1 echo; 2 sleep (payload: u32 ms) then echo; 3 fail with NotFound; 4 report
// bad_messages (u64); 5 ask member 0 to echo the payload and return its answer (nested call);
// 7 a body op (SetBodyHandler): an 8-byte head (u64 tag), the body received into memory this
// op's sink lends (bodies up to 32 MiB; larger ones the messenger allocates), answered with
// {u64 tag, u8 1 when the body was in the sink's memory, u32 CRC32C of the body, u64 length}.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <mutex>
#include <set>

#include "base/crc32c.h"
#include "transport/messenger.h"

using namespace shoal;
using namespace shoal::transport;

namespace {

void WriteFile(const std::string& path, const std::vector<std::byte>& data) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  }
  std::filesystem::rename(tmp, path);
}

std::vector<std::byte> WaitFile(const std::string& path) {
  while (!std::filesystem::exists(path)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  std::string dir = argv[1];
  uint32_t self = static_cast<uint32_t>(std::stoul(argv[2]));
  uint32_t world = static_cast<uint32_t>(std::stoul(argv[3]));
  auto m = Messenger::Create({.self = self, .world_size = world, .handler_threads = 2});
  if (!m.ok()) {
    std::fprintf(stderr, "peer: %s\n", m.status().ToString().c_str());
    return 1;
  }
  Messenger& msg = **m;
  msg.SetHandler(1, [](uint32_t, std::span<const std::byte> p) {
    return Reply{Status::OK(), Payload(p.begin(), p.end())};
  });
  msg.SetHandler(2, [](uint32_t, std::span<const std::byte> p) {
    uint32_t ms = 0;
    if (p.size() >= 4) std::memcpy(&ms, p.data(), 4);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return Reply{Status::OK(), Payload(p.begin(), p.end())};
  });
  msg.SetHandler(3, [](uint32_t sender, std::span<const std::byte>) {
    return Reply{Status::NotFound("nothing here for member " + std::to_string(sender)), {}};
  });
  msg.SetHandler(4, [&msg](uint32_t, std::span<const std::byte>) {
    uint64_t bad = msg.counters().bad_messages;
    auto* b = reinterpret_cast<const std::byte*>(&bad);
    return Reply{Status::OK(), Payload(b, b + 8)};
  });
  msg.SetHandler(5, [&msg](uint32_t, std::span<const std::byte> p) {
    auto r = msg.Call(0, 1, transport::Payload(p.begin(), p.end()));
    if (!r.ok()) return Reply{r.status(), {}};
    return Reply{Status::OK(), std::move(r).value()};
  });
  std::mutex lent_mu;
  std::set<const std::byte*> lent;  // bodies the sink lent, until their handler ran
  msg.SetBodyHandler(
      7, 8,
      [&](size_t length) -> Body {
        if (length > (32u << 20)) return {};
        auto buf = std::make_shared<std::vector<std::byte>>(length);
        std::lock_guard lk(lent_mu);
        lent.insert(buf->data());
        return Body{*buf, buf};
      },
      [&](uint32_t, std::span<const std::byte> head, Body body) {
        uint8_t in_sink = 0;
        {
          std::lock_guard lk(lent_mu);
          in_sink = lent.erase(body.bytes.data()) != 0 ? 1 : 0;
        }
        const uint32_t crc = Crc32c(body.bytes.data(), body.bytes.size());
        const uint64_t length = body.bytes.size();
        Payload out(head.begin(), head.end());
        auto put = [&out](const void* v, size_t n) {
          auto* b = static_cast<const std::byte*>(v);
          out.insert(out.end(), b, b + n);
        };
        put(&in_sink, 1);
        put(&crc, 4);
        put(&length, 8);
        return Reply{Status::OK(), std::move(out)};
      });
  WriteFile(dir + "/addr-" + std::to_string(self), msg.address());
  for (uint32_t peer = 0; peer < world; ++peer) {
    auto addr = WaitFile(dir + "/addr-" + std::to_string(peer));
    Status s = msg.Connect(peer, addr);
    if (!s.ok()) {
      std::fprintf(stderr, "peer: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  WriteFile(dir + "/ready-" + std::to_string(self), {});
  // "hammer": fetch member 0's lent 16 MiB reply bodies (its op 6) from 4 threads until stopped
  // (or killed in the middle: the reclaim test).
  std::vector<std::thread> hammers;
  std::atomic<bool> stop{false};
  while (!std::filesystem::exists(dir + "/stop")) {
    if (hammers.empty() && std::filesystem::exists(dir + "/hammer")) {
      for (int t = 0; t < 4; ++t) {
        hammers.emplace_back([&msg, &stop] {
          Payload req(5, std::byte{0});
          const uint32_t len = 16u << 20;
          std::memcpy(req.data() + 1, &len, 4);
          while (!stop.load()) (void)msg.Call(0, 6, req);
        });
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop = true;
  for (auto& t : hammers) t.join();
  return 0;
}
