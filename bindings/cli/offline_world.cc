#include "bindings/cli/offline_world.h"

#include <fmt/format.h>
#include <stdlib.h>
#include <sys/random.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <thread>

namespace shoal::cli {
namespace {

namespace fs = std::filesystem;

bool IsStore(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p / "FORMAT", ec);
}

std::string FreshToken() {
  unsigned char b[16] = {};
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = ::getrandom(b + got, sizeof b - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  std::string hex;
  for (unsigned char c : b) hex += fmt::format("{:02x}", c);
  return hex;
}

}  // namespace

Result<std::vector<FoundStore>> FindStores(const std::vector<std::string>& args) {
  std::vector<FoundStore> found;
  std::set<std::string> seen;
  auto add = [&](const fs::path& dir, std::string node) {
    std::error_code ec;
    std::string canon = fs::weakly_canonical(dir, ec).string();
    if (ec) canon = dir.string();
    if (seen.insert(canon).second) found.push_back({canon, std::move(node)});
  };
  for (const std::string& arg : args) {
    const fs::path root(arg);
    std::error_code ec;
    if (!fs::is_directory(root, ec)) {
      return Status::NotFound(fmt::format("{}: no such directory", arg));
    }
    if (IsStore(root)) {
      add(root, "");
      continue;
    }
    size_t before = found.size();
    std::vector<fs::path> level1;
    for (const auto& e : fs::directory_iterator(root, ec)) {
      if (e.is_directory(ec)) level1.push_back(e.path());
    }
    std::sort(level1.begin(), level1.end());
    for (const fs::path& d : level1) {
      if (IsStore(d)) {
        add(d, "");
        continue;
      }
      std::vector<fs::path> level2;
      for (const auto& e : fs::directory_iterator(d, ec)) {
        if (e.is_directory(ec) && IsStore(e.path())) level2.push_back(e.path());
      }
      std::sort(level2.begin(), level2.end());
      for (const fs::path& s : level2) add(s, d.filename().string());
    }
    if (found.size() == before) {
      return Status::NotFound(fmt::format(
          "{}: no shoal store in it or below it (a store directory holds a FORMAT file)", arg));
    }
  }
  for (size_t i = 0; i < found.size(); ++i) {
    if (found[i].node.empty()) found[i].node = fmt::format("cli-{}", i);
  }
  return found;
}

Result<std::unique_ptr<OfflineWorld>> OfflineWorld::Open(const std::vector<FoundStore>& stores,
                                                         const OfflineOptions& options) {
  if (stores.empty()) return Status::InvalidArgument("no stores to open");
  std::unique_ptr<OfflineWorld> w(new OfflineWorld);
  w->stores_ = stores;
  std::string tmpl = (fs::temp_directory_path() / "shoal-cli-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) return Status::IOError("mkdtemp " + tmpl);
  w->rendezvous_dir_ = tmpl;
  const std::string token = FreshToken();
  const auto n = static_cast<uint32_t>(stores.size());
  std::vector<Result<std::unique_ptr<Engine>>> opened;
  for (uint32_t i = 0; i < n; ++i) opened.emplace_back(Status::Internal("not opened"));
  std::vector<std::thread> threads;
  for (uint32_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      Options o;
      o.store_dir = stores[i].dir;
      o.create_if_missing = false;
      o.serve_node_stores = false;
      o.rank = i;
      o.world_size = n;
      o.node = stores[i].node;
      o.token = token;
      o.rendezvous = n > 1 ? "file:" + w->rendezvous_dir_ : "";
      o.join_timeout_ms = options.join_timeout_ms;
      o.repair_rate_mib_s = options.repair_rate_mib_s;
      o.scrub_rate_mib_s = options.scrub_rate_mib_s;
      opened[i] = Engine::Open(o);
    });
  }
  for (auto& t : threads) t.join();
  // The cause, not its echo: a store that could not open (in use, damaged) leaves the others
  // waiting for it until their join timeout, so a Timeout is reported only when nothing else
  // failed.
  Status cause;
  for (uint32_t i = 0; i < n; ++i) {
    if (opened[i].ok()) {
      w->engines_.push_back(std::move(opened[i]).value());
      continue;
    }
    const Status& s = opened[i].status();
    if (cause.ok() || (cause.code() == Code::kTimeout && s.code() != Code::kTimeout)) {
      cause = Status(s.code(), fmt::format("{}: {}", stores[i].dir, s.message()));
    }
  }
  if (!cause.ok()) return cause;  // the opened ones close with w
  return w;
}

OfflineWorld::~OfflineWorld() {
  if (engines_.size() > 1 && engines_.size() == stores_.size()) {
    std::vector<std::thread> threads;
    for (auto& e : engines_) {
      threads.emplace_back([&e] {
        (void)e->Barrier();  // no member leaves while another still reads from it
        e.reset();
      });
    }
    for (auto& t : threads) t.join();
  }
  engines_.clear();
  std::error_code ec;
  if (!rendezvous_dir_.empty()) fs::remove_all(rendezvous_dir_, ec);
}

}  // namespace shoal::cli
