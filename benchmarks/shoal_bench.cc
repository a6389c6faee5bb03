// shoal-bench: measures one shoal member against the raw disk beneath it, in the same run.
//
//   shoal-bench write    --size 2G --dir D [--json]   sequential write of one object (+ seal)
//   shoal-bench read     --size 2G --dir D [--json]   sequential read (reuses what write left)
//   shoal-bench randread --dir D [--json]             random reads of sample-sized objects
//   shoal-bench smallread --size 1G --qd 32           random 4 KiB reads of one large object
//   shoal-bench ingest   --objects 200000 --object-size 4K --put-batch 16384 --callers 2
//                                                     durable small objects through PutBatch,
//                                                     against files on the same file system
//                                                     made durable by one syncfs per batch
//   shoal-bench all      --size 2G                    all three (the README's main job)
//
// Every engine figure is printed beside the raw baseline: O_DIRECT io_uring on a file in the
// same directory, at the disk's best shape: a short sweep of block sizes and queue depths runs
// first and the fastest is used (random reads keep the sample size as block and sweep the
// depth); --raw-shape engine uses the engine's chunk size and queue depth instead. Each
// measurement is repeated (--repeat, engine and raw interleaved) and the median reported.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <thread>
#include <tuple>
#include <vector>

#include <cstring>

#include "benchmarks/progress.h"
#include "benchmarks/bench_util.h"
#include "benchmarks/raw_disk.h"
#include "benchmarks/world_bench.h"
#include "engine/buffer_pool.h"
#include "shoal/engine.h"

namespace shoal::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Config {
  std::string mode;
  uint64_t size = 2ull << 30;
  std::string dir;
  uint32_t chunk_size = 4u << 20;
  uint32_t queue_depth = 16;
  std::string backend = "auto";
  uint64_t sample_size = 128u << 10;
  uint64_t sample_bytes = 512ull << 20;
  uint64_t reads = 20000;
  uint32_t batch = 1024;
  uint64_t objects = 200000;      // ingest: objects per measurement
  uint64_t object_size = 4096;    // ingest: bytes per object
  uint32_t callers = 2;           // ingest: threads, each with its own batches
  uint32_t put_batch = 16384;     // ingest: objects per PutBatch call
  uint32_t small_read = 4096;  // smallread: bytes per read
  uint64_t read_call = 256ull << 20;
  int repeat = 3;
  bool json = false;
  bool keep = false;
  uint32_t scrub_mib_s = Options{}.scrub_rate_mib_s;  // the background scrub's rate; 0: none
  std::string raw_shape = "best";  // "best": the sweep's fastest; "engine": chunk size and qd
};

struct Figure {
  double seconds = 0;
  uint64_t bytes = 0;
  uint64_t ops = 0;
  double cpu_seconds = 0;  // the process's user + system CPU during the run (every thread)
  double mbps() const { return seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0; }
  double ops_per_s() const { return seconds > 0 ? static_cast<double>(ops) / seconds : 0; }
};

struct Row {
  std::string mode;
  Figure engine;  // median run
  Figure raw;     // median run
  double ratio = 0;  // median of the per-pair ratios engine/raw
  uint64_t block = 0;
  RawShape raw_shape;  // the raw baseline's block size and queue depth
};

// Runs fn and records the CPU the process spent meanwhile in its Figure.
template <typename F>
Figure WithCpu(F fn) {
  const double before = ProcessCpuSeconds();
  Figure f = fn();
  f.cpu_seconds = ProcessCpuSeconds() - before;
  return f;
}

// CPU-seconds per GiB moved.
double CpuPerGib(const Figure& f) {
  return f.bytes > 0 ? f.cpu_seconds / (static_cast<double>(f.bytes) / (1ull << 30)) : 0;
}

Figure MedianRun(std::vector<Figure> v) {
  std::sort(v.begin(), v.end(), [](const Figure& a, const Figure& b) { return a.seconds < b.seconds; });
  return v[v.size() / 2];
}

Figure FromRaw(const RawResult& r) { return Figure{r.seconds, r.bytes, r.ops}; }

// Fills with pseudo-random bytes: storage stacks that detect zero or repeated blocks (thin
// provisioning, compression, dedup) must not make either side of a comparison look faster.
void FillRandom(std::byte* p, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x = rng();
    std::memcpy(p + i, &x, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<std::byte>(rng());
}

class Bench {
 public:
  explicit Bench(Config c) : c_(std::move(c)) {}

  void OpenEngine() {
    Options o;
    o.store_dir = c_.dir + "/store";
    o.chunk_size = c_.chunk_size;
    o.queue_depth = c_.queue_depth;
    o.scrub_rate_mib_s = c_.scrub_mib_s;
    o.io_backend = c_.backend == "posix"      ? IoBackend::kPosix
                   : c_.backend == "io_uring" ? IoBackend::kIoUring
                                              : IoBackend::kAuto;
    engine_ = Check(Engine::Open(o), "open engine");
  }

  // --- sequential write ---
  Figure EngineWrite() {
    const std::string path = "bench/seq.bin";
    if (engine_->Stat(path).ok()) Check(engine_->Remove(path), "remove old object");
    Buffer buf(c_.chunk_size);
    FillRandom(buf.data(), c_.chunk_size, 1);
    Progress progress("write", c_.size);
    auto start = Clock::now();
    Check(engine_->Create(path, {.size = c_.size}), "create");
    for (uint64_t off = 0; off < c_.size; off += c_.chunk_size) {
      uint64_t n = std::min<uint64_t>(c_.chunk_size, c_.size - off);
      StampBlocks(buf.data(), n, off / c_.chunk_size + 1);  // every block differs
      Check(engine_->Write(path, off, buf.data(), n), "write");
      progress.Add(n);
    }
    Check(engine_->Seal(path), "seal");
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    return Figure{secs, c_.size, (c_.size + c_.chunk_size - 1) / c_.chunk_size};
  }

  Figure RawWrite() {
    Progress progress("raw write", c_.size);
    return FromRaw(Check(RawSequentialWrite(RawSeqPath(), c_.size, write_shape_.block,
                                            write_shape_.depth, &progress), "raw write"));
  }

  // --- sequential read ---
  void EnsureSequentialData() {
    auto info = engine_->Stat("bench/seq.bin");
    if (!info.ok() || info->size != c_.size) (void)EngineWrite();
    struct stat st {};
    if (c_.raw_shape != "none" &&
        (::stat(RawSeqPath().c_str(), &st) != 0 || static_cast<uint64_t>(st.st_size) != c_.size)) {
      (void)RawWrite();
    }
  }

  Figure EngineRead() {
    const std::string path = "bench/seq.bin";
    uint64_t call = std::min<uint64_t>(c_.read_call, c_.size);
    Buffer buf(call);
    Progress progress("read", c_.size);
    auto start = Clock::now();
    for (uint64_t off = 0; off < c_.size; off += call) {
      uint64_t n = std::min<uint64_t>(call, c_.size - off);
      uint64_t got = Check(engine_->Read(path, off, {buf.data(), n}), "read");
      if (got != n) Die(Status::Internal("short read"), "read");
      progress.Add(n);
    }
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    return Figure{secs, c_.size, (c_.size + c_.chunk_size - 1) / c_.chunk_size};
  }

  Figure RawRead() {
    Progress progress("raw read", c_.size);
    return FromRaw(Check(RawSequentialRead(RawSeqPath(), c_.size, read_shape_.block,
                                           read_shape_.depth, &progress), "raw read"));
  }

  // --- random reads of sample-sized objects ---
  uint64_t SampleCount() const { return std::max<uint64_t>(1, c_.sample_bytes / c_.sample_size); }
  static std::string SamplePath(uint64_t i) {
    char name[64];
    std::snprintf(name, sizeof(name), "bench/samples/%08llu", static_cast<unsigned long long>(i));
    return name;
  }

  void EnsureSamples() {
    const uint64_t n = SampleCount();
    auto last = engine_->Stat(SamplePath(n - 1));
    if (!(last.ok() && last->size == c_.sample_size)) {
      // Samples are written by several threads so their seals share metadata commits.
      Progress progress("samples", n * c_.sample_size);
      std::atomic<uint64_t> next{0};
      std::vector<std::thread> ts;
      for (int t = 0; t < 8; ++t) {
        ts.emplace_back([&] {
          std::vector<std::byte> data(c_.sample_size);
          for (uint64_t i; (i = next.fetch_add(1)) < n;) {
            FillRandom(data.data(), data.size(), i);  // every sample differs
            Status s = engine_->Put(SamplePath(i), data);
            if (!s.ok() && !s.IsAlreadyExists()) Die(s, "write sample");
            progress.Add(c_.sample_size);
          }
        });
      }
      for (auto& t : ts) t.join();
    }
    struct stat st {};
    if (::stat(RawSamplesPath().c_str(), &st) != 0 ||
        static_cast<uint64_t>(st.st_size) != n * c_.sample_size) {
      Check(RawSequentialWrite(RawSamplesPath(), n * c_.sample_size,
                               static_cast<uint32_t>(c_.sample_size), c_.queue_depth, nullptr),
            "raw samples");
    }
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<uint64_t> pick(0, n - 1);
    picks_.resize(c_.reads);
    for (auto& p : picks_) p = pick(rng);
    rand_shape_ = RawShape{static_cast<uint32_t>(c_.sample_size), c_.queue_depth, 0};
    if (c_.raw_shape == "best") {
      std::vector<uint64_t> offsets;
      for (size_t i = 0; i < std::min<size_t>(picks_.size(), 2000); ++i) {
        offsets.push_back(picks_[i] * c_.sample_size);
      }
      auto sweep = Check(SweepRawRandomDepths(RawSamplesPath(), offsets,
                                              static_cast<uint32_t>(c_.sample_size),
                                              WithOwn({16, 32, 64}, c_.queue_depth)),
                         "raw random-read sweep");
      rand_shape_ = sweep.front();
      PrintSweep("randread", offsets.size() * c_.sample_size, sweep);
    }
  }

  Figure EngineRandomRead() {
    return BatchedReads(picks_.size(), c_.sample_size, "read sample",
                        [&](size_t i) { return std::pair(SamplePath(picks_[i]), uint64_t{0}); });
  }

  // `count` reads of `size` bytes, where(i) naming read i's object and offset, in ReadBatch
  // calls of --batch (the pipeline drains per call); every read must return all its bytes.
  template <typename Where>
  Figure BatchedReads(size_t count, uint64_t size, const char* what, Where where) {
    const size_t batch = c_.batch;
    Buffer buf(batch * size);
    std::vector<ReadRequest> reqs(batch);
    auto start = Clock::now();
    for (size_t i = 0; i < count; i += batch) {
      size_t n = std::min(batch, count - i);
      for (size_t k = 0; k < n; ++k) {
        std::tie(reqs[k].path, reqs[k].offset) = where(i + k);
        reqs[k].dst = {buf.data() + k * size, size};
      }
      Check(engine_->ReadBatch({reqs.data(), n}), "read batch");
      for (size_t k = 0; k < n; ++k) {
        Check(reqs[k].status, what);
        if (reqs[k].bytes_read != size) Die(Status::Internal("short"), what);
      }
    }
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    return Figure{secs, count * size, count};
  }

  Figure RawRandomRead() {
    std::vector<uint64_t> offsets(picks_.size());
    for (size_t i = 0; i < picks_.size(); ++i) offsets[i] = picks_[i] * c_.sample_size;
    return FromRaw(Check(bench::RawRandomRead(RawSamplesPath(), offsets,
                                              static_cast<uint32_t>(c_.sample_size),
                                              rand_shape_.depth), "raw random read"));
  }

  // --- small random reads of one large object (block sums: only the blocks read) ---
  void EnsureSmallReads() {
    EnsureSequentialData();
    const uint64_t slots = c_.size / c_.small_read;
    std::mt19937_64 rng(7);
    small_offsets_.resize(c_.reads);
    for (auto& o : small_offsets_) o = rng() % slots * c_.small_read;
    small_shape_ = RawShape{c_.small_read, c_.queue_depth, 0};
    if (c_.raw_shape == "best") {
      std::vector<uint64_t> probe(small_offsets_.begin(),
                                  small_offsets_.begin() +
                                      std::min<size_t>(small_offsets_.size(), 20000));
      auto sweep = Check(SweepRawRandomDepths(RawSeqPath(), probe, c_.small_read,
                                              WithOwn({16, 32, 64}, c_.queue_depth)),
                         "raw small-read sweep");
      small_shape_ = sweep.front();
      PrintSweep("smallread", probe.size() * c_.small_read, sweep);
    }
  }

  Figure EngineSmallRead() {
    return BatchedReads(small_offsets_.size(), c_.small_read, "small read", [&](size_t i) {
      return std::pair(std::string("bench/seq.bin"), small_offsets_[i]);
    });
  }

  Figure RawSmallRead() {
    return FromRaw(Check(bench::RawRandomRead(RawSeqPath(), small_offsets_, c_.small_read,
                                              small_shape_.depth), "raw small read"));
  }

  // --- ingest: many small durable objects ---
  // Each measurement writes `objects` fresh objects (names of its own), `threads` callers each
  // with PutBatch calls of `batch` objects.
  Figure EngineIngest() {
    const uint64_t n = c_.objects, per = c_.put_batch, run = runs_++;
    std::vector<std::byte> bytes(c_.object_size * per);
    FillRandom(bytes.data(), bytes.size(), run);
    Progress progress("ingest", n);
    std::atomic<uint64_t> next{0};
    auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (uint32_t t = 0; t < c_.callers; ++t) {
      threads.emplace_back([&] {
        std::vector<PutRequest> reqs;
        for (uint64_t from; (from = next.fetch_add(per)) < n;) {
          const uint64_t count = std::min<uint64_t>(per, n - from);
          reqs.resize(count);
          for (uint64_t i = 0; i < count; ++i) {
            reqs[i].path = fmt::format("ingest/{}/{:02}/o{:09}", run, (from + i) % 64, from + i);
            reqs[i].data = {bytes.data() + i * c_.object_size, c_.object_size};
          }
          Check(engine_->PutBatch(reqs), "put batch");
          for (const PutRequest& r : reqs) Check(r.status, "put " + r.path);
          progress.Add(count);
        }
      });
    }
    for (auto& th : threads) th.join();
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    return Figure{secs, n * c_.object_size, n};
  }

  // The same objects as files (64 directories, as the engine's names), each batch made
  // durable with one syncfs: what the file system itself does at best.
  Figure RawIngest() {
    const uint64_t n = c_.objects, per = c_.put_batch, run = runs_++;
    const std::string root = fmt::format("{}/raw-ingest-{}", c_.dir, run);
    for (int d = 0; d < 64; ++d) std::filesystem::create_directories(fmt::format("{}/{:02}", root, d));
    std::vector<std::byte> bytes(c_.object_size * per);
    FillRandom(bytes.data(), bytes.size(), run);
    const int dirfd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) Check(Status::IOError("open " + root), "raw ingest");
    Progress progress("raw ingest", n);
    std::atomic<uint64_t> next{0};
    auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (uint32_t t = 0; t < c_.callers; ++t) {
      threads.emplace_back([&] {
        for (uint64_t from; (from = next.fetch_add(per)) < n;) {
          const uint64_t count = std::min<uint64_t>(per, n - from);
          for (uint64_t i = 0; i < count; ++i) {
            const std::string f = fmt::format("{}/{:02}/o{:09}", root, (from + i) % 64, from + i);
            int fd = ::open(f.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd < 0 || ::write(fd, bytes.data() + i * c_.object_size, c_.object_size) !=
                              static_cast<ssize_t>(c_.object_size)) {
              Check(Status::IOError("write " + f), "raw ingest");
            }
            ::close(fd);
          }
          if (::syncfs(dirfd) != 0) Check(Status::IOError("syncfs"), "raw ingest");
          progress.Add(count);
        }
      });
    }
    for (auto& th : threads) th.join();
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    ::close(dirfd);
    std::filesystem::remove_all(root);
    return Figure{secs, n * c_.object_size, n};
  }

  // --- the raw baseline's shape ---
  static std::vector<uint32_t> WithOwn(std::vector<uint32_t> v, uint32_t own) {
    if (std::find(v.begin(), v.end(), own) == v.end()) v.push_back(own);
    return v;
  }

  static void PrintSweep(const char* what, uint64_t bytes, const std::vector<RawShape>& sweep) {
    std::string line = fmt::format("raw {} sweep ({} MiB each):", what, bytes >> 20);
    for (const RawShape& s : sweep) {
      line += fmt::format(" {}K qd{} {:.0f} MB/s;", s.block >> 10, s.depth, s.mbps);
    }
    std::fprintf(stderr, "%s best first\n", line.c_str());
  }

  // Sequential shapes: the engine's, or the fastest of block sizes {1, 4 MiB, the chunk size}
  // x depths {4, 16, 32, the engine's}, written then read on a probe of up to 256 MiB.
  void ChooseSequentialShapes() {
    write_shape_ = read_shape_ = RawShape{c_.chunk_size, c_.queue_depth, 0};
    if (c_.raw_shape != "best") return;
    uint64_t probe = std::min<uint64_t>(c_.size, 256ull << 20);
    const RawCandidates cand = SequentialCandidates(c_.chunk_size, c_.queue_depth);
    const std::string file = c_.dir + "/raw-probe.dat";
    auto w = Check(SweepRawShapes(file, true, probe, cand.blocks, cand.depths), "raw write sweep");
    auto r = Check(SweepRawShapes(file, false, probe, cand.blocks, cand.depths), "raw read sweep");
    std::filesystem::remove(file);
    PrintSweep("write", probe, w);
    PrintSweep("read", probe, r);
    write_shape_ = w.front();
    read_shape_ = r.front();
  }

  // Runs engine and raw back to back `repeat` times, alternating which goes first so neither
  // always inherits the other's device state; reports medians and the median pair ratio.
  template <typename E, typename R>
  Row Measure(std::string mode, uint64_t block, E engine_fn, R raw_fn) {
    std::vector<Figure> e, r;
    std::vector<double> ratios;
    if (c_.raw_shape == "none") {  // the engine alone (another program compares against it)
      for (int i = 0; i < c_.repeat; ++i) e.push_back(WithCpu(engine_fn));
      return Row{std::move(mode), MedianRun(e), Figure{}, 0, block, {}};
    }
    for (int i = 0; i < c_.repeat; ++i) {
      if (i % 2 == 0) {
        r.push_back(WithCpu(raw_fn));
        e.push_back(WithCpu(engine_fn));
      } else {
        e.push_back(WithCpu(engine_fn));
        r.push_back(WithCpu(raw_fn));
      }
      ratios.push_back(r.back().mbps() > 0 ? e.back().mbps() / r.back().mbps() : 0);
    }
    return Row{std::move(mode), MedianRun(e), MedianRun(r), Median(ratios), block, {}};
  }

  std::vector<Row> Run() {
    OpenEngine();
    std::vector<Row> rows;
    const std::string& m = c_.mode;
    if (m == "write" || m == "read" || m == "all") ChooseSequentialShapes();
    if (m == "write" || m == "all") {
      rows.push_back(Measure("write", c_.chunk_size, [&] { return EngineWrite(); },
                             [&] { return RawWrite(); }));
      rows.back().raw_shape = write_shape_;
    }
    if (m == "read" || m == "all") {
      EnsureSequentialData();
      rows.push_back(Measure("read", c_.chunk_size, [&] { return EngineRead(); },
                             [&] { return RawRead(); }));
      rows.back().raw_shape = read_shape_;
    }
    if (m == "smallread") {
      if (c_.raw_shape == "best") ChooseSequentialShapes();
      EnsureSmallReads();
      rows.push_back(Measure("smallread", c_.small_read, [&] { return EngineSmallRead(); },
                             [&] { return RawSmallRead(); }));
      rows.back().raw_shape = small_shape_;
    }
    if (m == "ingest") {
      rows.push_back(Measure("ingest", c_.object_size, [&] { return EngineIngest(); },
                             [&] { return RawIngest(); }));
      rows.back().raw_shape = RawShape{static_cast<uint32_t>(c_.object_size), c_.callers, 0};
    }
    if (m == "randread" || m == "all") {
      EnsureSamples();
      rows.push_back(Measure("randread", c_.sample_size, [&] { return EngineRandomRead(); },
                             [&] { return RawRandomRead(); }));
      rows.back().raw_shape = rand_shape_;
    }
    return rows;
  }

  std::string_view backend() const { return engine_->io_backend(); }
  void Close() { engine_.reset(); }

 private:
  std::string RawSeqPath() const { return c_.dir + "/raw-seq.dat"; }
  std::string RawSamplesPath() const { return c_.dir + "/raw-samples.dat"; }

  Config c_;
  std::unique_ptr<Engine> engine_;
  std::vector<uint64_t> picks_;
  std::vector<uint64_t> small_offsets_;
  uint64_t runs_ = 0;  // ingest measurements so far (each names its objects apart)
  RawShape write_shape_, read_shape_, rand_shape_, small_shape_;
};

bool ParseSize(const std::string& s, uint64_t* out) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || v < 0) return false;
  std::string unit(end);
  for (auto& ch : unit) ch = static_cast<char>(std::toupper(ch));
  uint64_t mul = 1;
  if (unit == "" || unit == "B") mul = 1;
  else if (unit == "K" || unit == "KB" || unit == "KIB") mul = 1ull << 10;
  else if (unit == "M" || unit == "MB" || unit == "MIB") mul = 1ull << 20;
  else if (unit == "G" || unit == "GB" || unit == "GIB") mul = 1ull << 30;
  else if (unit == "T" || unit == "TB" || unit == "TIB") mul = 1ull << 40;
  else return false;
  *out = static_cast<uint64_t>(v * static_cast<double>(mul));
  return true;
}

}  // namespace
}  // namespace shoal::bench

int main(int argc, char** argv) {
  using namespace shoal::bench;
  Config c;
  CLI::App app{"shoal-bench: shoal against the raw disk (and raw UCX), measured in the same run"};
  WorldConfig wc;
  app.require_subcommand(1, 1);
  std::string size = "2G", chunk = "4M", sample = "128K", sample_bytes = "512M", read_call = "256M",
              small = "4K", object_size = "4K";
  // Each mode's subcommand has only the options that apply to it (its --help lists them, with
  // defaults; any other is refused as an unknown option). `all` runs every one-member or every
  // world mode and takes them all.
  const std::map<std::string, std::vector<std::string>> kOnly = {
      {"--sample-size", {"randread"}},
      {"--sample-bytes", {"randread"}},
      {"--reads", {"randread", "smallread"}},
      {"--read-size", {"smallread"}},
      {"--batch", {"randread", "smallread"}},
      {"--read-call", {"read"}},
      {"--scrub-mib-s", {"write", "read", "randread", "smallread", "ingest"}},
      {"--ranks", {"write", "read", "remote-read", "meta", "ckpt"}},
      {"--replicas", {"write", "read", "remote-read", "meta", "ckpt"}},
      {"--window", {"write", "read", "remote-read", "meta", "ckpt"}},
      {"--threads", {"meta"}},
      {"--files", {"meta"}},
      {"--stats", {"meta"}},
      {"--stat-lease-ms", {"meta", "remote-read"}},
      {"--callers", {"ingest"}},
      {"--put-batch", {"ingest"}},
      {"--objects", {"ingest"}},
      {"--object-size", {"ingest"}},
      {"--raw-shape", {"write", "read", "randread", "smallread", "ingest", "remote-read", "ckpt"}},
  };
  auto applies = [&](const std::string& mode, const std::string& flag) {
    auto it = kOnly.find(flag);
    return mode == "all" || it == kOnly.end() ||
           std::find(it->second.begin(), it->second.end(), mode) != it->second.end();
  };
  std::vector<std::unique_ptr<CLI::App>> not_parsed;  // the options a mode does not take
  auto add_common = [&](CLI::App* sub, const std::string& mode) {
    CLI::App* elsewhere = not_parsed.emplace_back(std::make_unique<CLI::App>()).get();
    auto opt = [&](const std::string& flag, auto& var, const std::string& help) {
      return (applies(mode, flag) ? sub : elsewhere)->add_option(flag, var, help)
          ->capture_default_str();
    };
    opt("--size", size, "bytes written/read sequentially (e.g. 2G; world modes: "
                                    "over all ranks; ckpt: per rank)");
    opt("--dir", c.dir, "directory for the store and the raw files (default: a "
                                    "temporary directory under /var/tmp, removed afterwards)");
    opt("--chunk-size", chunk, "engine chunk size = raw block size");
    opt("--qd", c.queue_depth, "queue depth of engine and raw baseline")
        ->check(CLI::Range(1, 1024));
    opt("--backend", c.backend, "engine I/O backend")
        ->check(CLI::IsMember({"auto", "io_uring", "posix"}));
    opt("--sample-size", sample, "object size of the random-read mode");
    opt("--sample-bytes", sample_bytes, "total bytes of sample objects");
    opt("--reads", c.reads, "random reads per measurement");
    opt("--read-size", small, "bytes per read of the smallread mode (4 KiB multiple)");
    opt("--batch", c.batch, "reads per ReadBatch call in the randread and smallread modes")
        ->check(CLI::Range(1, 65536));
    opt("--read-call", read_call, "bytes per Read call in the read mode");
    opt("--repeat", c.repeat, "measurements per mode; the median is reported")
        ->check(CLI::Range(1, 100));
    sub->add_flag("--json", c.json, "one JSON object per line instead of a table");
    sub->add_flag("--keep", c.keep, "keep a temporary --dir");
    opt("--raw-shape", c.raw_shape,
                    "the raw baseline's block size and queue depth: best (the fastest of a "
                    "short sweep, default) or engine (the engine's chunk size and --qd); "
                    "none: no baseline, the engine alone (write, read, ingest; for "
                    "benchmarks/python_bench.py and profiles)")
        ->check(CLI::IsMember({"best", "engine", "none"}));
    opt("--scrub-mib-s", c.scrub_mib_s,
                    "the background scrub's rate after Open (Options::scrub_rate_mib_s; 0: "
                    "none; one-member modes)");
    opt("--ranks", wc.ranks, "start a world of N ranks on this machine (each with "
                                         "its own store and node name)")
        ->check(CLI::Range(1, 256));
    opt("--replicas", wc.replicas, "copies of every chunk and inode (world modes)")
        ->check(CLI::Range(1, 16));
    opt("--window", wc.window, "chunk requests in flight per call (world modes)")
        ->check(CLI::Range(1, 1024));
    opt("--threads", wc.threads, "metadata clients per rank (meta mode)")
        ->check(CLI::Range(1, 256));
    opt("--callers", c.callers, "threads calling PutBatch (ingest mode)")
        ->check(CLI::Range(1, 256));
    opt("--put-batch", c.put_batch, "objects per PutBatch call (ingest mode)")
        ->check(CLI::Range(1, 65536));
    opt("--objects", c.objects, "objects per measurement (ingest mode)")
        ->check(CLI::Range(1, 100000000));
    opt("--object-size", object_size, "bytes per object (ingest mode)");
    opt("--files", wc.files, "objects created by all ranks (meta mode)");
    opt("--stats", wc.stats, "stats by all ranks (meta mode)");
    opt("--stat-lease-ms", wc.stat_lease_ms,
                    "Options::stat_lease_ms of the world's ranks (default: the engine's)");
  };
  for (const char* m :
       {"write", "read", "randread", "smallread", "ingest", "remote-read", "meta", "ckpt", "all"}) {
    add_common(app.add_subcommand(m, std::string("mode ") + m)->callback([&c, m] { c.mode = m; }),
               m);
  }
  CLI11_PARSE(app, argc, argv);

  uint64_t v = 0;
  auto parse = [&](const std::string& s, const char* name, uint64_t* out) {
    if (!ParseSize(s, out) || *out == 0) {
      std::fprintf(stderr, "shoal-bench: bad %s '%s' (use e.g. 512M, 2G)\n", name, s.c_str());
      std::exit(2);
    }
  };
  parse(size, "--size", &c.size);
  parse(chunk, "--chunk-size", &v);
  c.chunk_size = static_cast<uint32_t>(v);
  parse(sample, "--sample-size", &c.sample_size);
  parse(sample_bytes, "--sample-bytes", &c.sample_bytes);
  parse(read_call, "--read-call", &c.read_call);
  parse(small, "--read-size", &v);
  if (v % 4096 != 0 || v > c.chunk_size || v > c.size) {
    std::fprintf(stderr, "shoal-bench: --read-size must be a multiple of 4 KiB, at most the "
                         "chunk size and --size\n");
    return 2;
  }
  c.small_read = static_cast<uint32_t>(v);
  parse(object_size, "--object-size", &c.object_size);
  if (c.mode == "ingest") {
    if (c.object_size > c.chunk_size) {
      std::fprintf(stderr, "shoal-bench: --object-size must be at most the chunk size\n");
      return 2;
    }
  }
  if (c.size % c.chunk_size != 0 || c.sample_size % 4096 != 0 || c.read_call % 4096 != 0) {
    std::fprintf(stderr, "shoal-bench: --size must be a multiple of --chunk-size, and "
                         "--sample-size and --read-call multiples of 4 KiB\n");
    return 2;
  }

  const bool world = wc.ranks > 1 || InWorld();
  if (!world && (c.mode == "remote-read" || c.mode == "meta" || c.mode == "ckpt")) {
    std::fprintf(stderr, "shoal-bench: mode %s needs a world: add --ranks N\n", c.mode.c_str());
    return 2;
  }
  if (c.raw_shape == "none" &&
      (world || (c.mode != "write" && c.mode != "read" && c.mode != "ingest"))) {
    std::fprintf(stderr, "shoal-bench: --raw-shape none is for the one-member write, read and "
                         "ingest modes\n");
    return 2;
  }
  if (world && (c.mode == "randread" || c.mode == "smallread" || c.mode == "ingest")) {
    std::fprintf(stderr, "shoal-bench: %s runs on one member (drop --ranks)\n", c.mode.c_str());
    return 2;
  }
  if (world) {
    wc.mode = c.mode;
    wc.size = c.size;
    wc.chunk_size = c.chunk_size;
    wc.queue_depth = c.queue_depth;
    wc.repeat = c.repeat;
    wc.json = c.json;
    wc.raw_shape = c.raw_shape;
    if (InWorld()) {  // a rank: spawned by --ranks below, or started by torchrun / mpirun
      if (c.dir.empty()) {
        std::fprintf(stderr, "shoal-bench: a rank needs --dir\n");
        return 2;
      }
      wc.dir = c.dir;
      return RunWorldMember(wc);
    }
  }

  const bool temp = c.dir.empty();
  if (temp) {
    char tmpl[] = "/var/tmp/shoal-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    c.dir = tmpl;
  } else {
    std::filesystem::create_directories(c.dir);
  }

  if (world) {  // start the ranks: this program again, each told where the world lives
    wc.dir = c.dir;
    int rc = SpawnWorld(wc, argc, argv);
    if (temp && !c.keep) std::filesystem::remove_all(c.dir);
    return rc;
  }

  Bench bench(c);
  std::vector<Row> rows = bench.Run();
  std::string backend(bench.backend());
  bench.Close();

  if (c.json) {
    for (const Row& r : rows) {
      nlohmann::json j = {
          {"mode", r.mode},
          {"bytes", r.engine.bytes},
          {"block_size", r.block},
          {"queue_depth", c.queue_depth},
          {"backend", backend},
          {"seconds", r.engine.seconds},
          {"mbps", r.engine.mbps()},
          {"ops_per_s", r.engine.ops_per_s()},
          {"baseline_mbps", r.raw.mbps()},
          {"baseline_ops_per_s", r.raw.ops_per_s()},
          {"ratio", r.ratio},
          {"cpu_s_per_gib", CpuPerGib(r.engine)},
          {"baseline_cpu_s_per_gib", CpuPerGib(r.raw)},
          {"baseline_block_size", r.raw_shape.block},
          {"baseline_queue_depth", r.raw_shape.depth},
          {"repeat", c.repeat},
      };
      std::printf("%s\n", j.dump().c_str());
    }
  } else {
    std::printf("shoal-bench  dir %s  backend %s  chunk %u KiB  qd %u  median of %d\n",
                c.dir.c_str(), backend.c_str(), c.chunk_size >> 10, c.queue_depth, c.repeat);
    std::printf("%-9s %10s %8s | %12s %11s %8s | %12s %11s %8s | %6s\n", "mode", "bytes",
                "block", "engine MB/s", "ops/s", "CPU s/GiB", "raw MB/s", "ops/s", "CPU s/GiB",
                "ratio");
    for (const Row& r : rows) {
      std::printf("%-9s %10llu %7lluK | %12.1f %11.0f %8.3f | %12.1f %11.0f %8.3f | %6.3f\n",
                  r.mode.c_str(), static_cast<unsigned long long>(r.engine.bytes),
                  static_cast<unsigned long long>(r.block >> 10), r.engine.mbps(),
                  r.engine.ops_per_s(), CpuPerGib(r.engine), r.raw.mbps(), r.raw.ops_per_s(),
                  CpuPerGib(r.raw), r.ratio);
    }
    std::printf("raw baseline shapes (%s):", c.raw_shape == "best" ? "the fastest of the sweep"
                                                                    : "the engine's");
    for (const Row& r : rows) {
      std::printf(" %s %uK qd%u;", r.mode.c_str(), r.raw_shape.block >> 10, r.raw_shape.depth);
    }
    std::printf("\n");
  }
  if (temp && !c.keep) std::filesystem::remove_all(c.dir);
  return 0;
}
