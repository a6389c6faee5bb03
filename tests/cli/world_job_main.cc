// A small job for `shoal run` tests: every rank writes objects, reads every other rank's
// bit-exact after a barrier, and closes after another barrier (a clean run). Exits 0 when all
// is well, 1 with the reason on stderr otherwise. SHOAL_STORE names its store (shoal run sets
// it; under mpirun or torchrun give "/dir/{rank}"); the rank comes from the launcher's variables.
// JOB_EXIT_RANK=R JOB_EXIT_CODE=C makes rank R exit with C after writing, without closing.
// JOB_CKPT=K: the ranks also commit K checkpoints "step-1".."step-K" (root "checkpoints"), each
// with one blob per rank.
// JOB_HOLD=DIR: after its work each rank writes DIR/ready-<rank> and waits (at most 300 s) for
// DIR/release before its last barrier, so that a test can look at the live world meanwhile.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>
#include <cstdlib>
#include <string>
#include <vector>

#include "shoal/checkpoint.h"
#include "shoal/engine.h"

namespace {

int Die(const std::string& what, const shoal::Status& s) {
  std::fprintf(stderr, "world_job: %s: %s\n", what.c_str(), s.ToString().c_str());
  return 1;
}

std::string Content(uint32_t rank, int i) {
  std::string s(64 << 10, '\0');
  for (size_t k = 0; k < s.size(); ++k) s[k] = static_cast<char>((k * 31 + rank * 7 + i) & 0xff);
  return s;
}

}  // namespace

int main() {
  const char* store = std::getenv("SHOAL_STORE");
  if (store == nullptr) {
    std::fprintf(stderr, "world_job: SHOAL_STORE is not set (start it with shoal run --store)\n");
    return 1;
  }
  shoal::Options o;
  o.store_dir = store;
  auto opened = shoal::Engine::Open(o);
  if (!opened.ok()) return Die("open", opened.status());
  auto& e = **opened;
  const uint32_t rank = e.rank();
  const uint32_t size = e.world_size();
  const char* run = std::getenv("JOB_RUN");
  const std::string tag = run != nullptr ? run : "0";
  for (int i = 0; i < 8; ++i) {
    shoal::Status s = e.Put(fmt::format("job/{}/r{}/{}", tag, rank, i), Content(rank, i));
    if (!s.ok()) return Die("put", s);
  }
  if (const char* r = std::getenv("JOB_EXIT_RANK"); r != nullptr && std::stoul(r) == rank) {
    std::_Exit(std::atoi(std::getenv("JOB_EXIT_CODE")));
  }
  if (auto s = e.Barrier(); !s.ok()) return Die("barrier", s);
  std::vector<std::byte> buf(64 << 10);
  for (uint32_t r = 0; r < size; ++r) {
    for (int i = 0; i < 8; ++i) {
      auto n = e.Read(fmt::format("job/{}/r{}/{}", tag, r, i), 0, buf);
      if (!n.ok()) return Die("read", n.status());
      if (std::string(reinterpret_cast<const char*>(buf.data()), *n) != Content(r, i)) {
        return Die("read", shoal::Status::Corruption(fmt::format("rank {} object {}", r, i)));
      }
    }
  }
  if (const char* k = std::getenv("JOB_CKPT"); k != nullptr) {
    auto ck = shoal::Checkpointer::Open(e);
    if (!ck.ok()) return Die("checkpointer", ck.status());
    for (int step = 1; step <= std::atoi(k); ++step) {
      auto save = (*ck)->Begin(fmt::format("step-{}", step));
      if (!save.ok()) return Die("begin", save.status());
      if (auto s = (*save)->Save(fmt::format("rank-{}", rank), Content(rank, step)); !s.ok()) {
        return Die("save", s);
      }
      if (auto s = (*save)->Commit(fmt::format("{{\"step\": {}}}", step)).Wait(); !s.ok()) {
        return Die("commit", s);
      }
    }
  }
  if (const char* hold = std::getenv("JOB_HOLD"); hold != nullptr) {
    const std::filesystem::path dir(hold);
    std::ofstream(dir / fmt::format("ready-{}", rank)) << "ready\n";
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(300);
    while (!std::filesystem::exists(dir / "release")) {
      if (std::chrono::steady_clock::now() > until) {
        return Die("hold", shoal::Status::Timeout("no release in 300 s"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  if (auto s = e.Barrier(); !s.ok()) return Die("barrier", s);
  std::printf("rank %u of %u read %u objects\n", rank, size, size * 8);
  return 0;
}
