#include "lib/dataset_index.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "base/log.h"

namespace shoal::dataset {
namespace {

constexpr char kMagic[4] = {'S', 'H', 'D', 'I'};
constexpr uint32_t kFormat = 1;

template <typename T>
void Put(std::vector<std::byte>* out, T v) {
  const auto* p = reinterpret_cast<const std::byte*>(&v);
  out->insert(out->end(), p, p + sizeof(T));
}

void PutString(std::vector<std::byte>* out, std::string_view s) {
  Put<uint32_t>(out, static_cast<uint32_t>(s.size()));
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  out->insert(out->end(), p, p + s.size());
}

struct Reader {
  std::span<const std::byte> b;
  size_t at = 0;
  template <typename T>
  bool Get(T* v) {
    if (b.size() - at < sizeof(T)) return false;
    std::memcpy(v, b.data() + at, sizeof(T));
    at += sizeof(T);
    return true;
  }
  bool GetString(std::string* s) {
    uint32_t n = 0;
    if (!Get(&n) || b.size() - at < n) return false;
    s->assign(reinterpret_cast<const char*>(b.data() + at), n);
    at += n;
    return true;
  }
};

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
  std::vector<std::byte> out;
  const auto* m = reinterpret_cast<const std::byte*>(kMagic);
  out.insert(out.end(), m, m + 4);
  Put<uint32_t>(&out, kFormat);
  Put<uint64_t>(&out, samples.size());
  for (const SampleInfo& s : samples) {
    PutString(&out, s.name);
    Put<uint64_t>(&out, s.size);
    PutString(&out, s.version);
  }
  return out;
}

Result<std::vector<SampleInfo>> DecodePart(std::span<const std::byte> bytes) {
  auto bad = [](std::string_view why) {
    return Status::Corruption(fmt::format("dataset index part: {}", why));
  };
  if (bytes.size() < 16 || std::memcmp(bytes.data(), kMagic, 4) != 0) return bad("bad magic");
  Reader r{bytes, 4};
  uint32_t format = 0;
  uint64_t count = 0;
  r.Get(&format);
  r.Get(&count);
  if (format != kFormat) return bad(fmt::format("format {}", format));
  // Each entry takes at least 16 bytes: a count above that is a lie.
  if (count > (bytes.size() - 16) / 16) return bad(fmt::format("{} entries in {} bytes", count, bytes.size()));
  std::vector<SampleInfo> out(count);
  for (SampleInfo& s : out) {
    if (!r.GetString(&s.name) || !r.Get(&s.size) || !r.GetString(&s.version)) {
      return bad("truncated entry");
    }
  }
  if (r.at != bytes.size()) return bad("bytes after the last entry");
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
  // Every rank learns whether every part is stored before rank 0 commits.
  std::vector<std::byte> ok(1, std::byte{static_cast<unsigned char>(mine.ok() ? 1 : 0)});
  SHOAL_ASSIGN_OR_RETURN(auto all, e.AllGather(ok));
  for (uint32_t r = 0; r < all.size(); ++r) {
    if (all[r].size() != 1 || all[r][0] != std::byte{1}) {
      if (!mine.ok()) return mine;
      return Status::Unavailable(fmt::format("rank {} could not list or store its part", r));
    }
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
  std::vector<std::byte> verdict(1, std::byte{static_cast<unsigned char>(committed.ok() ? 1 : 0)});
  SHOAL_ASSIGN_OR_RETURN(auto told, e.AllGather(verdict));
  if (told[0].size() != 1 || told[0][0] != std::byte{1}) {
    return e.rank() == 0 ? committed
                         : Status::Unavailable("rank 0 could not commit the dataset index");
  }
  return Status::OK();
}

}  // namespace shoal::dataset
