// Options by name (include/shoal/options.h: OptionFields, SetOption, GetOption): one table of
// every settable field, read by the Python module, the CLI and the bench.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <charconv>
#include <variant>

#include "shoal/options.h"

namespace shoal {
namespace {

using Field = std::variant<bool Options::*, uint32_t Options::*, uint64_t Options::*,
                           std::string Options::*, std::vector<std::string> Options::*,
                           IoBackend Options::*>;

struct Entry {
  const char* name;
  Field field;
};

// Every field of Options but `allgather`, in the header's order.
const Entry kEntries[] = {
    {"store_dir", &Options::store_dir},
    {"serve_node_stores", &Options::serve_node_stores},
    {"create_if_missing", &Options::create_if_missing},
    {"chunk_size", &Options::chunk_size},
    {"io_backend", &Options::io_backend},
    {"queue_depth", &Options::queue_depth},
    {"direct_io", &Options::direct_io},
    {"inline_threshold", &Options::inline_threshold},
    {"segment_size", &Options::segment_size},
    {"metadata_map_size", &Options::metadata_map_size},
    {"rank", &Options::rank},
    {"world_size", &Options::world_size},
    {"node", &Options::node},
    {"rendezvous", &Options::rendezvous},
    {"token", &Options::token},
    {"replicas", &Options::replicas},
    {"window", &Options::window},
    {"join_timeout_ms", &Options::join_timeout_ms},
    {"request_timeout_ms", &Options::request_timeout_ms},
    {"repair_rate_mib_s", &Options::repair_rate_mib_s},
    {"repair_parallelism", &Options::repair_parallelism},
    {"stat_lease_ms", &Options::stat_lease_ms},
    {"stat_cache_entries", &Options::stat_cache_entries},
    {"scrub_rate_mib_s", &Options::scrub_rate_mib_s},
    {"lost_members", &Options::lost_members},
    {"metrics_listen", &Options::metrics_listen},
};

const Entry* Find(std::string_view name) {
  for (const Entry& e : kEntries) {
    if (name == e.name) return &e;
  }
  return nullptr;
}

Status Unknown(std::string_view name) {
  std::vector<std::string_view> known;
  for (const Entry& e : kEntries) known.push_back(e.name);
  return Status::InvalidArgument(
      fmt::format("no option \"{}\" (known: {})", name, fmt::join(known, ", ")));
}

// Sets *out only when all of `text` is a number of T's range.
template <typename T>
bool ParseUint(std::string_view text, T* out) {
  T v{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return false;
  *out = v;
  return true;
}

constexpr const char* kBackends[] = {"auto", "io_uring", "posix"};

}  // namespace

std::vector<OptionField> OptionFields() {
  std::vector<OptionField> out;
  for (const Entry& e : kEntries) {
    out.push_back({e.name, static_cast<OptionKind>(e.field.index())});
  }
  return out;
}

Status SetOption(Options* o, std::string_view name, std::string_view value) {
  const Entry* e = Find(name);
  if (e == nullptr) return Unknown(name);
  auto bad = [&](std::string_view want) {
    return Status::InvalidArgument(fmt::format("option {}=\"{}\": {}", name, value, want));
  };
  switch (e->field.index()) {
    case 0: {
      auto f = std::get<0>(e->field);
      if (value == "true" || value == "1") {
        o->*f = true;
      } else if (value == "false" || value == "0") {
        o->*f = false;
      } else {
        return bad("expected true or false");
      }
      return Status::OK();
    }
    case 1:
      if (!ParseUint(value, &(o->*std::get<1>(e->field)))) {
        return bad("expected an integer in 0..4294967295");
      }
      return Status::OK();
    case 2:
      if (!ParseUint(value, &(o->*std::get<2>(e->field)))) {
        return bad("expected a non-negative integer");
      }
      return Status::OK();
    case 3:
      o->*std::get<3>(e->field) = std::string(value);
      return Status::OK();
    case 4: {
      auto& list = o->*std::get<4>(e->field);
      list.clear();
      while (!value.empty()) {
        size_t comma = value.find(',');
        std::string_view item = value.substr(0, comma);
        if (!item.empty()) list.emplace_back(item);
        value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
      }
      return Status::OK();
    }
    default:
      for (size_t i = 0; i < std::size(kBackends); ++i) {
        if (value == kBackends[i]) {
          o->*std::get<5>(e->field) = static_cast<IoBackend>(i);
          return Status::OK();
        }
      }
      return bad("expected auto, io_uring or posix");
  }
}

Result<std::string> GetOption(const Options& o, std::string_view name) {
  const Entry* e = Find(name);
  if (e == nullptr) return Unknown(name);
  switch (e->field.index()) {
    case 0:
      return std::string(o.*std::get<0>(e->field) ? "true" : "false");
    case 1:
      return std::to_string(o.*std::get<1>(e->field));
    case 2:
      return std::to_string(o.*std::get<2>(e->field));
    case 3:
      return o.*std::get<3>(e->field);
    case 4:
      return fmt::format("{}", fmt::join(o.*std::get<4>(e->field), ","));
    default:
      return std::string(kBackends[static_cast<size_t>(o.*std::get<5>(e->field)) % 3]);
  }
}

}  // namespace shoal
