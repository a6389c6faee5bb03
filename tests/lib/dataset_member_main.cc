// One rank of a job that reads a dataset through the cache, started by dataset_world_test.cc
// with the launcher's environment (SHOAL_RANK, SHOAL_WORLD_SIZE, SHOAL_NODE, SHOAL_TOKEN,
// SHOAL_RENDEZVOUS).
//
//   dataset_member STORE SYNC SRC REPLICAS WARM   opens the cache of directory SRC (WARM 1:
//                      warms it first), then 4 threads of every rank each read every sample and
//                      checks it against the file; appends each sample it read from the source
//                      to SYNC/source-r<rank> and each listing to SYNC/lists-r<rank>; prints
//                      "hits H misses M source_reads S waited W".
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "shoal/dataset.h"
#include "shoal/engine.h"

using namespace shoal;

namespace {

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "dataset_member: %s\n", msg.c_str());
  std::exit(1);
}

void Check(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.ToString());
}

class LoggingSource : public DatasetSource {
 public:
  LoggingSource(std::shared_ptr<DatasetSource> inner, std::string reads, std::string lists)
      : inner_(std::move(inner)), reads_(std::move(reads)), lists_(std::move(lists)) {}
  Result<std::vector<SampleInfo>> List(uint32_t part, uint32_t parts) override {
    Append(lists_, fmt::format("{}/{}", part, parts));
    return inner_->List(part, parts);
  }
  Result<SampleInfo> Stat(std::string_view name) override { return inner_->Stat(name); }
  Result<uint64_t> Read(std::string_view name, std::span<std::byte> dst) override {
    Append(reads_, std::string(name));
    return inner_->Read(name, dst);
  }

 private:
  void Append(const std::string& file, const std::string& line) {
    std::lock_guard lk(mu_);
    std::ofstream(file, std::ios::app) << line << "\n";
  }
  std::shared_ptr<DatasetSource> inner_;
  const std::string reads_, lists_;
  std::mutex mu_;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) Die("usage: dataset_member STORE SYNC SRC REPLICAS WARM");
  const std::string sync = argv[2], src = argv[3];
  Options o;
  o.store_dir = argv[1];
  o.chunk_size = 256 << 10;
  o.replicas = static_cast<uint32_t>(std::atoi(argv[4]));
  o.join_timeout_ms = 60000;
  auto opened = Engine::Open(o);
  Check(opened.status(), "open");
  Engine& e = **opened;
  auto source = std::make_shared<LoggingSource>(DirectorySource(src),
                                                fmt::format("{}/source-r{}", sync, e.rank()),
                                                fmt::format("{}/lists-r{}", sync, e.rank()));
  DatasetOptions dopt;
  dopt.root = "datasets/worldtest";
  auto cache = DatasetCache::Open(e, source, dopt);
  Check(cache.status(), "dataset open");
  DatasetCache& c = **cache;
  if (std::atoi(argv[5]) != 0) Check(c.Warm(), "warm");
  Check(e.Barrier(), "barrier");

  // Every thread of every rank reads every sample, each starting elsewhere.
  std::mutex err_mu;
  std::string error;
  auto work = [&](uint64_t shift) {
    std::vector<std::byte> buf;
    for (uint64_t k = 0; k < c.size(); ++k) {
      const uint64_t i = (k + shift) % c.size();
      auto info = c.info(i);
      if (!info.ok()) Die(info.status().ToString());
      buf.resize(std::max<size_t>(buf.size(), info->size));
      auto n = c.Read(i, buf);
      std::string want = Slurp(src + "/" + info->name);
      if (!n.ok() || *n != want.size() ||
          std::string(reinterpret_cast<const char*>(buf.data()), *n) != want) {
        std::lock_guard lk(err_mu);
        error = fmt::format("sample {}: {}", info->name,
                            n.ok() ? "wrong bytes" : n.status().ToString());
      }
    }
  };
  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < 4; ++t) {
    threads.emplace_back(work, (e.rank() * 4 + t) * 7919);
  }
  for (auto& t : threads) t.join();
  if (!error.empty()) Die(error);
  Check(e.Barrier(), "barrier");
  DatasetStats s = c.stats();
  std::printf("hits %llu misses %llu source_reads %llu waited %llu\n",
              static_cast<unsigned long long>(s.hits), static_cast<unsigned long long>(s.misses),
              static_cast<unsigned long long>(s.source_reads),
              static_cast<unsigned long long>(s.waited));
  return 0;
}
