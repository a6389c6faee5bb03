// shoal-fuzz: one libFuzzer binary for every decoder of bytes shoal receives from outside
// (disk records, wire headers, manifests, names). The first byte of an input selects the target
// (its index in kTargets); the rest is that target's input. See scripts/fuzz.sh.
//
//   shoal-fuzz [libFuzzer flags] CORPUS...     fuzz (all targets)
//   SHOAL_FUZZ_TARGET=inode shoal-fuzz ...     fuzz one target: the selector byte is ignored
//   shoal-fuzz --write-corpus=DIR              write the seeds as DIR/<target>/seed-<n>
//   shoal-fuzz --list                          print the targets with their selector bytes
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_target.h"

namespace shoal::fuzz {
namespace {

// Append only: a target's position is its selector byte, which the committed corpus holds.
constexpr Target kTargets[] = {
    {"header", FuzzHeader, HeaderSeeds},
    {"inode", FuzzInode, InodeSeeds},
    {"manifest", FuzzManifest, ManifestSeeds},
    {"manifest_encode", FuzzManifestEncode, ManifestEncodeSeeds},
    {"path", FuzzPath, PathSeeds},
    {"tag", FuzzTag, TagSeeds},
    {"manifest_name", FuzzManifestName, ManifestNameSeeds},
    {"member_info", FuzzMemberInfo, MemberInfoSeeds},
    {"number", FuzzNumber, NumberSeeds},
    {"protocol", FuzzProtocol, ProtocolSeeds},
    {"membership", FuzzMembership, MembershipSeeds},
    {"member_blobs", FuzzMemberBlobs, MemberBlobsSeeds},
    {"rendezvous_world", FuzzRendezvousWorld, RendezvousWorldSeeds},
    {"shared_ring", FuzzSharedRing, SharedRingSeeds},
    {"observer", FuzzObserver, ObserverSeeds},
};
constexpr size_t kNumTargets = std::size(kTargets);
static_assert(kNumTargets <= 256, "the selector is one byte");

const Target* fixed_target = nullptr;  // SHOAL_FUZZ_TARGET

const Target* FindTarget(std::string_view name) {
  for (const Target& t : kTargets) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

int WriteCorpus(const std::filesystem::path& dir) {
  for (size_t i = 0; i < kNumTargets; ++i) {
    const Target& t = kTargets[i];
    if (t.seeds == nullptr) continue;
    std::filesystem::path sub = dir / t.name;
    std::filesystem::create_directories(sub);
    int n = 0;
    for (const std::string& seed : t.seeds()) {
      std::ofstream out(sub / ("seed-" + std::to_string(n++)), std::ios::binary | std::ios::trunc);
      out.put(static_cast<char>(i));
      out.write(seed.data(), static_cast<std::streamsize>(seed.size()));
      if (!out) {
        std::fprintf(stderr, "shoal-fuzz: cannot write %s\n", sub.c_str());
        return 1;
      }
    }
    std::printf("%s: %d seeds\n", sub.c_str(), n);
  }
  return 0;
}

}  // namespace
}  // namespace shoal::fuzz

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  using namespace shoal::fuzz;
  // libFuzzer ignores "--" flags; these two end the process before it starts fuzzing.
  for (int i = 1; i < *argc; ++i) {
    std::string_view arg = (*argv)[i];
    if (arg.starts_with("--write-corpus=")) {
      std::exit(WriteCorpus(std::string(arg.substr(15))));
    }
    if (arg == "--list") {
      for (size_t t = 0; t < kNumTargets; ++t) std::printf("%zu %s\n", t, kTargets[t].name.data());
      std::exit(0);
    }
  }
  if (const char* name = std::getenv("SHOAL_FUZZ_TARGET"); name != nullptr && *name != '\0') {
    fixed_target = FindTarget(name);
    if (fixed_target == nullptr) {
      std::fprintf(stderr, "shoal-fuzz: SHOAL_FUZZ_TARGET=%s is not a target (--list)\n", name);
      std::exit(2);
    }
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shoal::fuzz;
  if (size == 0) return -1;
  const Target* t = fixed_target;
  if (t == nullptr) {
    if (data[0] >= kNumTargets) return -1;  // not a target: keep it out of the corpus
    t = &kTargets[data[0]];
  }
  t->fuzz(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  return 0;
}
