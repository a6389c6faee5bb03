#include "bindings/cli/commands.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "base/crc32c.h"
#include "bindings/cli/human.h"
#include "shoal/checkpoint.h"

namespace shoal::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

constexpr size_t kPiece = 4u << 20;

int Report(std::string_view cmd, std::string_view what, const Status& s) {
  std::fprintf(stderr, "shoal %.*s: %.*s: %s\n", static_cast<int>(cmd.size()), cmd.data(),
               static_cast<int>(what.size()), what.data(), s.ToString().c_str());
  return 1;
}

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

// Every entry of `dir` (all pages).
Result<std::vector<DirEntry>> ListAll(Engine& e, const std::string& dir) {
  std::vector<DirEntry> all;
  ListOptions lo;
  for (;;) {
    SHOAL_ASSIGN_OR_RETURN(ListPage page, e.List(dir, lo));
    for (DirEntry& d : page.entries) all.push_back(std::move(d));
    if (!page.truncated) return all;
    lo.start_after = page.next_start_after;
  }
}

// Calls fn(path, size) for every object at or below `path` (an object, or a directory).
Status Walk(Engine& e, const std::string& path,
            const std::function<Status(const std::string&, uint64_t)>& fn) {
  if (!path.empty()) {
    auto st = e.Stat(path);
    if (st.ok()) return fn(path, st->size);
    if (st.status().code() != Code::kNotFound) return st.status();
  }
  auto entries = ListAll(e, path);
  if (!entries.ok()) return entries.status();
  if (entries->empty() && !path.empty()) {
    return Status::NotFound(fmt::format("\"{}\": no such object or directory", path));
  }
  for (const DirEntry& d : *entries) {
    const std::string child = Join(path, d.name);
    if (d.is_dir) {
      SHOAL_RETURN_IF_ERROR(Walk(e, child, fn));
    } else {
      SHOAL_RETURN_IF_ERROR(fn(child, d.size));
    }
  }
  return Status::OK();
}

// Progress on stderr when it is a terminal (or asked), at most every 200 ms.
class Progress {
 public:
  Progress(bool on, std::string what) : on_(on && ::isatty(2)), what_(std::move(what)) {}
  void Add(uint64_t objects, uint64_t bytes) {
    objects_ += objects;
    bytes_ += bytes;
    auto now = std::chrono::steady_clock::now();
    if (!on_ || now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    const double s = std::chrono::duration<double>(now - start_).count();
    std::fprintf(stderr, "\r%s: %llu objects, %s, %.0f MiB/s   ", what_.c_str(),
                 static_cast<unsigned long long>(objects_), Human(bytes_).c_str(),
                 s > 0 ? static_cast<double>(bytes_) / s / (1 << 20) : 0.0);
  }
  ~Progress() {
    if (on_) std::fprintf(stderr, "\n");
  }

 private:
  bool on_;
  std::string what_;
  uint64_t objects_ = 0, bytes_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_{};
};

Result<uint32_t> ObjectCrc(Engine& e, const std::string& path, uint64_t size) {
  std::vector<std::byte> buf(std::min<uint64_t>(size, kPiece));
  uint32_t crc = 0;
  for (uint64_t off = 0; off < size;) {
    SHOAL_ASSIGN_OR_RETURN(uint64_t n, e.Read(path, off, std::span(buf).first(std::min<uint64_t>(buf.size(), size - off))));
    if (n == 0) return Status::Corruption(fmt::format("{} ended at {} of {}", path, off, size));
    crc = Crc32c(buf.data(), n, crc);
    off += n;
  }
  return crc;
}

Result<uint32_t> FileCrc(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::IOError(fmt::format("cannot read {}", file.string()));
  std::vector<char> buf(kPiece);
  uint32_t crc = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    crc = Crc32c(buf.data(), static_cast<size_t>(in.gcount()), crc);
  }
  return crc;
}

// Whether object `path` and `file`, both of `size` bytes, hold the same bytes (by CRC32C).
Result<bool> SameContent(Engine& e, const std::string& path, const fs::path& file,
                         uint64_t size) {
  SHOAL_ASSIGN_OR_RETURN(uint32_t a, FileCrc(file));
  SHOAL_ASSIGN_OR_RETURN(uint32_t b, ObjectCrc(e, path, size));
  return a == b;
}

}  // namespace

std::string EnginePath(std::string path) {
  while (!path.empty() && path.front() == '/') path.erase(0, 1);
  while (!path.empty() && path.back() == '/') path.pop_back();
  return path;
}

int Ls(Engine& e, const std::string& path, bool long_format, bool recursive, bool json_out) {
  json out = json::array();
  auto print = [&](const std::string& full, const std::string& shown, const DirEntry& d,
                   int64_t sealed) {
    if (json_out) {
      json j = {{"path", full}, {"type", d.is_dir ? "dir" : "object"}};
      j[d.is_dir ? "entries" : "size"] = d.size;
      if (long_format && !d.is_dir) j["sealed_ns"] = sealed;
      out.push_back(std::move(j));
    } else if (!long_format) {
      std::printf("%s%s\n", shown.c_str(), d.is_dir ? "/" : "");
    } else if (d.is_dir) {
      std::printf("%14s  %-19s  %s/\n", fmt::format("{} entries", d.size).c_str(), "",
                  shown.c_str());
    } else {
      std::printf("%14llu  %s  %s\n", static_cast<unsigned long long>(d.size),
                  Time(sealed).c_str(), shown.c_str());
    }
  };
  const std::string top = EnginePath(path);
  int rc = 0;
  if (!top.empty()) {  // an object named directly is listed alone
    auto info = e.Stat(top);
    if (info.ok()) {
      print(top, top, DirEntry{top, false, info->size}, info->seal_time_ns);
      if (json_out) std::printf("%s\n", out.dump().c_str());
      return 0;
    }
  }
  std::function<void(const std::string&)> list = [&](const std::string& dir) {
    auto entries = ListAll(e, dir);
    if (!entries.ok()) {
      rc = Report("ls", dir.empty() ? "/" : dir, entries.status());
      return;
    }
    if (entries->empty() && !dir.empty() && dir == top) {
      rc = Report("ls", dir, Status::NotFound("no such object or directory"));
      return;
    }
    // Seal times with -l: one StatBatch per directory (grouped by metadata owner), not a
    // Stat per object.
    std::vector<int64_t> sealed(entries->size(), 0);
    if (long_format) {
      std::vector<StatRequest> batch;
      std::vector<size_t> of;
      for (size_t i = 0; i < entries->size(); ++i) {
        if ((*entries)[i].is_dir) continue;
        batch.push_back(StatRequest{Join(dir, (*entries)[i].name), {}, {}});
        of.push_back(i);
      }
      constexpr size_t kPieceOfStats = 10000;
      for (size_t at = 0; at < batch.size(); at += kPieceOfStats) {
        auto part = std::span(batch).subspan(at, std::min(kPieceOfStats, batch.size() - at));
        (void)e.StatBatch(part);
      }
      for (size_t k = 0; k < batch.size(); ++k) {
        if (batch[k].status.ok()) sealed[of[k]] = batch[k].info.seal_time_ns;
      }
    }
    for (size_t i = 0; i < entries->size(); ++i) {
      const DirEntry& d = (*entries)[i];
      const std::string full = Join(dir, d.name);
      print(full, recursive ? full : d.name, d, sealed[i]);
      if (d.is_dir && recursive) list(full);
    }
  };
  list(top);
  if (json_out) std::printf("%s\n", out.dump().c_str());
  return rc;
}

namespace {

// Runs `one` for each path (in the engine's form), each adding its JSON item to `items`;
// reports a failed path and goes on; prints the items as one array with --json.
int EachPath(std::string_view cmd, const std::vector<std::string>& paths, bool json_out,
             const std::function<Status(const std::string&, json* items)>& one) {
  int rc = 0;
  json items = json::array();
  for (const std::string& raw : paths) {
    const std::string p = EnginePath(raw);
    if (Status s = one(p, &items); !s.ok()) rc = Report(cmd, p.empty() ? "/" : p, s);
  }
  if (json_out) std::printf("%s\n", items.dump().c_str());
  return rc;
}

}  // namespace

int StatCmd(Engine& e, const std::vector<std::string>& paths, bool json_out) {
  return EachPath("stat", paths, json_out, [&](const std::string& p, json* items) -> Status {
    SHOAL_ASSIGN_OR_RETURN(ObjectInfo info, e.Stat(p));
    auto where = e.Locate(p);
    if (json_out) {
      json holders = json::array();
      for (size_t c = 0; where.ok() && c < where->size(); ++c) holders.push_back((*where)[c]);
      items->push_back({{"path", p}, {"size", info.size}, {"chunk_size", info.chunk_size},
                        {"chunks", info.num_chunks}, {"inline", info.is_inline},
                        {"sealed_ns", info.seal_time_ns}, {"holders", holders}});
      return Status::OK();
    }
    std::printf("path:       %s\nsize:       %llu (%s)\nsealed:     %s\n", p.c_str(),
                static_cast<unsigned long long>(info.size), Human(info.size).c_str(),
                Time(info.seal_time_ns).c_str());
    if (info.is_inline) {
      std::printf("stored:     inline in its metadata record\n");
      return Status::OK();
    }
    std::printf("chunks:     %llu of %s\n", static_cast<unsigned long long>(info.num_chunks),
                Human(info.chunk_size).c_str());
    const size_t shown = where.ok() ? std::min<size_t>(where->size(), 8) : 0;
    for (size_t c = 0; c < shown; ++c) {
      std::printf("  chunk %zu on members %s\n", c, fmt::format("{}", fmt::join((*where)[c], ",")).c_str());
    }
    if (where.ok() && where->size() > shown) std::printf("  ...\n");
    return Status::OK();
  });
}

int Du(Engine& e, const std::vector<std::string>& paths, bool json_out) {
  return EachPath("du", paths, json_out, [&](const std::string& p, json* items) -> Status {
    uint64_t objects = 0, bytes = 0;
    SHOAL_RETURN_IF_ERROR(Walk(e, p, [&](const std::string&, uint64_t size) {
      objects++;
      bytes += size;
      return Status::OK();
    }));
    if (json_out) {
      items->push_back({{"path", p}, {"objects", objects}, {"bytes", bytes}});
    } else {
      std::printf("%12s  %10llu objects  %s\n", Human(bytes).c_str(),
                  static_cast<unsigned long long>(objects), p.empty() ? "/" : p.c_str());
    }
    return Status::OK();
  });
}

int Cat(Engine& e, const std::vector<std::string>& paths) {
  std::vector<std::byte> buf(kPiece);
  for (const std::string& raw : paths) {
    const std::string p = EnginePath(raw);
    for (uint64_t off = 0;;) {
      auto n = e.Read(p, off, buf);
      if (!n.ok()) return Report("cat", p, n.status());
      if (*n == 0) break;
      if (std::fwrite(buf.data(), 1, *n, stdout) != *n) {
        return Report("cat", p, Status::IOError("writing to stdout failed"));
      }
      off += *n;
    }
  }
  return std::fflush(stdout) == 0 ? 0 : 1;
}

int Get(Engine& e, const std::string& src_raw, const std::string& dst, bool progress) {
  const std::string src = EnginePath(src_raw);
  auto single = src.empty() ? Result<ObjectInfo>(Status::NotFound("")) : e.Stat(src);
  Progress bar(progress, "get");
  uint64_t copied = 0, skipped = 0;
  std::vector<std::byte> buf(kPiece);
  auto fetch = [&](const std::string& path, uint64_t size, const fs::path& file) -> Status {
    std::error_code ec;
    if (fs::is_regular_file(file, ec) && fs::file_size(file, ec) == size) {
      SHOAL_ASSIGN_OR_RETURN(bool same, SameContent(e, path, file, size));
      if (same) {
        skipped++;
        bar.Add(1, 0);
        return Status::OK();
      }
    }
    if (file.has_parent_path()) fs::create_directories(file.parent_path(), ec);
    const fs::path tmp = file.string() + ".shoal-part";
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Status::IOError(fmt::format("cannot write {}", tmp.string()));
    for (uint64_t off = 0; off < size;) {
      SHOAL_ASSIGN_OR_RETURN(uint64_t n, e.Read(path, off, buf));
      if (n == 0) return Status::Corruption(fmt::format("{} ended at {} of {}", path, off, size));
      out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(n));
      off += n;
      bar.Add(0, n);
    }
    out.close();
    if (!out) return Status::IOError(fmt::format("writing {} failed", tmp.string()));
    fs::rename(tmp, file, ec);
    if (ec) return Status::IOError(fmt::format("renaming to {}: {}", file.string(), ec.message()));
    copied++;
    bar.Add(1, 0);
    return Status::OK();
  };
  Status s;
  if (single.ok()) {
    fs::path file(dst);
    std::error_code ec;
    if (fs::is_directory(file, ec)) file /= fs::path(src).filename();
    s = fetch(src, single->size, file);
  } else {
    s = Walk(e, src, [&](const std::string& path, uint64_t size) {
      const std::string rel = src.empty() ? path : path.substr(src.size() + 1);
      return fetch(path, size, fs::path(dst) / rel);
    });
  }
  if (!s.ok()) return Report("get", src.empty() ? "/" : src, s);
  std::fprintf(stderr, "get: %llu copied, %llu already there\n",
               static_cast<unsigned long long>(copied), static_cast<unsigned long long>(skipped));
  return 0;
}

int Put(Engine& e, const std::string& src, const std::string& dst_raw, bool replace,
        bool progress) {
  const std::string dst = EnginePath(dst_raw);
  Progress bar(progress, "put");
  uint64_t written = 0, skipped = 0;
  std::vector<std::byte> buf(kPiece);
  auto store = [&](const fs::path& file, const std::string& path) -> Status {
    std::error_code ec;
    const uint64_t size = fs::file_size(file, ec);
    if (ec) return Status::IOError(fmt::format("{}: {}", file.string(), ec.message()));
    auto have = e.Stat(path);
    if (have.ok()) {
      if (have->size == size) {
        SHOAL_ASSIGN_OR_RETURN(bool same, SameContent(e, path, file, size));
        if (same) {
          skipped++;
          bar.Add(1, 0);
          return Status::OK();
        }
      }
      if (!replace) {
        return Status::AlreadyExists(fmt::format(
            "\"{}\" exists with other content (give --replace to overwrite it)", path));
      }
      SHOAL_RETURN_IF_ERROR(e.Remove(path));
    } else if (have.status().code() != Code::kNotFound) {
      return have.status();
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) return Status::IOError(fmt::format("cannot read {}", file.string()));
    SHOAL_RETURN_IF_ERROR(e.Create(path));
    Status s;
    for (uint64_t off = 0; s.ok() && off < size;) {
      in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
      const auto n = static_cast<size_t>(in.gcount());
      if (n == 0) {
        s = Status::IOError(fmt::format("{} shrank while being read", file.string()));
        break;
      }
      s = e.Write(path, off, std::span(buf).first(n));
      off += n;
      bar.Add(0, n);
    }
    if (s.ok()) s = e.Seal(path);
    if (!s.ok()) {
      (void)e.Abort(path);
      return s;
    }
    written++;
    bar.Add(1, 0);
    return Status::OK();
  };
  std::error_code ec;
  Status s;
  if (fs::is_directory(src, ec)) {
    std::vector<fs::path> files;
    for (auto it = fs::recursive_directory_iterator(src, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      if (it->is_regular_file(ec)) files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
      const std::string rel = fs::relative(f, src, ec).generic_string();
      s = store(f, Join(dst, rel));
      if (!s.ok()) break;
    }
  } else if (fs::is_regular_file(src, ec)) {
    s = store(src, dst.empty() ? fs::path(src).filename().string() : dst);
  } else {
    s = Status::NotFound(fmt::format("{}: no such file or directory", src));
  }
  if (!s.ok()) return Report("put", src, s);
  std::fprintf(stderr, "put: %llu written, %llu already there\n",
               static_cast<unsigned long long>(written), static_cast<unsigned long long>(skipped));
  return 0;
}

int Rm(Engine& e, const std::vector<std::string>& paths, bool recursive) {
  int rc = 0;
  for (const std::string& raw : paths) {
    const std::string p = EnginePath(raw);
    if (p.empty()) {
      rc = Report("rm", "/", Status::InvalidArgument("refusing to remove the root"));
      continue;
    }
    auto info = e.Stat(p);
    if (info.ok()) {
      if (Status s = e.Remove(p); !s.ok()) rc = Report("rm", p, s);
      continue;
    }
    if (!recursive) {
      rc = Report("rm", p, info.status().code() == Code::kNotFound
                               ? Status::NotFound("no such object (a directory needs -r)")
                               : info.status());
      continue;
    }
    uint64_t removed = 0;
    Status s = Walk(e, p, [&](const std::string& path, uint64_t) {
      removed++;
      return e.Remove(path);
    });
    if (!s.ok()) rc = Report("rm", p, s);
    std::fprintf(stderr, "rm: %llu objects removed under %s\n",
                 static_cast<unsigned long long>(removed), p.c_str());
  }
  return rc;
}

namespace {

Result<std::unique_ptr<Checkpointer>> Ckpt(Engine& e, const std::string& root) {
  CheckpointOptions co;
  co.root = EnginePath(root);
  return Checkpointer::Open(e, co);
}

}  // namespace

int CkptList(Engine& e, const std::string& root, bool json_out) {
  auto ck = Ckpt(e, root);
  if (!ck.ok()) return Report("ckpt list", root, ck.status());
  auto tags = (*ck)->List();
  if (!tags.ok()) return Report("ckpt list", root, tags.status());
  json out = json::array();
  if (!json_out) std::printf("%-24s %5s %6s %12s  %s\n", "tag", "seq", "ranks", "bytes", "committed");
  for (const TagInfo& t : *tags) {
    auto m = (*ck)->GetManifest(t.tag);
    if (!m.ok()) {
      Report("ckpt list", t.tag, m.status());
      continue;
    }
    uint64_t bytes = 0;
    for (const BlobInfo& b : m->blobs) bytes += b.size;
    if (json_out) {
      out.push_back({{"tag", t.tag}, {"sequence", t.sequence}, {"world_size", m->world_size},
                     {"blobs", m->blobs.size()}, {"bytes", bytes},
                     {"committed_ns", m->commit_time_ns}});
    } else {
      std::printf("%-24s %5llu %6u %12s  %s\n", t.tag.c_str(),
                  static_cast<unsigned long long>(t.sequence), m->world_size, Human(bytes).c_str(),
                  Time(m->commit_time_ns).c_str());
    }
  }
  if (json_out) std::printf("%s\n", out.dump().c_str());
  return 0;
}

int CkptShow(Engine& e, const std::string& root, const std::string& tag, bool json_out) {
  auto ck = Ckpt(e, root);
  if (!ck.ok()) return Report("ckpt show", root, ck.status());
  auto m = (*ck)->GetManifest(tag);
  if (!m.ok()) return Report("ckpt show", tag, m.status());
  if (json_out) {
    json blobs = json::array();
    for (const BlobInfo& b : m->blobs) {
      blobs.push_back({{"name", b.name}, {"size", b.size}, {"crc32c", b.crc32c}, {"rank", b.rank}});
    }
    json j = {{"tag", m->tag}, {"sequence", m->sequence}, {"world_size", m->world_size},
              {"committed_ns", m->commit_time_ns}, {"metadata", m->metadata}, {"blobs", blobs}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("tag:        %s\nsequence:   %llu\ncommitted:  %s\nworld size: %u\nmetadata:   %s\n",
              m->tag.c_str(), static_cast<unsigned long long>(m->sequence),
              Time(m->commit_time_ns).c_str(), m->world_size, m->metadata.c_str());
  for (const BlobInfo& b : m->blobs) {
    std::printf("  %12llu  rank %-4u crc32c %08x  %s\n", static_cast<unsigned long long>(b.size),
                b.rank, b.crc32c, b.name.c_str());
  }
  return 0;
}

int CkptRm(Engine& e, const std::string& root, const std::vector<std::string>& tags) {
  auto ck = Ckpt(e, root);
  if (!ck.ok()) return Report("ckpt rm", root, ck.status());
  int rc = 0;
  for (const std::string& t : tags) {
    if (Status s = (*ck)->Remove(t); !s.ok()) rc = Report("ckpt rm", t, s);
  }
  return rc;
}

int CkptRetain(Engine& e, const std::string& root, uint32_t keep_last) {
  auto ck = Ckpt(e, root);
  if (!ck.ok()) return Report("ckpt retain", root, ck.status());
  auto n = (*ck)->Retain(keep_last);
  if (!n.ok()) return Report("ckpt retain", root, n.status());
  std::printf("removed %u checkpoint(s), kept the newest %u\n", *n, keep_last);
  return 0;
}

namespace {

uint64_t Counter(const Stats& s, const std::string& name) {
  auto it = s.counters.find(name);
  return it == s.counters.end() ? 0 : it->second;
}

// Failed calls, NotFound left out (a Stat of a name not there is an answer, not a fault).
uint64_t Errors(const Stats& s) {
  uint64_t n = 0;
  for (const auto& [name, v] : s.counters) {
    if (name.rfind("engine.errors.", 0) == 0 && name != "engine.errors.NotFound") n += v;
  }
  return n;
}

json StatsJson(const Stats& s) {
  json counters = json::object();
  for (const auto& [name, v] : s.counters) counters[name] = v;
  json histograms = json::object();
  for (const auto& [name, h] : s.histograms) {
    histograms[name] = {{"count", h.count}, {"p50", h.p50}, {"p90", h.p90}, {"p99", h.p99}};
  }
  return {{"counters", counters}, {"histograms", histograms}};
}

}  // namespace

int StatusCmd(Session& w, bool json_out, bool counters) {
  using engine::observer::MemberReport;
  std::vector<Result<MemberReport>> reports;
  for (uint32_t i = 0; i < w.members(); ++i) reports.push_back(w.Report(i));
  const MemberReport* any = nullptr;
  for (const auto& r : reports) {
    if (r.ok() && any == nullptr) any = &*r;
  }
  int rc = 0;
  uint64_t total = 0, free = 0, held = 0;
  json members = json::array();
  if (!json_out) {
    std::printf("world: %u member(s)", w.members());
    if (any != nullptr) {
      std::printf(", %u rank(s), epoch %llu, %u replica(s), %u member(s) declared lost",
                  any->ranks, static_cast<unsigned long long>(any->epoch), any->replicas,
                  any->lost);
    }
    std::printf("\n%s\n", w.description().c_str());
    std::printf("%-6s %-4s %-14s %4s %8s %10s %10s %9s %9s %6s  %s\n", "member", "rank", "node",
                "up", "objects", "held", "free", "reads", "writes", "errors", "background");
  }
  for (uint32_t i = 0; i < w.members(); ++i) {
    const auto& r = reports[i];
    if (!r.ok()) {
      rc = Report("status", fmt::format("member {}", i), r.status());
      if (json_out) {
        members.push_back({{"member", i}, {"up", false}, {"error", r.status().ToString()}});
      } else {
        std::printf("%-6u %-4s %-14s %4s  %s\n", i, "?", "?", "no", r.status().ToString().c_str());
      }
      continue;
    }
    total += r->space.total_bytes;
    free += r->space.free_bytes;
    held += r->bytes;
    std::string background = r->background_running ? "repairing" : "idle";
    if (!r->background.lost.empty()) {
      background += fmt::format(", {} unreadable", r->background.lost.size());
    }
    if (r->background.chunks_copied != 0) {
      background += fmt::format(", {} chunk(s) copied", r->background.chunks_copied);
    }
    background += fmt::format("; scrubbed {}", Human(r->scrubbed_bytes));
    if (r->scrub_damaged != 0) background += fmt::format(", {} damaged", r->scrub_damaged);
    if (json_out) {
      json m = {{"member", r->member}, {"rank", r->rank}, {"node", r->node},
                {"member_id", r->member_id}, {"up", true}, {"store", w.store(i)},
                {"epoch", r->epoch}, {"objects", r->objects}, {"held_bytes", r->bytes},
                {"free_bytes", r->space.free_bytes}, {"total_bytes", r->space.total_bytes},
                {"io_backend", r->io_backend}, {"background_running", r->background_running},
                {"background_chunks_copied", r->background.chunks_copied},
                {"background_unreadable", r->background.lost},
                {"scrubbed_bytes", r->scrubbed_bytes}, {"scrub_damaged", r->scrub_damaged},
                {"stats", StatsJson(r->stats)}};
      members.push_back(std::move(m));
    } else {
      std::printf("%-6u %-4u %-14s %4s %8llu %10s %10s %9llu %9llu %6llu  %s\n", r->member,
                  r->rank, r->node.c_str(), "yes", static_cast<unsigned long long>(r->objects),
                  Human(r->bytes).c_str(), Human(r->space.free_bytes).c_str(),
                  static_cast<unsigned long long>(Counter(r->stats, "engine.read.ops")),
                  static_cast<unsigned long long>(Counter(r->stats, "engine.write.ops")),
                  static_cast<unsigned long long>(Errors(r->stats)), background.c_str());
    }
  }
  if (json_out) {
    json j = {{"live", w.live()}, {"where", w.description()}, {"members", members},
              {"held_bytes", held}, {"free_bytes", free}, {"total_bytes", total}};
    if (any != nullptr) {
      j["epoch"] = any->epoch;
      j["ranks"] = any->ranks;
      j["replicas"] = any->replicas;
      j["lost_members"] = any->lost;
    }
    std::printf("%s\n", j.dump().c_str());
    return rc;
  }
  std::printf("held %s in all; %s free of %s\n", Human(held).c_str(), Human(free).c_str(),
              Human(total).c_str());
  if (!w.live()) {
    std::printf("(counters are this process's: a running job's come with its job file: "
                "shoal status --job ROOT/shoal-job)\n");
  }
  if (counters) {
    // Every counter some member has counted, one column per member; then latencies.
    std::map<std::string, std::vector<uint64_t>> rows;
    std::map<std::string, std::vector<HistogramStats>> lat;
    for (uint32_t i = 0; i < w.members(); ++i) {
      if (!reports[i].ok()) continue;
      for (const auto& [name, v] : reports[i]->stats.counters) {
        auto& row = rows[name];
        row.resize(w.members());
        row[i] = v;
      }
      for (const auto& [name, h] : reports[i]->stats.histograms) {
        auto& row = lat[name];
        row.resize(w.members());
        row[i] = h;
      }
    }
    std::printf("\n%-44s", "counter");
    for (uint32_t i = 0; i < w.members(); ++i) std::printf(" %12s", fmt::format("member {}", i).c_str());
    std::printf("\n");
    for (const auto& [name, row] : rows) {
      if (std::all_of(row.begin(), row.end(), [](uint64_t v) { return v == 0; })) continue;
      std::printf("%-44s", name.c_str());
      for (uint64_t v : row) std::printf(" %12llu", static_cast<unsigned long long>(v));
      std::printf("\n");
    }
    std::printf("\n%-44s", "latency p50 / p99 (us)");
    for (uint32_t i = 0; i < w.members(); ++i) std::printf(" %12s", fmt::format("member {}", i).c_str());
    std::printf("\n");
    for (const auto& [name, row] : lat) {
      if (std::all_of(row.begin(), row.end(), [](const HistogramStats& h) { return h.count == 0; })) {
        continue;
      }
      std::printf("%-44s", name.c_str());
      for (const HistogramStats& h : row) {
        std::printf(" %12s", h.count == 0 ? "-" : fmt::format("{}/{}", h.p50 / 1000, h.p99 / 1000).c_str());
      }
      std::printf("\n");
    }
  }
  return rc;
}

int ScrubCmd(Session& w, bool json_out) {
  json out = json::array();
  int rc = 0;
  uint64_t bytes = 0, damaged = 0, repaired = 0;
  std::vector<std::string> unrepaired;
  if (!json_out) {
    std::printf("%-6s %-14s %10s %10s %8s %8s %9s\n", "member", "node", "chunks", "verified",
                "damaged", "repaired", "seconds");
  }
  for (uint32_t i = 0; i < w.members(); ++i) {
    auto who = w.Report(i);
    const std::string node = who.ok() ? who->node : "?";
    std::fprintf(stderr, "scrub: member %u (%s), %u of %u...\n", i, node.c_str(), i + 1,
                 w.members());
    auto r = w.Scrub(i);
    if (!r.ok()) {
      rc = Report("scrub", fmt::format("member {}", i), r.status());
      continue;
    }
    bytes += r->bytes;
    damaged += r->damaged;
    repaired += r->repaired;
    unrepaired.insert(unrepaired.end(), r->unrepaired.begin(), r->unrepaired.end());
    if (json_out) {
      out.push_back({{"member", i}, {"node", node}, {"chunk_objects", r->chunk_objects},
                     {"bytes", r->bytes}, {"damaged", r->damaged}, {"repaired", r->repaired},
                     {"unrepaired", r->unrepaired}, {"ms", r->ms}});
    } else {
      std::printf("%-6u %-14s %10llu %10s %8llu %8llu %9.2f\n", i, node.c_str(),
                  static_cast<unsigned long long>(r->chunk_objects), Human(r->bytes).c_str(),
                  static_cast<unsigned long long>(r->damaged),
                  static_cast<unsigned long long>(r->repaired), r->ms / 1000);
    }
  }
  if (json_out) {
    json j = {{"members", out}, {"bytes", bytes}, {"damaged", damaged}, {"repaired", repaired},
              {"unrepaired", unrepaired}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("verified %s; %llu damaged, %llu repaired from replicas, %zu left damaged\n",
                Human(bytes).c_str(), static_cast<unsigned long long>(damaged),
                static_cast<unsigned long long>(repaired), unrepaired.size());
    for (const std::string& p : unrepaired) std::printf("  damaged: %s\n", p.c_str());
  }
  return rc != 0 || !unrepaired.empty() ? 1 : 0;
}

int FsckCmd(Session& w, bool json_out) {
  Engine& e = w.engine();
  const uint32_t members = w.members();
  uint64_t objects = 0, inline_objects = 0, chunks = 0, degraded_chunks = 0;
  std::vector<std::string> degraded, lost;
  Progress progress(true, "fsck");
  Status s = Walk(e, "", [&](const std::string& path, uint64_t size) -> Status {
    objects++;
    progress.Add(1, size);
    auto info = e.Stat(path);
    if (!info.ok()) {
      if (info.status().code() == Code::kNotFound) return Status::OK();  // removed meanwhile
      lost.push_back(fmt::format("{} ({})", path, info.status().ToString()));
      return Status::OK();
    }
    auto where = e.Locate(path);
    if (!where.ok()) {
      if (where.status().code() == Code::kNotFound) return Status::OK();
      lost.push_back(fmt::format("{} ({})", path, where.status().ToString()));
      return Status::OK();
    }
    if (info->is_inline || where->empty()) inline_objects++;
    // The copies it was written with, as far as this world's members can hold them.
    const uint32_t want = std::min(info->replicas, members);
    bool is_degraded = false;
    for (size_t c = 0; c < where->size(); ++c) {
      const auto& holders = (*where)[c];
      chunks++;
      if (holders.empty()) {
        // No live holder: a chunk never written (it reads as zeros) or one whose holders are
        // all down. A one-byte read there tells which.
        std::byte b[1];
        ReadRequest rq{path, c * uint64_t{info->chunk_size}, {b, 1}, {}, 0};
        (void)e.ReadBatch({&rq, 1});
        if (!rq.status.ok()) {
          lost.push_back(fmt::format("{} (chunk {}: {})", path, c, rq.status.ToString()));
          return Status::OK();
        }
        continue;
      }
      if (holders.size() < want) {
        degraded_chunks++;
        is_degraded = true;
      }
    }
    if (is_degraded) degraded.push_back(path);
    return Status::OK();
  });
  if (!s.ok()) return Report("fsck", "/", s);
  if (json_out) {
    json j = {{"objects", objects}, {"inline", inline_objects}, {"chunks", chunks},
              {"degraded_chunks", degraded_chunks},
              {"degraded", degraded}, {"unreadable", lost}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("checked %llu objects (%llu inline), %llu chunks; %llu chunk(s) of %zu object(s) "
                "have fewer live copies than written with; %zu unreadable\n",
                static_cast<unsigned long long>(objects),
                static_cast<unsigned long long>(inline_objects),
                static_cast<unsigned long long>(chunks),
                static_cast<unsigned long long>(degraded_chunks), degraded.size(), lost.size());
    for (const std::string& p : degraded) std::printf("  degraded: %s\n", p.c_str());
    for (const std::string& p : lost) std::printf("  unreadable: %s\n", p.c_str());
    if (!degraded.empty()) std::printf("(shoal repair copies the missing replicas)\n");
  }
  return lost.empty() && degraded.empty() ? 0 : 1;
}

int RepairCmd(Engine& e, bool json_out) {
  auto r = e.Repair();
  if (!r.ok()) return Report("repair", "/", r.status());
  if (json_out) {
    json j = {{"objects", r->objects}, {"chunks_copied", r->chunks_copied},
              {"bytes_copied", r->bytes_copied}, {"lost", r->lost}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("examined %llu objects; copied %llu chunk replicas (%s); %zu unreadable\n",
                static_cast<unsigned long long>(r->objects),
                static_cast<unsigned long long>(r->chunks_copied), Human(r->bytes_copied).c_str(),
                r->lost.size());
    for (const std::string& l : r->lost) std::printf("  lost: %s\n", l.c_str());
  }
  return r->lost.empty() ? 0 : 1;
}

}  // namespace shoal::cli
