#include "bindings/cli/store_part.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "bindings/cli/human.h"
#include "engine/member_service.h"
#include "engine/meta_store.h"
#include "engine/object_store.h"
#include "engine/store_layout.h"

namespace shoal::cli {
namespace {

using json = nlohmann::ordered_json;

std::string NodeOf(const StorePart& p) {
  for (const auto& m : p.membership.members) {
    if (m.id == p.member_id) return m.node;
  }
  return "?";
}

void SayPart(const StorePart& p) {
  std::fprintf(stderr,
               "shoal: %s is member %s (node %s) of a world of %zu members (epoch %llu); "
               "alone it is not the world: showing its own part. Give every store (or their "
               "root) to see the world.\n",
               p.dir.c_str(), p.member_id.c_str(), NodeOf(p).c_str(), p.membership.members.size(),
               static_cast<unsigned long long>(p.membership.epoch));
}

}  // namespace

Result<std::optional<StorePart>> ReadStorePart(const std::string& dir) {
  Options o;
  o.store_dir = dir;
  SHOAL_ASSIGN_OR_RETURN(auto store, engine::ObjectStore::Open(o));
  SHOAL_ASSIGN_OR_RETURN(auto ring,
                         engine::MetaStore::OpenKeyspace(&store->meta(), "ring.",
                                                         engine::StorePath(dir, engine::kRingDir)));
  SHOAL_ASSIGN_OR_RETURN(engine::Membership m, ring->LoadMembership());
  if (m.members.size() <= 1) return std::optional<StorePart>();
  StorePart p;
  p.dir = dir;
  p.member_id = store->member_id();
  p.membership = std::move(m);
  SHOAL_ASSIGN_OR_RETURN(p.objects, engine::LocalObjectsOf(*store, ""));
  std::sort(p.objects.begin(), p.objects.end(),
            [](const LocalObject& a, const LocalObject& b) { return a.path < b.path; });
  SHOAL_ASSIGN_OR_RETURN(p.space, store->GetLocalSpace());
  ring.reset();
  return std::optional<StorePart>(std::move(p));
}

int PartStatus(const StorePart& p, bool json_out) {
  uint64_t held = 0;
  for (const LocalObject& o : p.objects) held += o.bytes;
  if (json_out) {
    json members = json::array();
    for (const auto& m : p.membership.members) {
      members.push_back({{"member_id", m.id}, {"node", m.node}, {"this_store", m.id == p.member_id}});
    }
    json j = {{"part", true}, {"store", p.dir}, {"member_id", p.member_id}, {"node", NodeOf(p)},
              {"epoch", p.membership.epoch}, {"members", members}, {"lost", p.membership.lost},
              {"objects", p.objects.size()}, {"held_bytes", held},
              {"free_bytes", p.space.free_bytes}, {"total_bytes", p.space.total_bytes}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  SayPart(p);
  std::printf("store %s: member %s, node %s\n", p.dir.c_str(), p.member_id.c_str(),
              NodeOf(p).c_str());
  std::printf("its world at epoch %llu: %zu member(s), %zu declared lost\n",
              static_cast<unsigned long long>(p.membership.epoch), p.membership.members.size(),
              p.membership.lost.size());
  for (const auto& m : p.membership.members) {
    std::printf("  %s  node %s%s\n", m.id.c_str(), m.node.c_str(),
                m.id == p.member_id ? "  (this store)" : "");
  }
  std::printf("holds chunks of %zu object(s), %s; %s free of %s\n", p.objects.size(),
              Human(held).c_str(), Human(p.space.free_bytes).c_str(),
              Human(p.space.total_bytes).c_str());
  return 0;
}

int PartLs(const StorePart& p, const std::string& dir, bool long_format, bool json_out) {
  SayPart(p);
  json out = json::array();
  size_t shown = 0;
  for (const LocalObject& o : p.objects) {
    if (!dir.empty() && o.path.compare(0, dir.size() + 1, dir + "/") != 0 && o.path != dir) {
      continue;
    }
    shown++;
    if (json_out) {
      out.push_back({{"path", o.path}, {"held_bytes", o.bytes}});
    } else if (long_format) {
      std::printf("%14llu  %s\n", static_cast<unsigned long long>(o.bytes), o.path.c_str());
    } else {
      std::printf("%s\n", o.path.c_str());
    }
  }
  if (json_out) std::printf("%s\n", out.dump().c_str());
  if (shown == 0 && !dir.empty()) {
    std::fprintf(stderr, "shoal ls: this store holds no chunk of an object under \"%s\"\n",
                 dir.c_str());
    return 1;
  }
  return 0;
}

int PartDu(const StorePart& p, bool json_out) {
  uint64_t held = 0;
  for (const LocalObject& o : p.objects) held += o.bytes;
  if (json_out) {
    std::printf("%s\n", json({{"part", true}, {"objects", p.objects.size()}, {"held_bytes", held}})
                             .dump()
                             .c_str());
    return 0;
  }
  SayPart(p);
  std::printf("%12s %11zu objects  (chunks held by this store)\n", Human(held).c_str(),
              p.objects.size());
  return 0;
}

}  // namespace shoal::cli
