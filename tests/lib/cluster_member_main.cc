// One rank of a test world built with the public Engine and the users' bootstrap (SHOAL_RANK,
// SHOAL_WORLD_SIZE, SHOAL_NODE, SHOAL_TOKEN, SHOAL_RENDEZVOUS from the environment).
//
//   cluster_member SCENARIO STORE_DIR SYNC_DIR REPLICAS [ARG]
//
// Scenarios (every rank k writes the data set of writer k; see WriteSet):
//   full         write, barrier, verify every writer's set, listing, removal, conflicts
//   write        write, barrier
//   verify N     verify the sets of writers 0..N-1, barrier
//   kill V       write, barrier, create SYNC_DIR/ready-<rank>; rank V then waits to be killed,
//                the others wait for SYNC_DIR/go, verify every writer's set and wait for
//                each other through SYNC_DIR/done-<rank> files
//   evil         the last rank attacks every other rank with malformed messages while they
//                write; then they verify each other's sets
//   seq SIZES    one step of a sequence of jobs over the same stores: SIZES is the world size
//                of every step so far, this one last ("1,3,2"). Rank r writes seq/s<S>/r<r>/o<i>
//                and removes seq/s<S-1>/r<r>/o0; then every rank checks every step's objects:
//                the live ones bit-exact and listed, the removed ones neither found nor listed
// Exit 0 when every check passed; 1 with the first failed check on stderr; 3 PermissionDenied.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/cluster_group.h"
#include "engine/membership.h"
#include "engine/protocol.h"
#include "transport/messenger.h"
#include "transport/rendezvous.h"
#include "lib/bootstrap.h"
#include "shoal/engine.h"

using namespace shoal;

namespace {

constexpr uint32_t kChunk = 64 << 10;
const uint64_t kSizes[] = {0, 1, 2048, 2049, kChunk - 1, kChunk, kChunk + 1, 5 * kChunk + 123};
constexpr int kShared = 25;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "cluster_member: %s\n", what.c_str());
  std::fflush(stderr);
  _exit(1);
}

void Check(const Status& s, const std::string& what) {
  if (!s.ok()) {
    std::fprintf(stderr, "cluster_member: %s: %s\n", what.c_str(), s.ToString().c_str());
    _exit(s.code() == Code::kPermissionDenied ? 3 : 1);
  }
}

std::byte PatternByte(uint64_t seed, uint64_t i) {
  uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull + (i / 8) * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  return static_cast<std::byte>(x >> (8 * (i % 8)));
}

std::vector<std::byte> Pattern(uint64_t seed, uint64_t size) {
  std::vector<std::byte> v(size);
  for (uint64_t i = 0; i < size; ++i) v[i] = PatternByte(seed, i);
  return v;
}

struct Object {
  std::string path;
  uint64_t size;
  uint64_t seed;
};

uint64_t SharedSize(int k, int i) { return i % 5 == 0 ? 70000 + i : static_cast<uint64_t>(i * 37 + k); }

std::vector<Object> WriteSet(int k) {
  std::vector<Object> set;
  for (uint64_t s : kSizes) set.push_back({fmt::format("w/r{}/s{}", k, s), s, k * 1000 + s});
  for (int i = 0; i < kShared; ++i) {
    set.push_back({fmt::format("shared/r{}-{:02}", k, i), SharedSize(k, i),
                   static_cast<uint64_t>(k * 100 + i)});
  }
  return set;
}

// The "mt" object: four threads write its quarters, unaligned, size unknown in advance.
constexpr uint64_t kMtSize = 8 * kChunk + 100;
constexpr uint64_t kLocalSize = 6 * kChunk + 9;

void WriteMine(Engine& e, int k) {
  for (const Object& o : WriteSet(k)) Check(e.Put(o.path, Pattern(o.seed, o.size)), "put " + o.path);
  std::string mt = fmt::format("w/r{}/mt", k);
  Check(e.Create(mt), "create " + mt);
  auto data = Pattern(k * 7 + 5, kMtSize);
  std::vector<std::thread> threads;
  std::atomic<bool> ok{true};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      uint64_t b = kMtSize * t / 4, en = kMtSize * (t + 1) / 4;
      if (!e.Write(mt, b, std::span(data).subspan(b, en - b)).ok()) ok = false;
    });
  }
  for (auto& t : threads) t.join();
  if (!ok) Die("threaded write of " + mt);
  Check(e.Seal(mt), "seal " + mt);
  // A checkpoint-shaped object: every chunk's first replica on the writer's member.
  std::string local = fmt::format("w/r{}/local", k);
  CreateOptions co;
  co.local_first = true;
  Check(e.Put(local, Pattern(k * 11 + 3, kLocalSize), co), "put " + local);
  auto where = e.Locate(local);
  Check(where.status(), "locate " + local);
  for (const auto& ranks : *where) {
    if (ranks.empty() || ranks[0] != e.rank()) Die(local + ": a chunk's nearest replica is remote");
  }
}

void VerifyObject(Engine& e, const std::string& path, uint64_t size, uint64_t seed) {
  auto info = e.Stat(path);
  Check(info.status(), "stat " + path);
  if (info->size != size) Die(fmt::format("stat {}: size {} != {}", path, info->size, size));
  std::vector<std::byte> buf(size + 10);
  auto n = e.Read(path, 0, buf);
  Check(n.status(), "read " + path);
  if (*n != size) Die(fmt::format("read {}: {} bytes, want {}", path, *n, size));
  auto want = Pattern(seed, size);
  if (size > 0 && std::memcmp(buf.data(), want.data(), size) != 0) {
    Die("content of " + path + " differs");
  }
  if (size > kChunk + 20) {  // a read across a chunk boundary
    std::vector<std::byte> part(40);
    auto m = e.Read(path, kChunk - 20, part);
    Check(m.status(), "partial read " + path);
    if (*m != 40 || std::memcmp(part.data(), want.data() + kChunk - 20, 40) != 0) {
      Die("partial read of " + path + " differs");
    }
  }
}

std::vector<DirEntry> ListAll(Engine& e, const std::string& dir, uint32_t limit) {
  std::vector<DirEntry> all;
  ListOptions lo;
  lo.limit = limit;
  for (;;) {
    auto page = e.List(dir, lo);
    Check(page.status(), "list " + dir);
    all.insert(all.end(), page->entries.begin(), page->entries.end());
    if (!page->truncated) return all;
    lo.start_after = page->next_start_after;
  }
}

void VerifyAll(Engine& e, int writers) {
  for (int k = 0; k < writers; ++k) {
    for (const Object& o : WriteSet(k)) VerifyObject(e, o.path, o.size, o.seed);
    VerifyObject(e, fmt::format("w/r{}/mt", k), kMtSize, k * 7 + 5);
    VerifyObject(e, fmt::format("w/r{}/local", k), kLocalSize, k * 11 + 3);
  }
  // The shared directory's entries live on every shard; a paginated listing sees each once.
  auto entries = ListAll(e, "shared", 7);
  std::set<std::string> seen;
  for (const DirEntry& d : entries) {
    if (!seen.insert(d.name).second) Die("listing shows " + d.name + " twice");
    int k = 0, i = 0;
    if (std::sscanf(d.name.c_str(), "r%d-%d", &k, &i) != 2 || k >= writers || d.is_dir ||
        d.size != SharedSize(k, i)) {
      Die(fmt::format("unexpected entry {} (size {})", d.name, d.size));
    }
  }
  if (seen.size() != static_cast<size_t>(writers * kShared)) {
    Die(fmt::format("listing of shared has {} entries, want {}", seen.size(), writers * kShared));
  }
  auto top = ListAll(e, "w", 1000);
  if (top.size() != static_cast<size_t>(writers)) Die(fmt::format("w has {} entries", top.size()));
  for (const DirEntry& d : top) {
    if (!d.is_dir) Die("w/" + d.name + " is not a directory");
  }
}

void WaitForFile(const std::string& path) {
  while (!std::filesystem::exists(path)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

using engine::protocol::Op;
uint16_t W(Op op) { return engine::protocol::Wire(op); }
transport::Messenger* messenger = nullptr;  // the evil rank's, for raw headers

// The malformed traffic of the "evil" rank: every request must be refused, none may crash.
void Attack(engine::Cluster& c) {
  auto& m = c.world().transport();
  const uint32_t me = c.world().rank();
  auto bytes = [](std::initializer_list<int> v) {
    std::vector<std::byte> b;
    for (int x : v) b.push_back(static_cast<std::byte>(x));
    return b;
  };
  std::vector<std::pair<uint16_t, std::vector<std::byte>>> requests = {
      {W(Op::kChunkWrite), bytes({1, 2, 3})},
      {W(Op::kChunkWrite), std::vector<std::byte>(24, std::byte{0xff})},
      {W(Op::kChunkRead), std::vector<std::byte>(28, std::byte{0xff})},
      {W(Op::kChunkRead), bytes({0})},
      {W(Op::kChunkCommit), bytes({9, 9})},
      {W(Op::kChunkCommit), std::vector<std::byte>(8, std::byte{0x42})},
      {W(Op::kChunkDrop), bytes({})},
      {W(Op::kMetaCheck), bytes({0xff, 0xff, 0xff, 0x7f, 'a'})},
      {W(Op::kMetaGet), bytes({3, 0, 0, 0, '.', '.', '/'})},
      {W(Op::kMetaInsert), bytes({1, 0, 0, 0, 'x', 1, 2, 3, 4})},
      {W(Op::kMetaList), bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})},
      {W(Op::kMetaRemove), bytes({5, 0, 0, 0, 'a'})},
      {999, bytes({1})},
  };
  // A well-formed chunk read of a range no chunk size allows.
  std::vector<std::byte> big(28, std::byte{0});
  uint32_t cs = kChunk, len = 1u << 30;
  std::memcpy(big.data() + 8, &cs, 4);
  std::memcpy(big.data() + 24, &len, 4);
  requests.push_back({W(Op::kChunkRead), big});
  for (uint32_t peer = 0; peer < c.world().size(); ++peer) {
    if (peer == me) continue;
    for (auto& [op, req] : requests) {
      auto r = m.Call(peer, op, req, std::chrono::milliseconds(10000));
      if (r.ok()) Die(fmt::format("peer {} accepted a malformed op {} request", peer, op));
      if (r.status().code() == Code::kTimeout || r.status().code() == Code::kUnavailable) {
        Die(fmt::format("peer {} stopped answering: {}", peer, r.status().ToString()));
      }
    }
    // Raw headers: bad magic, wrong length, another sender's index. Dropped without reply.
    std::vector<std::byte> h(32, std::byte{0});
    messenger->SendRawForTest(peer, h, {});
    messenger->SendRawForTest(peer, std::vector<std::byte>(7, std::byte{1}), {});
    messenger->SendRawForTest(peer, std::vector<std::byte>(40, std::byte{0xAB}),
                              std::vector<std::byte>(100));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) Die("usage: cluster_member SCENARIO STORE_DIR SYNC_DIR REPLICAS [ARG]");
  std::string scenario = argv[1], sync = argv[3];
  int arg = argc > 5 ? std::atoi(argv[5]) : 0;
  const std::string arg_text = argc > 5 ? argv[5] : "";
  Options o;
  o.store_dir = argv[2];
  o.chunk_size = kChunk;
  o.replicas = static_cast<uint32_t>(std::atoi(argv[4]));
  o.join_timeout_ms = 60000;
  if (const char* t = std::getenv("TEST_JOIN_TIMEOUT_MS")) o.join_timeout_ms = std::atoi(t);

  if (scenario == "evil") {
    auto plan = PlanBootstrap(o);
    Check(plan.status(), "bootstrap");
    if (plan->world.rank + 1 == plan->world.world_size) {
      auto store = engine::ObjectStore::Open(o);
      Check(store.status(), "open store");
      std::vector<engine::ClusterGroup::Member> members(1);
      members[0].options.ring_dir = o.store_dir + "/ring";
      members[0].store = std::move(store).value();
      auto t = transport::Messenger::Create({.self = 0, .world_size = 0, .handler_threads = 4});
      Check(t.status(), "messenger");
      messenger = t->get();
      members[0].transport = std::move(t).value();
      auto g = engine::ClusterGroup::Start(std::move(members), plan->world, *plan->rendezvous);
      Check(g.status(), "join");
      engine::Cluster& c = (*g)->member(0);
      Check(c.Barrier(), "barrier 1");
      Attack(c);
      Check(c.Barrier(), "barrier 2");
      Check(c.Barrier(), "barrier 3");
      std::printf("attacked\n");
      return 0;
    }
  }

  auto e = Engine::Open(o);
  Check(e.status(), "open");
  Engine& eng = **e;
  const int rank = static_cast<int>(eng.rank());
  const int world = static_cast<int>(eng.world_size());

  if (scenario == "full") {
    WriteMine(eng, rank);
    Check(eng.Barrier(), "barrier");
    // Other ranks' whole chunks arrived straight into the buffers this member staged them in.
    if (world > 1) {
      Stats st = eng.GetStats();
      if (st.counters["member.remote.chunk_bytes_staged_in_place"] == 0) {
        Die(fmt::format("no remote chunk bytes staged in place ({} copied)",
                        st.counters["member.remote.chunk_bytes_copied"]));
      }
    }
    VerifyAll(eng, world);
    // Chunks are spread over the members, each on `replicas` distinct ranks.
    auto where = eng.Locate(fmt::format("w/r{}/s{}", rank, 5 * kChunk + 123));
    Check(where.status(), "locate");
    std::set<uint32_t> spread;
    if (where->size() != 6) Die(fmt::format("locate: {} chunks, want 6", where->size()));
    for (const auto& holders : *where) {
      if (holders.size() != o.replicas) Die(fmt::format("locate: {} holders", holders.size()));
      if (std::set<uint32_t>(holders.begin(), holders.end()).size() != holders.size()) {
        Die("locate: a chunk's replicas share a rank");
      }
      spread.insert(holders.begin(), holders.end());
    }
    if (spread.size() != static_cast<size_t>(world)) Die("chunks of 6 do not reach every member");
    // Conflicts and bad input.
    if (eng.Create(fmt::format("w/r{}/s2048", (rank + 1) % world)).code() != Code::kAlreadyExists) {
      Die("create over another rank's sealed object was not refused");
    }
    std::vector<std::byte> buf(10);
    if (eng.Read("w/absent", 0, buf).status().code() != Code::kNotFound) Die("absent read");
    if (eng.Stat("w/../x").status().code() != Code::kInvalidArgument) Die("bad name accepted");
    if (eng.Read(fmt::format("w/r{}/s1", rank), 5, buf).status().code() != Code::kInvalidArgument) {
      Die("read past the end accepted");
    }
    Check(eng.Barrier(), "barrier");
    // Removal is seen by everyone.
    Check(eng.Remove(fmt::format("w/r{}/s{}", rank, 5 * kChunk + 123)), "remove");
    Check(eng.Barrier(), "barrier");
    for (int k = 0; k < world; ++k) {
      std::string p = fmt::format("w/r{}/s{}", k, 5 * kChunk + 123);
      if (eng.Stat(p).status().code() != Code::kNotFound) Die(p + " still there after removal");
      for (const DirEntry& d : ListAll(eng, fmt::format("w/r{}", k), 3)) {
        if (d.name == fmt::format("s{}", 5 * kChunk + 123)) Die(p + " still listed");
      }
    }
    Check(eng.Barrier(), "barrier");
  } else if (scenario == "seq") {
    std::vector<int> sizes;
    for (size_t at = 0; at < arg_text.size();) {
      size_t comma = arg_text.find(',', at);
      if (comma == std::string::npos) comma = arg_text.size();
      sizes.push_back(std::atoi(arg_text.substr(at, comma - at).c_str()));
      at = comma + 1;
    }
    const int step = static_cast<int>(sizes.size()) - 1;
    if (step < 0 || sizes.back() != world) Die("seq: the last size must be this world's");
    constexpr int kPerRank = 4;
    auto path = [](int s, int r, int i) { return fmt::format("seq/s{}/r{}/o{}", s, r, i); };
    auto size_of = [](int s, int r, int i) {
      return static_cast<uint64_t>(i == 3 ? 3 * kChunk + 17 * s + r : 100 * (i + 1) + s + r);
    };
    auto seed = [](int s, int r, int i) { return static_cast<uint64_t>(10000 + s * 100 + r * 10 + i); };
    for (int i = 0; i < kPerRank; ++i) {
      Check(eng.Put(path(step, rank, i), Pattern(seed(step, rank, i), size_of(step, rank, i))),
            "put " + path(step, rank, i));
    }
    if (step > 0 && rank < sizes[step - 1]) {
      Check(eng.Remove(path(step - 1, rank, 0)), "remove " + path(step - 1, rank, 0));
    }
    Check(eng.Barrier(), "barrier");
    uint64_t live = 0, gone = 0;
    for (int s = 0; s <= step; ++s) {
      for (int r = 0; r < sizes[s]; ++r) {
        std::set<std::string> listed;
        for (const DirEntry& d : ListAll(eng, fmt::format("seq/s{}/r{}", s, r), 3)) {
          listed.insert(d.name);
        }
        for (int i = 0; i < kPerRank; ++i) {
          const bool removed = i == 0 && s < step && r < sizes[s + 1];
          const std::string name = fmt::format("o{}", i);
          if (removed) {
            if (eng.Stat(path(s, r, i)).status().code() != Code::kNotFound) {
              Die(path(s, r, i) + " was removed and is back");
            }
            if (listed.count(name) != 0) Die(path(s, r, i) + " was removed and is listed");
            gone++;
          } else {
            VerifyObject(eng, path(s, r, i), size_of(s, r, i), seed(s, r, i));
            if (listed.count(name) == 0) Die(path(s, r, i) + " is not listed");
            live++;
          }
        }
      }
    }
    if (rank == 0) {
      std::printf("seq step %d (world of %d): %llu objects live, %llu removed, all as expected\n",
                  step, world, (unsigned long long)live, (unsigned long long)gone);
    }
    Check(eng.Barrier(), "barrier");
  } else if (scenario == "observe") {
    // Every rank but 0 observes the live world through rank 0's rendezvous port, as a CLI
    // would (issue 12): the member table and the membership record of this epoch; then the
    // world still works. Prints the epoch for the test to compare across runs.
    Check(eng.Barrier(), "barrier");
    if (rank != 0) {
      auto plan = PlanBootstrap(o);
      Check(plan.status(), "bootstrap");
      const std::string& a = plan->rendezvous_address;  // tcp:HOST:PORT
      const size_t colon = a.rfind(':');
      if (a.rfind("tcp:", 0) != 0 || colon < 4) Die("not a TCP rendezvous: " + a);
      transport::TcpRendezvousOptions to;
      to.host = a.substr(4, colon - 4);
      to.port = static_cast<uint16_t>(std::atoi(a.c_str() + colon + 1));
      const char* token = std::getenv("SHOAL_TOKEN");
      to.token = token != nullptr ? token : "";
      to.timeout = std::chrono::seconds(10);
      auto seen = transport::ObserveTcpRendezvous(to);
      Check(seen.status(), "observe");
      if (seen->members.size() != eng.world_size()) Die("observer: wrong member count");
      auto m = engine::DecodeMembership(std::string_view(
          reinterpret_cast<const char*>(seen->info.data()), seen->info.size()));
      Check(m.status(), "observer: membership record");
      if (m->epoch == 0 || m->members.size() != eng.world_size()) {
        Die("observer: membership record of epoch 0 or of the wrong size");
      }
      std::printf("epoch %llu\n", static_cast<unsigned long long>(m->epoch));
      std::fflush(stdout);
    }
    Check(eng.Barrier(), "barrier");
    const std::string path = fmt::format("observed/{}-{}", rank, getpid());
    Check(eng.Put(path, std::as_bytes(std::span(path))), "put after observing");
    Check(eng.Barrier(), "barrier");
  } else if (scenario == "write") {
    WriteMine(eng, rank);
    Check(eng.Barrier(), "barrier");
  } else if (scenario == "verify") {
    VerifyAll(eng, arg);
    Check(eng.Barrier(), "barrier");  // nobody leaves while others may still read from it
  } else if (scenario == "repair") {
    // A member of the world that wrote was lost with its store: rank 0 repairs, after which
    // every written chunk has `replicas` live replicas again (Locate lists live ones only).
    auto count_short = [&] {
      uint64_t shortage = 0;
      std::vector<std::string> dirs{""};
      while (!dirs.empty()) {
        std::string d = dirs.back();
        dirs.pop_back();
        for (const DirEntry& x : ListAll(eng, d, 1000)) {
          std::string p = d.empty() ? x.name : d + "/" + x.name;
          if (x.is_dir) {
            dirs.push_back(p);
            continue;
          }
          auto where = eng.Locate(p);
          Check(where.status(), "locate " + p);
          for (const auto& ranks : *where) {
            if (!ranks.empty() && ranks.size() < o.replicas) shortage++;
          }
        }
      }
      return shortage;
    };
    // The Open declared the lost member lost: every rank's background repair restores the
    // replicas of the objects whose metadata it is primary for.
    auto bg = eng.WaitForRepair(120000);
    Check(bg.status(), "background repair");
    if (!bg->lost.empty()) Die("background repair reports lost objects: " + bg->lost[0]);
    const uint64_t mine = bg->chunks_copied;
    auto all = eng.AllGather({reinterpret_cast<const std::byte*>(&mine), sizeof(mine)});
    Check(all.status(), "all-gather");
    if (rank == 0) {
      uint64_t copied = 0;
      for (const auto& b : *all) {
        uint64_t v = 0;
        std::memcpy(&v, b.data(), std::min(b.size(), sizeof(v)));
        copied += v;
      }
      std::printf("repair: background repair copied %llu chunks on %zu ranks\n",
                  (unsigned long long)copied, all->size());
      if (copied == 0) Die("no chunk was short of replicas after the loss");
      if (uint64_t after = count_short(); after != 0) {
        Die(fmt::format("{} chunks still short after the background repair", after));
      }
      auto again = eng.Repair();
      Check(again.status(), "repair");
      if (again->chunks_copied != 0) Die("an explicit repair after the background one copied");
    }
    Check(eng.Barrier(), "barrier");
    VerifyAll(eng, arg);
    Check(eng.Barrier(), "barrier");
  } else if (scenario == "kill") {
    WriteMine(eng, rank);
    Check(eng.Barrier(), "barrier");
    std::FILE* f = std::fopen((sync + "/ready-" + std::to_string(rank)).c_str(), "w");
    if (f != nullptr) std::fclose(f);
    if (rank == arg) {
      for (;;) pause();  // killed by the test
    }
    WaitForFile(sync + "/go");
    VerifyAll(eng, world);
    // No barrier with a dead member: survivors wait for each other through files.
    f = std::fopen((sync + "/done-" + std::to_string(rank)).c_str(), "w");
    if (f != nullptr) std::fclose(f);
    for (int r = 0; r < world; ++r) {
      if (r != arg) WaitForFile(sync + "/done-" + std::to_string(r));
    }
  } else if (scenario == "evil") {
    Check(eng.Barrier(), "barrier 1");
    WriteMine(eng, rank);
    Check(eng.Barrier(), "barrier 2");
    for (int k = 0; k + 1 < world; ++k) {
      for (const Object& ob : WriteSet(k)) VerifyObject(eng, ob.path, ob.size, ob.seed);
    }
    Check(eng.Barrier(), "barrier 3");
  } else {
    Die("unknown scenario " + scenario);
  }
  std::printf("ok rank %d\n", rank);
  return 0;
}
