#include "lib/manifest.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

namespace shoal {
namespace {

constexpr std::string_view kFormat = "shoal-checkpoint/1";
constexpr size_t kMaxTag = 200;

}  // namespace

Status ValidateTag(std::string_view tag) {
  if (tag.empty() || tag.size() > kMaxTag) {
    return Status::InvalidArgument(fmt::format("checkpoint tag of {} bytes (1..{})", tag.size(), kMaxTag));
  }
  if (tag[0] == '.') return Status::InvalidArgument(fmt::format("checkpoint tag \"{}\" starts with '.'", tag));
  for (char c : tag) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) {
      return Status::InvalidArgument(
          fmt::format("checkpoint tag \"{}\": only letters, digits, '.', '_' and '-'", tag));
    }
  }
  return Status::OK();
}

bool IsUtf8(std::string_view s) {
  // The well-formed byte sequences of Unicode's Table 3-7 (no overlong forms, no surrogates,
  // nothing above U+10FFFF): what nlohmann-json's encoder, which writes the manifest, accepts.
  // The fuzz target manifest_encode checks the two agree. No exceptions: a fuzzer or a caller
  // with many bad names does not pay for unwinding.
  auto in = [](unsigned char c, unsigned lo, unsigned hi) { return c >= lo && c <= hi; };
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    unsigned char c = *p;
    size_t left = static_cast<size_t>(end - p);
    if (c < 0x80) {
      p += 1;
    } else if (in(c, 0xC2, 0xDF)) {
      if (left < 2 || !in(p[1], 0x80, 0xBF)) return false;
      p += 2;
    } else if (in(c, 0xE0, 0xEF)) {
      unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
      if (left < 3 || !in(p[1], lo, hi) || !in(p[2], 0x80, 0xBF)) return false;
      p += 3;
    } else if (in(c, 0xF0, 0xF4)) {
      unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
      if (left < 4 || !in(p[1], lo, hi) || !in(p[2], 0x80, 0xBF) || !in(p[3], 0x80, 0xBF)) {
        return false;
      }
      p += 4;
    } else {
      return false;
    }
  }
  return true;
}

std::string DataDir(std::string_view root) { return fmt::format("{}/data", root); }
std::string CommitsDir(std::string_view root) { return fmt::format("{}/commits", root); }

std::string BlobPath(std::string_view root, std::string_view tag, std::string_view name) {
  return fmt::format("{}/data/{}/{}", root, tag, name);
}

std::string ManifestPath(std::string_view root, uint64_t sequence, std::string_view tag) {
  return fmt::format("{}/commits/{}", root, ManifestName(sequence, tag));
}

std::string ManifestName(uint64_t sequence, std::string_view tag) {
  return fmt::format("{:016}.{}", sequence, tag);
}

std::optional<TagInfo> ParseManifestName(std::string_view name) {
  if (name.size() < 18 || name[16] != '.') return std::nullopt;
  TagInfo t;
  auto [p, ec] = std::from_chars(name.data(), name.data() + 16, t.sequence);
  if (ec != std::errc() || p != name.data() + 16) return std::nullopt;
  t.tag = std::string(name.substr(17));
  if (!ValidateTag(t.tag).ok()) return std::nullopt;
  return t;
}

Result<std::string> EncodeManifest(const CheckpointManifest& m) {
  if (!IsUtf8(m.metadata)) return Status::InvalidArgument("checkpoint metadata is not UTF-8 text");
  nlohmann::json j;
  j["format"] = kFormat;
  j["tag"] = m.tag;
  j["sequence"] = m.sequence;
  j["commit_time_ns"] = m.commit_time_ns;
  j["world_size"] = m.world_size;
  j["metadata"] = m.metadata;
  auto& blobs = j["blobs"] = nlohmann::json::array();
  for (const BlobInfo& b : m.blobs) {
    if (!IsUtf8(b.name)) return Status::InvalidArgument(fmt::format("blob name \"{}\" is not UTF-8", b.name));
    blobs.push_back({{"name", b.name}, {"size", b.size}, {"crc32c", b.crc32c}, {"rank", b.rank}});
  }
  try {
    return j.dump(1);
  } catch (const nlohmann::json::exception& e) {  // not reached: every string was checked above
    return Status::InvalidArgument(fmt::format("checkpoint manifest: {}", e.what()));
  }
}

Result<CheckpointManifest> DecodeManifest(std::string_view json, std::string_view what) {
  auto bad = [&](std::string_view why) {
    return Status::Corruption(fmt::format("manifest {}: {}", what, why));
  };
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  auto str = [&](const nlohmann::json& o, const char* k, std::string* out) {
    auto it = o.find(k);
    if (it == o.end() || !it->is_string()) return false;
    *out = it->get<std::string>();
    return true;
  };
  auto num = [&](const nlohmann::json& o, const char* k, auto* out) {
    auto it = o.find(k);
    using T = std::remove_pointer_t<decltype(out)>;
    if (it == o.end() || !it->is_number_integer()) return false;
    if (std::is_unsigned_v<T> && !it->is_number_unsigned()) return false;
    auto v = it->get<T>();
    if (nlohmann::json(v) != *it) return false;  // out of the field's range
    *out = v;
    return true;
  };
  std::string format;
  CheckpointManifest m;
  if (!str(j, "format", &format) || format != kFormat) return bad("unknown format");
  if (!str(j, "tag", &m.tag) || !num(j, "sequence", &m.sequence) ||
      !num(j, "commit_time_ns", &m.commit_time_ns) || !num(j, "world_size", &m.world_size) ||
      !str(j, "metadata", &m.metadata)) {
    return bad("missing or mistyped field");
  }
  auto blobs = j.find("blobs");
  if (blobs == j.end() || !blobs->is_array()) return bad("no blob list");
  for (const auto& b : *blobs) {
    BlobInfo info;
    if (!b.is_object() || !str(b, "name", &info.name) || !num(b, "size", &info.size) ||
        !num(b, "crc32c", &info.crc32c) || !num(b, "rank", &info.rank)) {
      return bad("malformed blob entry");
    }
    m.blobs.push_back(std::move(info));
  }
  if (!std::is_sorted(m.blobs.begin(), m.blobs.end(),
                      [](const BlobInfo& a, const BlobInfo& b) { return a.name < b.name; })) {
    return bad("blobs not sorted by name");
  }
  return m;
}

}  // namespace shoal
