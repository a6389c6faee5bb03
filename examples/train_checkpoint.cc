// A toy training loop that checkpoints with shoal every K steps, and resumes from `latest`.
//
//   shoal run -n 3 --store /tmp/train -- shoal-example-train --dir /tmp/train --steps 300
//
// runs 3 ranks on this machine (`shoal run` gives each its store, node name and the job's
// token; under torchrun / mpirun the same binary is one rank, its store under --dir). Each rank owns a shard of a
// toy model (--params floats, 4 M by default: 16 MiB of parameters plus 16 MiB of momentum per
// rank) and updates it with deterministic pseudo-gradients, so the final parameters depend only
// on the number of steps. Every --every steps it saves its shard and momentum with an async
// checkpoint (the step in the manifest's metadata), keeping the last 2. At start it loads the
// latest committed checkpoint, if any, and continues from the step after it.
//
// --crash-at S: rank 1 SIGKILLs itself in the middle of the save of step S (after its first
// blob, before Commit); the launcher then stops the other ranks, as torchrun does. Run again
// without it to resume. At the end every rank prints "final rank R step N digest H" of its state.
// scripts/example-train-resume.sh checks that a crashed-and-resumed run ends bit-identical to
// an uninterrupted one.
#include <fcntl.h>
#include <shoal/checkpoint.h>
#include <shoal/engine.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Args {
  std::string dir;
  int steps = 300;
  int every = 20;
  int crash_at = -1;
  size_t params = 4u << 20;
};

[[noreturn]] void Fail(const std::string& what, const shoal::Status& s) {
  std::fprintf(stderr, "train: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(1);
}

// FNV-1a over the bytes: enough to compare two runs.
uint64_t Digest(const std::vector<float>& a, const std::vector<float>& b) {
  uint64_t h = 1469598103934665603ull;
  for (const auto* v : {&a, &b}) {
    const auto* p = reinterpret_cast<const unsigned char*>(v->data());
    for (size_t i = 0; i < v->size() * sizeof(float); ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  return h;
}

// One SGD-with-momentum step on pseudo-gradients that depend on (step, rank, index) only.
void Step(int step, uint32_t rank, std::vector<float>& w, std::vector<float>& m) {
  uint32_t x = 2654435761u * static_cast<uint32_t>(step + 1) ^ (rank + 1) * 40503u;
  for (size_t i = 0; i < w.size(); ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    float g = (static_cast<float>(x & 0xffff) / 65536.0f - 0.5f) + 0.01f * w[i];
    m[i] = 0.9f * m[i] + g;
    w[i] -= 0.001f * m[i];
  }
}

std::span<const std::byte> Bytes(const std::vector<float>& v) {
  return std::as_bytes(std::span<const float>(v));
}

int RunRank(const Args& a) {
  shoal::Options o;
  // The launcher's store (shoal run --store), else one under --dir per rank.
  const char* store = std::getenv("SHOAL_STORE");
  const char* r = std::getenv("SHOAL_RANK") ? std::getenv("SHOAL_RANK") : std::getenv("RANK");
  o.store_dir = store != nullptr ? store : a.dir + "/rank-" + std::string(r ? r : "0");
  auto opened = shoal::Engine::Open(o);
  if (!opened.ok()) Fail("open", opened.status());
  shoal::Engine& e = **opened;
  const uint32_t rank = e.rank();

  shoal::CheckpointOptions co;
  co.root = "train";
  co.async = true;
  co.staging_bytes = 2 * a.params * sizeof(float) + (1u << 20);
  co.keep_last = 2;
  auto ck = shoal::Checkpointer::Open(e, co);
  if (!ck.ok()) Fail("checkpointer", ck.status());

  std::vector<float> w(a.params), m(a.params, 0.0f);
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(static_cast<float>(i + rank * 7));
  int start = 1;
  if (auto latest = (*ck)->Latest(); latest.ok()) {
    auto manifest = (*ck)->GetManifest(*latest);
    if (!manifest.ok()) Fail("manifest", manifest.status());
    start = std::atoi(manifest->metadata.c_str() + std::strlen("{\"step\": ")) + 1;
    const std::string me = "rank-" + std::to_string(rank);
    for (auto [name, v] : {std::pair{me + "/params", &w}, std::pair{me + "/momentum", &m}}) {
      auto st = (*ck)->Load(*manifest, name, std::as_writable_bytes(std::span<float>(*v)));
      if (!st.ok()) Fail("load " + name, st);
    }
    if (rank == 0) std::printf("resumed from %s (step %d)\n", latest->c_str(), start - 1);
  } else if (latest.status().code() != shoal::Code::kNotFound) {
    Fail("latest", latest.status());
  }

  shoal::SaveHandle pending;
  bool saving = false;
  for (int step = start; step <= a.steps; ++step) {
    Step(step, rank, w, m);
    if (step % a.every != 0) continue;
    // Begin waits for the previous async save; its outcome is checked here.
    if (saving && !pending.Wait().ok()) Fail("checkpoint", pending.Wait());
    auto save = (*ck)->Begin("step-" + std::to_string(step));
    if (!save.ok()) Fail("begin", save.status());
    const std::string me = "rank-" + std::to_string(rank);
    if (auto s = (*save)->Save(me + "/params", Bytes(w)); !s.ok()) Fail("save", s);
    if (step == a.crash_at && rank == 1) {
      std::printf("rank 1: SIGKILL in the middle of the save of step %d\n", step);
      std::fflush(stdout);
      ::kill(::getpid(), SIGKILL);
    }
    if (auto s = (*save)->Save(me + "/momentum", Bytes(m)); !s.ok()) Fail("save", s);
    pending = (*save)->Commit("{\"step\": " + std::to_string(step) + "}");
    saving = true;
  }
  if (saving && !pending.Wait().ok()) Fail("checkpoint", pending.Wait());
  if (auto s = e.Barrier(); !s.ok()) Fail("barrier", s);
  std::printf("final rank %u step %d digest %016llx\n", rank, a.steps,
              static_cast<unsigned long long>(Digest(w, m)));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--dir") a.dir = v;
    else if (k == "--steps") a.steps = std::atoi(v.c_str());
    else if (k == "--every") a.every = std::atoi(v.c_str());
    else if (k == "--crash-at") a.crash_at = std::atoi(v.c_str());
    else if (k == "--params") a.params = std::strtoull(v.c_str(), nullptr, 10);
    else {
      std::fprintf(stderr, "train: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (a.dir.empty() || a.steps < 1 || a.every < 1 || a.params < 1) {
    std::fprintf(stderr, "usage: shoal run -n RANKS [--store ROOT] -- %s --dir DIR [--steps N] "
                         "[--every K] [--crash-at STEP] [--params FLOATS]\n", argv[0]);
    return 2;
  }
  return RunRank(a);
}
