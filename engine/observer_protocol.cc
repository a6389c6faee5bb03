// The observer protocol's encodings (engine/observer_protocol.h): JSON documents, read with
// checked accessors so that a missing field, a wrong type or an out-of-range number is an
// InvalidArgument naming it, never an exception or a crash.
#include "engine/observer_protocol.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "engine/path.h"

namespace shoal::engine::observer {
namespace {

using json = nlohmann::json;

Bytes Dump(const json& j) {
  const std::string s = j.dump();
  auto* p = reinterpret_cast<const std::byte*>(s.data());
  return Bytes(p, p + s.size());
}

Result<json> Parse(std::span<const std::byte> b, std::string_view what) {
  if (b.size() > kMaxGuestDocument) {
    return Status::InvalidArgument(fmt::format("{}: a document of {} bytes", what, b.size()));
  }
  json j = json::parse(reinterpret_cast<const char*>(b.data()),
                       reinterpret_cast<const char*>(b.data()) + b.size(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::InvalidArgument(fmt::format("{}: not a JSON object", what));
  }
  return j;
}

// Checked field access: a missing field or one of another type is InvalidArgument.
struct Fields {
  const json& j;
  std::string_view what;
  Status status = Status::OK();

  const json* Find(const char* key, json::value_t type) {
    auto it = j.find(key);
    if (it == j.end()) {
      Fail(fmt::format("no field \"{}\"", key));
      return nullptr;
    }
    const bool number = type == json::value_t::number_unsigned;
    if (number ? !it->is_number_unsigned() : it->type() != type) {
      Fail(fmt::format("field \"{}\" has the wrong type", key));
      return nullptr;
    }
    return &*it;
  }
  void Fail(std::string why) {
    if (status.ok()) status = Status::InvalidArgument(fmt::format("{}: {}", what, why));
  }
  template <typename T>
  void Number(const char* key, T* out) {
    const json* v = Find(key, json::value_t::number_unsigned);
    if (v == nullptr) return;
    const uint64_t n = v->get<uint64_t>();
    if (n > std::numeric_limits<T>::max()) return Fail(fmt::format("field \"{}\" too large", key));
    *out = static_cast<T>(n);
  }
  void Signed(const char* key, int64_t* out) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) return Fail(fmt::format("field \"{}\"", key));
    *out = it->get<int64_t>();
  }
  void Real(const char* key, double* out) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number()) return Fail(fmt::format("field \"{}\"", key));
    *out = it->get<double>();
  }
  void Text(const char* key, std::string* out) {
    const json* v = Find(key, json::value_t::string);
    if (v != nullptr) *out = v->get<std::string>();
  }
  void Flag(const char* key, bool* out) {
    const json* v = Find(key, json::value_t::boolean);
    if (v != nullptr) *out = v->get<bool>();
  }
  const json* Array(const char* key) { return Find(key, json::value_t::array); }
  const json* Object(const char* key) { return Find(key, json::value_t::object); }
};

Status CheckPath(const std::string& path, std::string_view what, bool dir) {
  Status s = dir ? ValidateDirPath(path) : ValidateObjectPath(path);
  return s.ok() ? s : s.WithContext(std::string(what));
}

json StatsJson(const Stats& s) {
  json counters = json::object();
  for (const auto& [name, v] : s.counters) counters[name] = v;
  json histograms = json::object();
  for (const auto& [name, h] : s.histograms) {
    histograms[name] = {{"count", h.count}, {"sum", h.sum}, {"p50", h.p50}, {"p90", h.p90},
                        {"p99", h.p99}, {"max_bucket", h.max_bucket}};
  }
  return {{"counters", counters}, {"histograms", histograms}};
}

Status StatsFrom(const json& j, Stats* out, std::string_view what) {
  Fields f{j, what};
  const json* counters = f.Object("counters");
  const json* histograms = f.Object("histograms");
  if (!f.status.ok()) return f.status;
  for (const auto& [name, v] : counters->items()) {
    if (!v.is_number_unsigned()) return Status::InvalidArgument(fmt::format("{}: counter {}", what, name));
    out->counters[name] = v.get<uint64_t>();
  }
  for (const auto& [name, v] : histograms->items()) {
    if (!v.is_object()) return Status::InvalidArgument(fmt::format("{}: histogram {}", what, name));
    Fields h{v, what};
    HistogramStats hs;
    h.Number("count", &hs.count);
    h.Number("sum", &hs.sum);
    h.Number("p50", &hs.p50);
    h.Number("p90", &hs.p90);
    h.Number("p99", &hs.p99);
    h.Number("max_bucket", &hs.max_bucket);
    if (!h.status.ok()) return h.status;
    out->histograms[name] = hs;
  }
  return Status::OK();
}

}  // namespace

Bytes Encode(const PathRequest& m) { return Dump({{"path", m.path}}); }
Bytes Encode(const ListRequest& m) {
  return Dump({{"dir", m.dir}, {"start_after", m.options.start_after}, {"limit", m.options.limit}});
}
Bytes Encode(const ReadRequestMsg& m) {
  return Dump({{"path", m.path}, {"offset", m.offset}, {"length", m.length}});
}
Bytes Encode(const ObjectInfo& m) {
  return Dump({{"path", m.path}, {"size", m.size}, {"chunk_size", m.chunk_size},
               {"num_chunks", m.num_chunks}, {"is_inline", m.is_inline},
               {"seal_time_ns", m.seal_time_ns}, {"replicas", m.replicas}});
}
Bytes Encode(const ListPage& m) {
  json entries = json::array();
  for (const DirEntry& e : m.entries) {
    entries.push_back({{"name", e.name}, {"is_dir", e.is_dir}, {"size", e.size}});
  }
  return Dump({{"entries", entries}, {"truncated", m.truncated},
               {"next_start_after", m.next_start_after}});
}
Bytes Encode(const std::vector<std::vector<uint32_t>>& holders) {
  return Dump({{"chunks", holders}});
}
Bytes Encode(const MemberReport& m) {
  json lost = m.background.lost;
  return Dump({{"member", m.member}, {"members", m.members}, {"rank", m.rank},
               {"ranks", m.ranks}, {"node", m.node}, {"member_id", m.member_id},
               {"epoch", m.epoch}, {"lost", m.lost}, {"replicas", m.replicas},
               {"objects", m.objects}, {"bytes", m.bytes},
               {"total_bytes", m.space.total_bytes}, {"free_bytes", m.space.free_bytes},
               {"io_backend", m.io_backend}, {"background_running", m.background_running},
               {"background",
                {{"objects", m.background.objects},
                 {"chunks_copied", m.background.chunks_copied},
                 {"bytes_copied", m.background.bytes_copied},
                 {"metadata_copied", m.background.metadata_copied},
                 {"lost", lost}}},
               {"scrubbed_bytes", m.scrubbed_bytes}, {"scrub_damaged", m.scrub_damaged},
               {"stats", StatsJson(m.stats)}});
}
Bytes Encode(const ScrubReport& m) {
  return Dump({{"chunk_objects", m.chunk_objects}, {"bytes", m.bytes}, {"damaged", m.damaged},
               {"repaired", m.repaired}, {"unrepaired", m.unrepaired}, {"ms", m.ms}});
}
Bytes EncodeEmpty() { return Dump(json::object()); }

Status Decode(std::span<const std::byte> b, PathRequest* out) {
  SHOAL_ASSIGN_OR_RETURN(json j, Parse(b, "observer path request"));
  Fields f{j, "observer path request"};
  f.Text("path", &out->path);
  SHOAL_RETURN_IF_ERROR(f.status);
  return CheckPath(out->path, "observer path request", false);
}
Status Decode(std::span<const std::byte> b, ListRequest* out) {
  SHOAL_ASSIGN_OR_RETURN(json j, Parse(b, "observer list request"));
  Fields f{j, "observer list request"};
  f.Text("dir", &out->dir);
  f.Text("start_after", &out->options.start_after);
  f.Number("limit", &out->options.limit);
  SHOAL_RETURN_IF_ERROR(f.status);
  if (out->options.limit == 0 || out->options.limit > 1000000) {
    return Status::InvalidArgument(
        fmt::format("observer list request: limit {}", out->options.limit));
  }
  return CheckPath(out->dir, "observer list request", true);
}
Status Decode(std::span<const std::byte> b, ReadRequestMsg* out) {
  SHOAL_ASSIGN_OR_RETURN(json j, Parse(b, "observer read request"));
  Fields f{j, "observer read request"};
  f.Text("path", &out->path);
  f.Number("offset", &out->offset);
  f.Number("length", &out->length);
  SHOAL_RETURN_IF_ERROR(f.status);
  if (out->length > kMaxGuestRead) {
    return Status::InvalidArgument(fmt::format(
        "observer read request: {} bytes, at most {} per call", out->length, kMaxGuestRead));
  }
  return CheckPath(out->path, "observer read request", false);
}
Status Decode(std::span<const std::byte> b, ObjectInfo* out) {
  SHOAL_ASSIGN_OR_RETURN(json j, Parse(b, "observer stat reply"));
  Fields f{j, "observer stat reply"};
  f.Text("path", &out->path);
  f.Number("size", &out->size);
  f.Number("chunk_size", &out->chunk_size);
  f.Number("num_chunks", &out->num_chunks);
  f.Flag("is_inline", &out->is_inline);
  f.Signed("seal_time_ns", &out->seal_time_ns);
  if (j.contains("replicas")) f.Number("replicas", &out->replicas);  // newer members send it
  return f.status;
}
Status Decode(std::span<const std::byte> b, ListPage* out) {
  SHOAL_ASSIGN_OR_RETURN(json j, Parse(b, "observer list reply"));
  Fields f{j, "observer list reply"};
  const json* entries = f.Array("entries");
  f.Flag("truncated", &out->truncated);
  f.Text("next_start_after", &out->next_start_after);
  SHOAL_RETURN_IF_ERROR(f.status);
  for (const json& e : *entries) {
    if (!e.is_object()) return Status::InvalidArgument("observer list reply: an entry");
    Fields g{e, "observer list reply entry"};
    DirEntry d;
    g.Text("name", &d.name);
    g.Flag("is_dir", &d.is_dir);
    g.Number("size", &d.size);
    SHOAL_RETURN_IF_ERROR(g.status);
    out->entries.push_back(std::move(d));
  }
  return Status::OK();
}
Status Decode(std::span<const std::byte> b, std::vector<std::vector<uint32_t>>* holders) {
  SHOAL_ASSIGN_OR_RETURN(json j, Parse(b, "observer locate reply"));
  Fields f{j, "observer locate reply"};
  const json* chunks = f.Array("chunks");
  SHOAL_RETURN_IF_ERROR(f.status);
  for (const json& c : *chunks) {
    if (!c.is_array()) return Status::InvalidArgument("observer locate reply: a chunk");
    std::vector<uint32_t> ranks;
    for (const json& r : c) {
      if (!r.is_number_unsigned() || r.get<uint64_t>() > UINT32_MAX) {
        return Status::InvalidArgument("observer locate reply: a holder");
      }
      ranks.push_back(r.get<uint32_t>());
    }
    holders->push_back(std::move(ranks));
  }
  return Status::OK();
}
Status Decode(std::span<const std::byte> b, MemberReport* out) {
  constexpr std::string_view kWhat = "observer member report";
  SHOAL_ASSIGN_OR_RETURN(json j, Parse(b, kWhat));
  Fields f{j, kWhat};
  f.Number("member", &out->member);
  f.Number("members", &out->members);
  f.Number("rank", &out->rank);
  f.Number("ranks", &out->ranks);
  f.Text("node", &out->node);
  f.Text("member_id", &out->member_id);
  f.Number("epoch", &out->epoch);
  f.Number("lost", &out->lost);
  f.Number("replicas", &out->replicas);
  f.Number("objects", &out->objects);
  f.Number("bytes", &out->bytes);
  f.Number("total_bytes", &out->space.total_bytes);
  f.Number("free_bytes", &out->space.free_bytes);
  f.Text("io_backend", &out->io_backend);
  f.Flag("background_running", &out->background_running);
  f.Number("scrubbed_bytes", &out->scrubbed_bytes);
  f.Number("scrub_damaged", &out->scrub_damaged);
  const json* bg = f.Object("background");
  const json* stats = f.Object("stats");
  SHOAL_RETURN_IF_ERROR(f.status);
  Fields g{*bg, kWhat};
  g.Number("objects", &out->background.objects);
  g.Number("chunks_copied", &out->background.chunks_copied);
  g.Number("bytes_copied", &out->background.bytes_copied);
  g.Number("metadata_copied", &out->background.metadata_copied);
  const json* lost = g.Array("lost");
  SHOAL_RETURN_IF_ERROR(g.status);
  for (const json& l : *lost) {
    if (!l.is_string()) return Status::InvalidArgument("observer member report: lost");
    out->background.lost.push_back(l.get<std::string>());
  }
  return StatsFrom(*stats, &out->stats, kWhat);
}
Status Decode(std::span<const std::byte> b, ScrubReport* out) {
  SHOAL_ASSIGN_OR_RETURN(json j, Parse(b, "observer scrub report"));
  Fields f{j, "observer scrub report"};
  f.Number("chunk_objects", &out->chunk_objects);
  f.Number("bytes", &out->bytes);
  f.Number("damaged", &out->damaged);
  f.Number("repaired", &out->repaired);
  f.Real("ms", &out->ms);
  const json* un = f.Array("unrepaired");
  SHOAL_RETURN_IF_ERROR(f.status);
  for (const json& p : *un) {
    if (!p.is_string()) return Status::InvalidArgument("observer scrub report: unrepaired");
    out->unrepaired.push_back(p.get<std::string>());
  }
  return Status::OK();
}

}  // namespace shoal::engine::observer
