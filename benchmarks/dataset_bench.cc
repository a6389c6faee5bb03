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
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "benchmarks/bench_util.h"
#include "benchmarks/raw_disk.h"
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

int Run(const Config& c) {
  namespace fs = std::filesystem;
  std::string base = c.dir;
  bool temp = base.empty();
  if (temp) {
    std::string tmpl = "/var/tmp/shoal-dataset-bench-XXXXXX";
    base = ::mkdtemp(tmpl.data());
  }
  const std::string src = base + "/src";
  // The source: samples in 64 class directories, distinct bytes in every 4 KiB block.
  std::vector<std::string> names;
  {
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
      names.push_back(name);
    }
  }
  Options o;
  o.store_dir = base + "/store";
  auto engine = Check(Engine::Open(o), "open");
  auto throttled = std::make_shared<Throttled>(DirectorySource(src), c);
  DatasetOptions dopt;
  dopt.root = "bench/dataset";
  dopt.warm_threads = c.threads;
  auto cache = Check(DatasetCache::Open(*engine, throttled, dopt), "dataset open");
  std::mt19937_64 rng(42);
  std::vector<uint64_t> order(cache->size());
  for (uint64_t i = 0; i < order.size(); ++i) order[i] = i;
  auto read_cache = [&](DatasetCache& dc) {
    return [&dc](uint64_t i, std::vector<std::byte>& buf) {
      buf.resize(std::max<size_t>(buf.size(), 1 << 20));
      Check(dc.Read(i, buf).status(), "dataset read");
    };
  };
  std::vector<nlohmann::json> rows;
  auto row = [&](const std::string& mode, double secs, double base_mbps, const std::string& base_what,
                 double cpu) {
    const double bytes = static_cast<double>(order.size() * c.sample_size);
    nlohmann::json j;
    j["mode"] = mode;
    j["samples"] = order.size();
    j["sample_size"] = c.sample_size;
    j["threads"] = c.threads;
    j["mbps"] = bytes / 1e6 / secs;
    j["samples_per_s"] = order.size() / secs;
    j["baseline"] = base_what;
    j["baseline_mbps"] = base_mbps;
    j["ratio"] = bytes / 1e6 / secs / base_mbps;
    j["cpu_s_per_gib"] = cpu / (bytes / (1ull << 30));
    j["source_reads_total"] = throttled->reads();
    rows.push_back(j);
  };

  // Epoch 1: every sample a miss, through the throttle.
  std::shuffle(order.begin(), order.end(), rng);
  double cpu0 = ProcessCpuSeconds();
  double s1 = Epoch(order, c.threads, read_cache(*cache));
  const double limit = std::min(c.source_mbps, c.source_inflight * (c.sample_size / 1e6) /
                                                   (c.source_latency_ms / 1e3));
  row("epoch-1", s1, limit, "source limit min(B, C x S / L)", ProcessCpuSeconds() - cpu0);

  // Epoch 2: from the store's disk, against raw random reads of the same size.
  const std::string raw = base + "/raw";
  Check(RawSequentialWrite(raw, order.size() * c.sample_size, static_cast<uint32_t>(c.sample_size),
                           16, nullptr).status(), "raw write");
  std::vector<uint64_t> offsets(order.size());
  for (size_t k = 0; k < order.size(); ++k) offsets[k] = order[k] * c.sample_size;
  std::vector<double> es, rs;
  double ecpu = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t k = 0; k < order.size(); ++k) offsets[k] = order[k] * c.sample_size;
    DropPageCache();
    cpu0 = ProcessCpuSeconds();
    es.push_back(c.batch > 1 ? BatchEpoch(*cache, order, c.threads, c.batch, c.sample_size)
                             : Epoch(order, c.threads, read_cache(*cache)));
    ecpu += ProcessCpuSeconds() - cpu0;
    auto r = Check(RawRandomRead(raw, offsets, static_cast<uint32_t>(c.sample_size), c.raw_depth),
                   "raw random read");
    rs.push_back(r.seconds);
  }
  row("epoch-2", Median(es), order.size() * c.sample_size / 1e6 / Median(rs),
      fmt::format("raw O_DIRECT random reads, qd {}", c.raw_depth), ecpu / 3);
  rows.back()["batch"] = c.batch;

  // Warm: the memory tier against the page cache.
  DatasetOptions mopt = dopt;
  mopt.memory_bytes = order.size() * c.sample_size * 9 / 8 + (64 << 20);
  auto warm = Check(DatasetCache::Open(*engine, throttled, mopt), "dataset open (memory tier)");
  Epoch(order, c.threads, read_cache(*warm));  // fills the tier
  auto pread_file = [&](uint64_t i, std::vector<std::byte>& buf) {
    buf.resize(c.sample_size);
    const std::string path = src + "/" + Check(cache->info(i), "info").name;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::pread(fd, buf.data(), buf.size(), 0) != static_cast<ssize_t>(buf.size())) {
      Die(Status::IOError("page-cache read"), path);
    }
    ::close(fd);
  };
  Epoch(order, c.threads, pread_file);  // the files into the page cache
  std::vector<double> ws, ps;
  double wcpu = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::shuffle(order.begin(), order.end(), rng);
    cpu0 = ProcessCpuSeconds();
    ws.push_back(c.batch > 1 ? BatchEpoch(*warm, order, c.threads, c.batch, c.sample_size)
                             : Epoch(order, c.threads, read_cache(*warm)));
    wcpu += ProcessCpuSeconds() - cpu0;
    ps.push_back(Epoch(order, c.threads, pread_file));
  }
  row("warm", Median(ws), order.size() * c.sample_size / 1e6 / Median(ps),
      "open + pread + close of the source files from the page cache", wcpu / 3);

  if (throttled->reads() != order.size()) {
    Die(Status::Internal(fmt::format("{} source reads for {} samples", throttled->reads(),
                                     order.size())), "one source read per sample");
  }
  for (auto& j : rows) {
    if (c.json) {
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%-8s %8.1f MB/s %9.0f samples/s | baseline %8.1f MB/s (%s) | ratio %.3f | %.3f CPU-s/GiB\n",
                  j["mode"].get<std::string>().c_str(), j["mbps"].get<double>(),
                  j["samples_per_s"].get<double>(), j["baseline_mbps"].get<double>(),
                  j["baseline"].get<std::string>().c_str(), j["ratio"].get<double>(),
                  j["cpu_s_per_gib"].get<double>());
    }
  }
  std::printf("source reads: %llu for %llu samples\n",
              static_cast<unsigned long long>(throttled->reads()),
              static_cast<unsigned long long>(order.size()));
  warm.reset();
  cache.reset();
  engine.reset();
  if (temp) fs::remove_all(base);
  return 0;
}

}  // namespace
}  // namespace shoal::bench

int main(int argc, char** argv) {
  shoal::bench::Config c;
  CLI::App app{"shoal-dataset-bench: the dataset cache on one member against the machine's limits"};
  app.add_option("--dir", c.dir, "working directory (default: a temporary one under /var/tmp)");
  app.add_option("--samples", c.samples, "samples in the source")->capture_default_str();
  app.add_option("--sample-size", c.sample_size, "bytes per sample")->capture_default_str();
  app.add_option("--threads", c.threads, "readers")->capture_default_str();
  app.add_option("--batch", c.batch, "samples per ReadBatch in later epochs (1: single reads)")
      ->capture_default_str();
  app.add_option("--source-mbps", c.source_mbps, "source bandwidth B, MB/s")->capture_default_str();
  app.add_option("--source-latency-ms", c.source_latency_ms, "source latency L per request")
      ->capture_default_str();
  app.add_option("--source-inflight", c.source_inflight, "source requests in flight C")
      ->capture_default_str();
  app.add_option("--raw-depth", c.raw_depth, "queue depth of the raw random-read baseline")
      ->capture_default_str();
  app.add_flag("--json", c.json, "one JSON object per row");
  CLI11_PARSE(app, argc, argv);
  return shoal::bench::Run(c);
}
