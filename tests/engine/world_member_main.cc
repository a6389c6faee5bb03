// One rank of a test world: opens its store (for its persistent member id), joins the world
// through the requested rendezvous, all-gathers "rank:node:member_id", checks every member saw
// the same roster, and prints it. Exit codes: 0 ok, 3 PermissionDenied, 4 Timeout, 1 other.
//
//   world_member STORE_DIR RANK WORLD NODE TOKEN file:DIR|tcp:HOST:PORT [TIMEOUT_MS]
#include <cstdio>
#include <string>

#include "engine/object_store.h"
#include "engine/world.h"
#include "transport/messenger.h"

using namespace shoal;

int Fail(const Status& s, const char* what) {
  std::fprintf(stderr, "world_member: %s: %s\n", what, s.ToString().c_str());
  if (s.code() == Code::kPermissionDenied) return 3;
  if (s.code() == Code::kTimeout) return 4;
  return 1;
}

int main(int argc, char** argv) {
  if (argc < 7) return 2;
  std::string store_dir = argv[1];
  uint32_t rank = static_cast<uint32_t>(std::stoul(argv[2]));
  uint32_t world = static_cast<uint32_t>(std::stoul(argv[3]));
  std::string node = argv[4], token = argv[5], rdzv = argv[6];
  auto timeout = std::chrono::milliseconds(argc > 7 ? std::stoul(argv[7]) : 30000);

  Options o;
  o.store_dir = store_dir;
  auto store = engine::ObjectStore::Open(o);
  if (!store.ok()) return Fail(store.status(), "open store");

  std::unique_ptr<transport::Rendezvous> r;
  if (rdzv.rfind("file:", 0) == 0) {
    r = transport::NewFileRendezvous(rdzv.substr(5), rank, world, token, timeout);
  } else if (rdzv.rfind("tcp:", 0) == 0) {
    std::string hp = rdzv.substr(4);
    size_t colon = hp.rfind(':');
    transport::TcpRendezvousOptions t;
    t.rank = rank;
    t.world_size = world;
    t.host = hp.substr(0, colon);
    t.port = static_cast<uint16_t>(std::stoul(hp.substr(colon + 1)));
    t.token = token;
    t.timeout = timeout;
    r = transport::NewTcpRendezvous(t);
  } else {
    return 2;
  }
  engine::WorldOptions wo;
  wo.rank = rank;
  wo.world_size = world;
  wo.node = node;
  wo.member_id = (*store)->member_id();
  wo.timeout = timeout;
  auto m = transport::Messenger::Create({.self = rank, .world_size = world});
  if (!m.ok()) return Fail(m.status(), "messenger");
  auto w = engine::World::Join(wo, std::move(m).value(), *r);
  if (!w.ok()) return Fail(w.status(), "join");

  std::string mine = std::to_string(rank) + ":" + node + ":" + wo.member_id;
  auto* p = reinterpret_cast<const std::byte*>(mine.data());
  auto all = (*w)->AllGather(transport::Blob(p, p + mine.size()));
  if (!all.ok()) return Fail(all.status(), "all-gather");
  std::string roster;
  for (uint32_t i = 0; i < world; ++i) {
    const auto& m = (*w)->members()[i];
    std::string want = std::to_string(i) + ":" + m.node + ":" + m.member_id;
    std::string got(reinterpret_cast<const char*>((*all)[i].data()), (*all)[i].size());
    if (got != want) {
      std::fprintf(stderr, "world_member: entry %u is '%s', roster says '%s'\n", i, got.c_str(),
                   want.c_str());
      return 1;
    }
    roster += got + (i + 1 < world ? " " : "");
  }
  Status s = (*w)->Barrier();
  if (!s.ok()) return Fail(s, "barrier");
  std::printf("%s\n", roster.c_str());
  return 0;
}
