// shoal-dataset-bench: the dataset cache on one member against the machine's limits (issue 14).
//
//   shoal-dataset-bench [--dir D] [--samples 4096] [--sample-size 128K] [--threads 16]
//                       [--source-mbps 200] [--source-latency-ms 5] [--source-inflight 16]
//                       [--json]
//
// A directory of `samples` files of `sample-size` bytes is the source, behind a throttle:
// bandwidth B, a latency L per request, at most C requests in flight; its limit is
// min(B, C x S / L). Every epoch reads all samples in a new random order with `threads` readers.
//   epoch-1  through the throttled source (every sample a miss)   vs the source's limit
//   epoch-2  from the store's disk (O_DIRECT; memory tier off; ReadBatch of `batch` samples per
//            reader, as a DataLoader's batch)                       vs raw O_DIRECT io_uring
//            random reads of the same size, as many in flight as readers (a file of the same
//            bytes, in the same run)
//   --local  later epochs (epoch-2, warm): each rank reads, in a new random order every epoch,
//            the samples its own member holds (DatasetCache::HeldHere; together they are the
//            whole set, each once) instead of a random share of all of them
//   warm-up  DatasetCache::Warm of the whole set under another root (every rank loads what it
//            owns, cached through PutBatch), through a throttle of its own  vs the source's limit
//            and, printed below it, the same samples read from the source directory with its
//            page cache dropped (open + pread + close, same readers)
//   warm     from the memory tier (sized to hold the set)         vs pread of the source files
//            from ext4's page cache (read once before), same readers and order
// Every row prints the samples read from the source in total: the set's size, once.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "benchmarks/bench_util.h"
#include "benchmarks/raw_disk.h"
#include "benchmarks/world_bench.h"
#include "transport/launch_info.h"
#include "shoal/dataset.h"
#include "shoal/engine.h"

namespace shoal::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Config {
  std::string dir;
  uint64_t samples = 4096;
  uint64_t sample_size = 128 << 10;
  uint32_t threads = 16;
  uint32_t batch = 1;
  bool local = false;  // later epochs: each rank reads the samples its member holds
  uint32_t raw_depth = 16;
  double source_mbps = 200;
  double source_latency_ms = 5;
  uint32_t source_inflight = 16;
  bool json = false;
};

// A source behind a throttle: at most `inflight` requests at once, each taking `latency`, and
// bytes no faster than `mbps` over all of them.
class Throttled : public DatasetSource {
 public:
  Throttled(std::shared_ptr<DatasetSource> inner, const Config& c)
      : inner_(std::move(inner)),
        slots_(c.source_inflight),
        latency_(std::chrono::microseconds(static_cast<int64_t>(c.source_latency_ms * 1000))),
        bytes_per_s_(c.source_mbps * 1e6) {}
  Result<std::vector<SampleInfo>> List(uint32_t part, uint32_t parts) override {
    return inner_->List(part, parts);
  }
  Result<SampleInfo> Stat(std::string_view name) override { return inner_->Stat(name); }
  Result<uint64_t> Read(std::string_view name, std::span<std::byte> dst) override {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return slots_ > 0; });
      slots_--;
    }
    auto start = Clock::now();
    Clock::time_point done;
    {
      std::lock_guard lk(mu_);  // the bandwidth: the bytes queue behind the ones before
      const auto t = std::max(start, next_free_);
      next_free_ = t + std::chrono::nanoseconds(static_cast<int64_t>(dst.size() / bytes_per_s_ * 1e9));
      done = std::max(next_free_, start + latency_);
    }
    auto r = inner_->Read(name, dst);
    std::this_thread::sleep_until(done);
    reads_++;
    {
      std::lock_guard lk(mu_);
      slots_++;
    }
    cv_.notify_one();
    return r;
  }
  uint64_t reads() const { return reads_; }

 private:
  std::shared_ptr<DatasetSource> inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint32_t slots_;
  const std::chrono::nanoseconds latency_;
  const double bytes_per_s_;
  Clock::time_point next_free_{};
  std::atomic<uint64_t> reads_{0};
};

// `threads` readers take indices of `order` in turn and run fn on each; returns seconds.
template <typename Fn>
double Epoch(const std::vector<uint64_t>& order, uint32_t threads, Fn fn) {
  std::atomic<size_t> next{0};
  auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (uint32_t t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      std::vector<std::byte> buf;
      for (size_t k; (k = next.fetch_add(1)) < order.size();) fn(order[k], buf);
    });
  }
  for (auto& t : pool) t.join();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The same with `batch` samples per ReadBatch call (a DataLoader's batch).
double BatchEpoch(DatasetCache& dc, const std::vector<uint64_t>& order, uint32_t threads,
                  uint32_t batch, uint64_t sample_size) {
  std::atomic<size_t> next{0};
  auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (uint32_t t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      std::vector<std::byte> buf(static_cast<size_t>(batch) * sample_size);
      std::vector<SampleRead> reads(batch);
      for (size_t k; (k = next.fetch_add(batch)) < order.size();) {
        const size_t n = std::min<size_t>(batch, order.size() - k);
        for (size_t j = 0; j < n; ++j) {
          reads[j] = SampleRead{};
          reads[j].index = order[k + j];
          reads[j].dst = std::span(buf).subspan(j * sample_size, sample_size);
        }
        Check(dc.ReadBatch(std::span(reads).first(n)), "dataset read batch");
        for (size_t j = 0; j < n; ++j) Check(reads[j].status, "dataset read");
      }
    });
  }
  for (auto& t : pool) t.join();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void DropPageCache() {
  ::sync();
  int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY);
  if (fd < 0) return;
  (void)!::write(fd, "1", 1);
  ::close(fd);
}

// The source: samples in 64 class directories, distinct bytes in every 4 KiB block.
void MakeSource(const Config& c, const std::string& src) {
  namespace fs = std::filesystem;
  Buffer b(c.sample_size);
  for (uint64_t i = 0; i < c.samples; ++i) {
    const std::string name = fmt::format("cls-{:02}/s-{:07}.bin", i % 64, i);
    fs::create_directories(fs::path(src) / fmt::format("cls-{:02}", i % 64));
    StampBlocks(b.data(), c.sample_size, i + 1);
    int fd = ::open((src + "/" + name).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ::write(fd, b.data(), c.sample_size) != static_cast<ssize_t>(c.sample_size)) {
      Die(Status::IOError("writing the source"), name);
    }
    ::close(fd);
  }
}

// One rank (or the only member): every epoch's order is the same permutation on every rank;
// rank r reads the positions k with k mod N == r. Figures are aggregates: all bytes over the
// slowest rank's seconds, every phase started by a barrier.
int RunRank(Config c, const std::string& base) {
  const std::string src = base + "/src";
  Options o;
  auto li = transport::LaunchInfoFromEnv();
  const uint32_t rank_env = li.ok() ? li->rank : 0;
  o.store_dir = fmt::format("{}/rank-{}", base, rank_env);
  auto engine = Check(Engine::Open(o), "open");
  Engine& e = *engine;
  const uint32_t n = e.world_size(), me = e.rank();
  // The source's limits are the world's: each rank's throttle has its share.
  Config mine = c;
  mine.source_mbps = c.source_mbps / n;
  mine.source_inflight = std::max<uint32_t>(1, c.source_inflight / n);
  auto throttled = std::make_shared<Throttled>(DirectorySource(src), mine);
  DatasetOptions dopt;
  dopt.root = "bench/dataset";
  dopt.warm_threads = c.threads;
  auto cache = Check(DatasetCache::Open(e, throttled, dopt), "dataset open");
  const uint64_t total = cache->size();
  const double set_mb = static_cast<double>(total * c.sample_size) / 1e6;
  auto worst_and_sum = [&](double secs, double add) {
    std::vector<std::byte> b(16);
    std::memcpy(b.data(), &secs, 8);
    std::memcpy(b.data() + 8, &add, 8);
    auto all = Check(e.AllGather(b), "all-gather");
    double w = 0, sum = 0;
    for (auto& x : all) {
      double v, a;
      std::memcpy(&v, x.data(), 8);
      std::memcpy(&a, x.data() + 8, 8);
      w = std::max(w, v);
      sum += a;
    }
    return std::pair{w, sum};
  };
  // fn on this rank's share of `order`: (aggregate seconds, CPU-seconds of all ranks).
  auto timed = [&](auto&& fn) {
    Check(e.Barrier(), "barrier");
    const double cpu0 = ProcessCpuSeconds();
    auto t0 = Clock::now();
    fn();
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    return worst_and_sum(secs, ProcessCpuSeconds() - cpu0);
  };
  std::vector<uint64_t> held;  // --local: this rank's share of every later epoch
  auto share = [&](uint64_t seed) {
    std::mt19937_64 rng(seed + me);
    if (!held.empty()) {
      std::vector<uint64_t> out = held;
      std::shuffle(out.begin(), out.end(), rng);
      return out;
    }
    std::vector<uint64_t> order(total);
    for (uint64_t i = 0; i < total; ++i) order[i] = i;
    rng.seed(seed);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<uint64_t> out;
    for (uint64_t k = me; k < total; k += n) out.push_back(order[k]);
    return out;
  };
  auto read_cache = [](DatasetCache& dc) {
    return [&dc](uint64_t i, std::vector<std::byte>& buf) {
      buf.resize(std::max<size_t>(buf.size(), 1 << 20));
      Check(dc.Read(i, buf).status(), "dataset read");
    };
  };
  auto run_epoch = [&](DatasetCache& dc, const std::vector<uint64_t>& part) {
    if (c.batch > 1) return BatchEpoch(dc, part, c.threads, c.batch, c.sample_size);
    return Epoch(part, c.threads, read_cache(dc));
  };
  std::vector<nlohmann::json> rows;
  auto row = [&](const std::string& mode, double secs, double cpu, double base_mbps,
                 const std::string& base_what) {
    nlohmann::json j;
    j["mode"] = mode;
    j["ranks"] = n;
    j["samples"] = total;
    j["sample_size"] = c.sample_size;
    j["threads"] = c.threads;
    j["batch"] = c.batch;
    j["shares"] = c.local ? "local" : "random";
    j["mbps"] = set_mb / secs;
    j["samples_per_s"] = total / secs;
    j["baseline"] = base_what;
    j["baseline_mbps"] = base_mbps;
    j["ratio"] = set_mb / secs / base_mbps;
    j["cpu_s_per_gib"] = cpu / (set_mb * 1e6 / (1ull << 30));
    rows.push_back(j);
  };

  // Epoch 1: every sample a miss, through the throttle.
  auto part = share(1);
  auto [s1, cpu1] = timed([&] { Epoch(part, c.threads, read_cache(*cache)); });
  const double limit = std::min(c.source_mbps, c.source_inflight * (c.sample_size / 1e6) /
                                                   (c.source_latency_ms / 1e3));
  row("epoch-1", s1, cpu1, limit, "source limit min(B, C x S / L)");

  // Warm-up: the whole set loaded by Warm under another root, through a throttle of its own.
  auto warm_src = std::make_shared<Throttled>(DirectorySource(src), mine);
  DatasetOptions wopt = dopt;
  wopt.root = "bench/dataset-warm-up";
  auto warming = Check(DatasetCache::Open(e, warm_src, wopt), "dataset open (warm-up)");
  auto [sw0, cw0] = timed([&] { Check(warming->Warm(), "warm-up"); });
  row("warm-up", sw0, cw0, limit, "source limit min(B, C x S / L)");
  auto [unused0, warm_reads] = worst_and_sum(0, static_cast<double>(warm_src->reads()));
  (void)unused0;
  if (static_cast<uint64_t>(warm_reads) != total) {
    Die(Status::Internal(fmt::format("{} source reads in the warm-up for {} samples", warm_reads,
                                     total)),
        "one source read per sample");
  }
  warming.reset();

  // Later epochs from the world's disks, against every rank's raw random reads of its share's
  // size from its own file (all ranks at once).
  if (c.local) {
    held = cache->HeldHere();
    auto [unused1, held_all] = worst_and_sum(0, static_cast<double>(held.size()));
    (void)unused1;
    if (static_cast<uint64_t>(held_all) != total || held.empty()) {
      Die(Status::Internal(fmt::format("the members hold {} samples of {}", held_all, total)),
          "--local");
    }
  }
  const std::string raw = fmt::format("{}/raw-{}", base, me);
  const uint64_t my_samples = c.local ? held.size() : (total + n - 1 - me) / n;
  Check(RawSequentialWrite(raw, my_samples * c.sample_size, static_cast<uint32_t>(c.sample_size),
                           16, nullptr).status(), "raw write");
  auto pread_file = [&](uint64_t i, std::vector<std::byte>& buf) {
    buf.resize(c.sample_size);
    const std::string path = src + "/" + Check(cache->info(i), "info").name;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::pread(fd, buf.data(), buf.size(), 0) != static_cast<ssize_t>(buf.size())) {
      Die(Status::IOError("page-cache read"), path);
    }
    ::close(fd);
  };
  std::vector<double> es, rs, cs;
  double ecpu = 0;
  for (int rep = 0; rep < 3; ++rep) {
    part = share(10 + rep);
    std::vector<uint64_t> offsets(part.size());
    std::mt19937_64 rng(100 + rep + me);
    for (size_t k = 0; k < part.size(); ++k) offsets[k] = k * c.sample_size;
    std::shuffle(offsets.begin(), offsets.end(), rng);
    if (me == 0) DropPageCache();
    auto [se, ce] = timed([&] { run_epoch(*cache, part); });
    es.push_back(se);
    ecpu += ce;
    auto [sr, cr] = timed([&] {
      Check(RawRandomRead(raw, offsets, static_cast<uint32_t>(c.sample_size), c.raw_depth).status(),
            "raw random read");
    });
    (void)cr;
    rs.push_back(sr);
    // The same samples straight from the source directory, its page cache dropped.
    if (me == 0) DropPageCache();
    auto [sc, cc] = timed([&] { Epoch(part, c.threads, pread_file); });
    (void)cc;
    cs.push_back(sc);
  }
  row("epoch-2", Median(es), ecpu / 3, set_mb / Median(rs),
      fmt::format("raw O_DIRECT random reads, qd {} per rank", c.raw_depth));
  rows.back()["source_dir_cold_mbps"] = set_mb / Median(cs);

  // Warm: every rank's memory tier holds the set (its shares change every epoch) against
  // pread of the source files from the page cache.
  DatasetOptions mopt = dopt;
  mopt.memory_bytes = total * c.sample_size * 9 / 8 + (64 << 20);
  auto warm = Check(DatasetCache::Open(e, throttled, mopt), "dataset open (memory tier)");
  std::vector<uint64_t> all(total);
  for (uint64_t i = 0; i < total; ++i) all[i] = i;
  Epoch(all, c.threads, read_cache(*warm));  // fills this rank's tier
  Epoch(all, c.threads, pread_file);  // the files into the page cache
  std::vector<double> ws, ps;
  double wcpu = 0;
  for (int rep = 0; rep < 3; ++rep) {
    part = share(20 + rep);
    auto [sw, cw] = timed([&] { run_epoch(*warm, part); });
    ws.push_back(sw);
    wcpu += cw;
    auto [sp, cp] = timed([&] { Epoch(part, c.threads, pread_file); });
    (void)cp;
    ps.push_back(sp);
  }
  row("warm", Median(ws), wcpu / 3, set_mb / Median(ps),
      "open + pread + close of the source files from the page cache");

  // One source read per sample over all epochs and ranks.
  auto [unused, reads] = worst_and_sum(0, static_cast<double>(throttled->reads()));
  (void)unused;
  if (static_cast<uint64_t>(reads) != total) {
    Die(Status::Internal(fmt::format("{} source reads for {} samples", reads, total)),
        "one source read per sample");
  }
  if (me == 0) {
    for (auto& j : rows) {
      j["source_reads_total"] = static_cast<uint64_t>(reads);
      if (c.json) {
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%-8s %8.1f MB/s %9.0f samples/s | baseline %8.1f MB/s (%s) | ratio %.3f | %.3f CPU-s/GiB\n",
                    j["mode"].get<std::string>().c_str(), j["mbps"].get<double>(),
                    j["samples_per_s"].get<double>(), j["baseline_mbps"].get<double>(),
                    j["baseline"].get<std::string>().c_str(), j["ratio"].get<double>(),
                    j["cpu_s_per_gib"].get<double>());
        if (j.contains("source_dir_cold_mbps")) {
          std::printf("         the source directory read cold (page cache dropped): %.1f MB/s "
                      "(engine %.2fx)\n",
                      j["source_dir_cold_mbps"].get<double>(),
                      j["mbps"].get<double>() / j["source_dir_cold_mbps"].get<double>());
        }
      }
    }
    std::printf("source reads: %llu for %llu samples, %u rank(s)\n",
                static_cast<unsigned long long>(reads), static_cast<unsigned long long>(total), n);
    std::fflush(stdout);
  }
  Check(e.Barrier(), "barrier");
  warm.reset();
  cache.reset();
  return 0;
}

}  // namespace
}  // namespace shoal::bench

int main(int argc, char** argv) {
  shoal::bench::Config c;
  uint32_t ranks = 1;
  CLI::App app{"shoal-dataset-bench: the dataset cache against the machine's limits"};
  app.add_option("--dir", c.dir, "working directory (default: a temporary one under /var/tmp)");
  app.add_option("--ranks", ranks, "a world of N ranks on this machine")->capture_default_str();
  app.add_option("--samples", c.samples, "samples in the source")->capture_default_str();
  app.add_option("--sample-size", c.sample_size, "bytes per sample")->capture_default_str();
  app.add_option("--threads", c.threads, "readers per rank")->capture_default_str();
  app.add_flag("--local", c.local, "later epochs: each rank reads the samples its member holds");
  app.add_option("--batch", c.batch, "samples per ReadBatch in later epochs (1: single reads)")
      ->capture_default_str();
  app.add_option("--source-mbps", c.source_mbps, "source bandwidth B, MB/s (the world's)")
      ->capture_default_str();
  app.add_option("--source-latency-ms", c.source_latency_ms, "source latency L per request")
      ->capture_default_str();
  app.add_option("--source-inflight", c.source_inflight, "source requests in flight C (the world's)")
      ->capture_default_str();
  app.add_option("--raw-depth", c.raw_depth, "queue depth of the raw random-read baseline (per rank)")
      ->capture_default_str();
  app.add_flag("--json", c.json, "one JSON object per row");
  CLI11_PARSE(app, argc, argv);
  namespace fs = std::filesystem;
  if (shoal::bench::InWorld()) return shoal::bench::RunRank(c, c.dir);  // a spawned rank
  const bool temp = c.dir.empty();
  if (temp) {
    std::string tmpl = "/var/tmp/shoal-dataset-bench-XXXXXX";
    c.dir = ::mkdtemp(tmpl.data());
  }
  fs::create_directories(c.dir);
  shoal::bench::MakeSource(c, c.dir + "/src");
  int rc = 0;
  if (ranks > 1) {
    shoal::bench::WorldConfig wc;
    wc.ranks = ranks;
    wc.dir = c.dir;
    rc = shoal::bench::SpawnWorld(wc, argc, argv);
  } else {
    rc = shoal::bench::RunRank(c, c.dir);
  }
  if (temp) fs::remove_all(c.dir);
  return rc;
}
