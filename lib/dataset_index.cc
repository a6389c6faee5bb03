#include "lib/dataset_index.h"

#include <xxhash.h>

#include <algorithm>

#include <fmt/format.h>

#include "base/bytes.h"
#include "base/log.h"
#include "engine/protocol.h"
#include "lib/checkpoint_commit.h"

namespace shoal::dataset {
namespace {

constexpr char kMagic[4] = {'S', 'H', 'D', 'I'};
constexpr uint32_t kFormat = 1;

std::string GenerationDir(std::string_view root, uint64_t gen) {
  return fmt::format("{}/index/{:020}", root, gen);
}

Result<std::vector<std::byte>> ReadWhole(Engine& e, const std::string& path) {
  SHOAL_ASSIGN_OR_RETURN(ObjectInfo info, e.Stat(path));
  std::vector<std::byte> out(info.size);
  SHOAL_ASSIGN_OR_RETURN(uint64_t n, e.Read(path, 0, out));
  if (n != out.size()) {
    return Status::Corruption(fmt::format("\"{}\": read {} of {} bytes", path, n, out.size()));
  }
  return out;
}

}  // namespace

std::vector<std::byte> EncodePart(const std::vector<SampleInfo>& samples) {
  ByteWriter w;
  w.Raw(std::string_view(kMagic, 4));
  w.Put<uint32_t>(kFormat);
  w.Put<uint64_t>(samples.size());
  for (const SampleInfo& s : samples) {
    w.Prefixed(s.name);
    w.Put<uint64_t>(s.size);
    w.Prefixed(s.version);
  }
  return w.Take();
}

Result<std::vector<SampleInfo>> DecodePart(std::span<const std::byte> bytes) {
  auto bad = [](std::string_view why) {
    return Status::Corruption(fmt::format("dataset index part: {}", why));
  };
  ByteReader r(bytes);
  std::span<const std::byte> magic;
  uint32_t format = 0;
  uint64_t count = 0;
  if (!r.Raw(4, &magic) || AsChars(magic) != std::string_view(kMagic, 4)) return bad("bad magic");
  if (!r.Get(&format) || !r.Get(&count)) return bad("truncated header");
  if (format != kFormat) return bad(fmt::format("format {}", format));
  // Each entry takes at least 16 bytes: a count above that is a lie.
  if (count > r.left() / 16) return bad(fmt::format("{} entries in {} bytes", count, bytes.size()));
  std::vector<SampleInfo> out(count);
  for (SampleInfo& s : out) {
    std::span<const std::byte> name, version;
    if (!r.Prefixed(r.left(), &name) || !r.Get(&s.size) || !r.Prefixed(r.left(), &version)) {
      return bad("truncated entry");
    }
    s.name = AsChars(name);
    s.version = AsChars(version);
  }
  if (!r.done()) return bad("bytes after the last entry");
  return out;
}

std::string SamplePath(std::string_view root, std::string_view name, std::string_view version) {
  const XXH128_hash_t n = XXH3_128bits(name.data(), name.size());
  const uint64_t v = XXH3_64bits(version.data(), version.size());
  return fmt::format("{}/s/{:016x}{:016x}-{:016x}", root, n.high64, n.low64, v);
}

std::string ClaimPath(std::string_view root, std::string_view name, std::string_view version) {
  std::string p = SamplePath(root, name, version);
  p[root.size() + 1] = 'c';
  return p;
}

uint32_t OwnerRank(std::string_view name, uint32_t world_size) {
  return static_cast<uint32_t>(XXH3_64bits_withSeed(name.data(), name.size(), 1) %
                               std::max<uint32_t>(1, world_size));
}

Result<std::optional<uint64_t>> LatestGeneration(Engine& e, std::string_view root) {
  std::optional<uint64_t> latest;
  ListOptions lo;
  for (;;) {
    auto page = e.List(fmt::format("{}/index", root), lo);
    if (!page.ok() && page.status().code() == Code::kNotFound) return latest;
    if (!page.ok()) return page.status();
    for (const DirEntry& d : page->entries) {
      if (!d.is_dir || d.name.size() != 20 ||
          !std::all_of(d.name.begin(), d.name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        continue;
      }
      const uint64_t gen = std::stoull(d.name);
      if (latest && gen <= *latest) continue;
      auto done = e.Stat(GenerationDir(root, gen) + "/complete");
      if (done.ok()) latest = gen;
      else if (done.status().code() != Code::kNotFound) return done.status();
    }
    if (!page->truncated) return latest;
    lo.start_after = page->next_start_after;
  }
}

Result<Index> LoadGeneration(Engine& e, std::string_view root, uint64_t gen) {
  const std::string dir = GenerationDir(root, gen);
  SHOAL_ASSIGN_OR_RETURN(auto done, ReadWhole(e, dir + "/complete"));
  const std::string text(reinterpret_cast<const char*>(done.data()), done.size());
  uint32_t parts = 0;
  if (text.empty() || text.size() > 9 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      (parts = static_cast<uint32_t>(std::stoul(text))) == 0) {
    return Status::Corruption(fmt::format("\"{}/complete\": \"{}\" is no part count", dir, text));
  }
  Index index;
  index.generation = gen;
  for (uint32_t p = 0; p < parts; ++p) {
    const std::string path = fmt::format("{}/part-{:06}", dir, p);
    SHOAL_ASSIGN_OR_RETURN(auto bytes, ReadWhole(e, path));
    auto part = DecodePart(bytes);
    if (!part.ok()) return part.status().WithContext(path);
    for (SampleInfo& s : *part) index.samples.push_back(std::move(s));
  }
  std::sort(index.samples.begin(), index.samples.end(),
            [](const SampleInfo& a, const SampleInfo& b) { return a.name < b.name; });
  index.by_name.reserve(index.samples.size());
  for (uint64_t i = 0; i < index.samples.size(); ++i) {
    if (!index.by_name.emplace(index.samples[i].name, i).second) {
      return Status::InvalidArgument(fmt::format(
          "dataset index {}: sample \"{}\" listed twice (the source's parts overlap)", dir,
          index.samples[i].name));
    }
  }
  return index;
}

Status BuildGeneration(Engine& e, DatasetSource& source, std::string_view root, uint64_t gen) {
  const std::string dir = GenerationDir(root, gen);
  auto listed = source.List(e.rank(), e.world_size());
  Status mine = listed.ok() ? Status::OK()
                            : listed.status().WithContext(fmt::format(
                                  "listing part {} of {} of the dataset source", e.rank(),
                                  e.world_size()));
  if (mine.ok()) {
    const std::string path = fmt::format("{}/part-{:06}", dir, e.rank());
    (void)e.Remove(path);  // left by a build that died before its commit
    mine = e.Put(path, EncodePart(*listed));
  }
  // Every rank learns whether every part is stored (and any rank's error) before rank 0 commits.
  SHOAL_ASSIGN_OR_RETURN(auto all, e.AllGather(engine::protocol::Encode(engine::protocol::Verdict{mine})));
  for (uint32_t r = 0; r < all.size(); ++r) {
    engine::protocol::Verdict v;
    SHOAL_RETURN_IF_ERROR(engine::protocol::Decode(all[r], &v));
    if (!v.status.ok()) return v.status.WithContext(fmt::format("dataset index, rank {}", r));
  }
  Status committed;
  if (e.rank() == 0) {
    committed = e.Put(dir + "/complete", std::to_string(e.world_size()));
    if (committed.ok()) {  // older generations go (best effort: a reader of one re-reads)
      auto listing = e.List(fmt::format("{}/index", root));
      if (listing.ok()) {
        for (const DirEntry& d : listing->entries) {
          if (!d.is_dir || d.name >= fmt::format("{:020}", gen)) continue;
          const std::string old = fmt::format("{}/index/{}", root, d.name);
          (void)e.Remove(old + "/complete");
          auto parts = e.List(old);
          if (parts.ok()) {
            for (const DirEntry& p : parts->entries) (void)e.Remove(old + "/" + p.name);
          }
        }
      }
    }
  }
  return Rank0Verdict(e, committed).WithContext("committing the dataset index");
}

}  // namespace shoal::dataset
