// The index of a cached dataset and where it lives in the world (docs/dataset.md).
//
// Layout under a dataset's root R:
//   R/index/<generation, 20 digits>/part-<rank, 6 digits>   one rank's listing (encoded below)
//   R/index/<generation>/complete                            "<parts>": the generation's commit
//   R/s/<XXH3-128 of the name, 32 hex>-<XXH3-64 of the version, 16 hex>   a cached sample
//   R/c/<the same>                                            a claim on loading it (transient)
// A generation is used only once its `complete` object is sealed (after every part is); the
// newest complete one is the index. A part is: "SHDI", u32 format 1, u64 count, then per sample
// u32 name bytes, name, u64 size, u32 version bytes, version (little-endian); decoding checks
// every length against what is left.
#pragma once

#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "shoal/dataset.h"
#include "shoal/engine.h"

namespace shoal::dataset {

struct Index {
  uint64_t generation = 0;
  std::vector<SampleInfo> samples;  // sorted by name
  std::unordered_map<std::string_view, uint64_t> by_name;  // views into samples[i].name
};

std::vector<std::byte> EncodePart(const std::vector<SampleInfo>& samples);
Result<std::vector<SampleInfo>> DecodePart(std::span<const std::byte> bytes);

// The cache object of a sample at a version, and the name whose lease (Engine::TryLease) a rank
// holds while it reads the sample from the source (R/c/<the same hashes>; no object).
std::string SamplePath(std::string_view root, std::string_view name, std::string_view version);
std::string ClaimPath(std::string_view root, std::string_view name, std::string_view version);
// The rank that loads a sample in Warm.
uint32_t OwnerRank(std::string_view name, uint32_t world_size);

// The newest complete generation under `root`: nullopt when there is none.
Result<std::optional<uint64_t>> LatestGeneration(Engine& e, std::string_view root);
// Loads generation `gen` (all its parts), sorted, names checked unique.
Result<Index> LoadGeneration(Engine& e, std::string_view root, uint64_t gen);
// Collective: every rank lists its part of `source` and stores it; rank 0 then commits
// generation `gen` and removes older ones (best effort).
Status BuildGeneration(Engine& e, DatasetSource& source, std::string_view root, uint64_t gen);

}  // namespace shoal::dataset
