// One rank of a checkpointing job, started by checkpoint_world_test.cc with the launcher's
// environment (SHOAL_RANK, SHOAL_WORLD_SIZE, SHOAL_NODE, SHOAL_TOKEN, SHOAL_RENDEZVOUS).
//
//   ckpt_member save   STORE SYNC REPLICAS STEPS [ASYNC KEEP [DIE]]  saves tags step-<n>, n
//                      following the latest committed one, STEPS times (0: until killed);
//                      writes SYNC/committed-<n> on rank 0 once Commit returned OK, and on
//                      every rank SYNC/ok-<n>-r<rank>, unknown-<n>-r<rank> (Timeout: outcome
//                      unknown) or failed-<n>-r<rank> (any other error) after each Commit.
//                      DIE "R:POINT": rank R SIGKILLs itself at the first POINT of the commit
//                      protocol (lib/checkpoint_commit.h): published, unpublished, or
//                      verdict (rank R != 0: once rank 0 published, before R hears the verdict).
//   ckpt_member verify STORE SYNC REPLICAS                   every committed tag loads bit-exact
//                      (each rank loads a share of every tag's blobs, written by other ranks),
//                      a ranged read works, and after the next Begin no data of uncommitted
//                      tags is left; prints "tags N latest T".
//   ckpt_member repair STORE SYNC REPLICAS                   rank 0 repairs, then verify.
//
// Blob contents and sizes are functions of (tag, name), so any later world checks them.
#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "shoal/checkpoint.h"
#include "lib/checkpoint_commit.h"
#include "shoal/engine.h"
#include "tests/lib/ckpt_content.h"

using namespace shoal;
using shoal::testing::Content;
using shoal::testing::SizeOf;

namespace {

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "ckpt_member: %s\n", msg.c_str());
  std::exit(1);
}

void Check(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.ToString());
}

void Touch(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f != nullptr) std::fclose(f);
}

// DIE "R:POINT": this rank dies at POINT when it is rank R.
void ArmDeath(Engine& e, Checkpointer& ck, const std::string& spec) {
  const size_t colon = spec.find(':');
  if (colon == std::string::npos) Die("DIE is R:POINT, not " + spec);
  if (static_cast<uint32_t>(std::atoi(spec.c_str())) != e.rank()) return;
  const std::string point = spec.substr(colon + 1);
  CommitPoint at;
  if (point == "published") {
    at = CommitPoint::kPublished;
  } else if (point == "unpublished") {
    at = CommitPoint::kUnpublished;
  } else if (point == "verdict") {
    at = CommitPoint::kPartsGathered;
  } else {
    Die("unknown DIE point " + point);
  }
  const bool wait_for_publish = point == "verdict";
  SetCommitHookForTesting([at, wait_for_publish, &ck](CommitPoint p, Engine&, std::string_view tag) {
    if (p != at) return;
    if (wait_for_publish) {
      // Rank 0 publishes only after its own parts' all-gather succeeded: once the tag is
      // listed, dying here is a death between publish and the verdict, deterministically.
      for (int i = 0; i < 3000; ++i) {
        auto l = ck.Latest();
        if (l.ok() && *l == tag) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    std::fflush(stdout);
    ::raise(SIGKILL);
  });
}

int StepOf(const std::string& tag) { return std::atoi(tag.c_str() + 5); }  // "step-<n>"

void Verify(Engine& e, Checkpointer& ck) {
  auto tags = ck.List();
  Check(tags.status(), "list tags");
  std::string latest = "none", first = "none";
  std::set<uint32_t> worlds;
  for (const TagInfo& t : *tags) {
    auto m = ck.GetManifest(t.tag);
    Check(m.status(), "manifest of " + t.tag);
    worlds.insert(m->world_size);
    if (m->blobs.size() != 3 * m->world_size) {
      Die(fmt::format("{}: {} blobs from {} ranks", t.tag, m->blobs.size(), m->world_size));
    }
    if (m->metadata != fmt::format("{{\"step\": {}}}", StepOf(t.tag))) Die(t.tag + ": metadata");
    for (size_t i = 0; i < m->blobs.size(); ++i) {
      const BlobInfo& b = m->blobs[i];
      if (b.name.find(fmt::format("r{}/", b.rank)) != 0) Die(b.name + ": wrong rank recorded");
      if (b.size != SizeOf(t.tag, b.name)) Die(t.tag + "/" + b.name + ": size in manifest");
      if (i % e.world_size() != e.rank()) continue;  // each rank loads a share, mostly others'
      std::vector<std::byte> got(b.size);
      Check(ck.Load(*m, b.name, got), "load " + t.tag + "/" + b.name);
      if (got != Content(t.tag, b.name)) Die(t.tag + "/" + b.name + ": content differs");
      if (b.size > 5000) {  // a slice, as a rank loading part of another rank's shard does
        std::vector<std::byte> part(3000);
        auto n = ck.Read(*m, b.name, b.size - 2000, part);
        Check(n.status(), "ranged read");
        if (*n != 2000 || std::memcmp(part.data(), got.data() + b.size - 2000, 2000) != 0) {
          Die("ranged read differs");
        }
      }
    }
    latest = t.tag;
    if (first == "none") first = t.tag;
  }
  auto l = ck.Latest();
  if (tags->empty() ? l.status().code() != Code::kNotFound : (!l.ok() || *l != latest)) {
    Die("Latest() is not the newest listed tag");
  }
  // The next Begin collects what uncommitted saves left: only committed tags keep data.
  {
    auto save = ck.Begin("verify-probe");
    Check(save.status(), "begin probe");
    ListOptions lo;
    auto dirs = e.List("ck/data", lo);
    if (dirs.ok()) {
      for (const DirEntry& d : dirs->entries) {
        bool committed = false;
        for (const TagInfo& t : *tags) committed = committed || t.tag == d.name;
        if (!committed) Die("data of uncommitted tag " + d.name + " left after Begin");
      }
    } else if (dirs.status().code() != Code::kNotFound) {
      Check(dirs.status(), "list data");
    }
  }  // abandoned: nothing of the probe stays
  Check(e.Barrier(), "barrier");
  std::printf("tags %zu latest %s first %s worlds", tags->size(), latest.c_str(), first.c_str());
  for (uint32_t w : worlds) std::printf(" %u", w);
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) Die("usage: ckpt_member save|verify|repair STORE SYNC REPLICAS [STEPS ASYNC KEEP DIE]");
  const std::string scenario = argv[1], sync = argv[3];
  Options o;
  o.store_dir = argv[2];
  o.chunk_size = 256 << 10;
  o.replicas = static_cast<uint32_t>(std::atoi(argv[4]));
  o.join_timeout_ms = 60000;
  auto opened = Engine::Open(o);
  Check(opened.status(), "open");
  Engine& e = **opened;

  CheckpointOptions co;
  co.root = "ck";
  co.async = argc > 6 && std::atoi(argv[6]) != 0;
  co.staging_bytes = 2 << 20;  // smaller than one rank's state: Save waits for the writer
  co.keep_last = argc > 7 ? static_cast<uint32_t>(std::atoi(argv[7])) : 0;
  auto ck = Checkpointer::Open(e, co);
  Check(ck.status(), "checkpointer");

  if (scenario == "save") {
    const int steps = argc > 5 ? std::atoi(argv[5]) : 0;
    if (argc > 8) ArmDeath(e, **ck, argv[8]);
    auto latest = (*ck)->Latest();
    int step = latest.ok() ? StepOf(*latest) + 1 : 1;
    for (int k = 0; steps == 0 || k < steps; ++k, ++step) {
      std::string tag = fmt::format("step-{}", step);
      auto save = (*ck)->Begin(tag);
      Check(save.status(), "begin " + tag);
      for (const char* kind : {"model", "optim", "meta"}) {
        std::string name = fmt::format("r{}/{}", e.rank(), kind);
        Check((*save)->Save(name, Content(tag, name)), "save " + name);
      }
      SaveHandle h = (*save)->Commit(fmt::format("{{\"step\": {}}}", step));
      Status s = h.Wait();
      const char* how = s.ok() ? "ok" : s.code() == Code::kTimeout ? "unknown" : "failed";
      Touch(fmt::format("{}/{}-{}-r{}", sync, how, step, e.rank()));
      Check(s, "commit " + tag);
      if (e.rank() == 0) Touch(fmt::format("{}/committed-{}", sync, step));
    }
    Check(e.Barrier(), "barrier");
  } else if (scenario == "verify") {
    Verify(e, **ck);
  } else if (scenario == "repair") {
    // The Open that declared a member lost started a background repair on every rank; an
    // explicit Repair after it finds the replicas whole.
    auto bg = e.WaitForRepair(120000);
    Check(bg.status(), "background repair");
    const uint64_t mine = bg->chunks_copied;
    auto all = e.AllGather({reinterpret_cast<const std::byte*>(&mine), sizeof(mine)});
    Check(all.status(), "all-gather");
    if (e.rank() == 0) {
      uint64_t copied = 0;
      for (const auto& b : *all) {
        uint64_t v = 0;
        std::memcpy(&v, b.data(), std::min(b.size(), sizeof(v)));
        copied += v;
      }
      auto report = (*ck)->Repair();
      Check(report.status(), "repair");
      std::printf("repair: %llu chunks copied in the background; then Repair: %llu objects, %llu "
                  "chunks copied, %zu lost\n",
                  (unsigned long long)copied, (unsigned long long)report->objects,
                  (unsigned long long)report->chunks_copied, report->lost.size());
      if (copied == 0 || report->chunks_copied != 0 || !report->lost.empty() || !bg->lost.empty()) {
        Die("the background repair copied nothing, left work for Repair, or lost objects");
      }
    }
    Check(e.Barrier(), "barrier");
    Verify(e, **ck);
  } else {
    Die("unknown scenario " + scenario);
  }
  return 0;
}
