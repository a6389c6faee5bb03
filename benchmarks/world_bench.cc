#include "benchmarks/world_bench.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <string_view>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "benchmarks/bench_util.h"
#include "benchmarks/raw_disk.h"
#include "benchmarks/raw_ucx.h"
#include "bindings/cli/launcher.h"
#include "engine/buffer_pool.h"
#include "shoal/checkpoint.h"
#include "shoal/engine.h"
#include "transport/launch_info.h"

namespace shoal::bench {
namespace {

using Clock = std::chrono::steady_clock;
using Bytes = std::vector<std::byte>;

struct Row {
  std::string mode;
  uint64_t bytes = 0, ops = 0, block = 0;
  double seconds = 0;
  std::optional<double> baseline_mbps, disk_mbps, ucx_mbps, ratio;
  // ckpt modes: the users' baseline (a file per rank, write + fsync / read) and, for the async
  // row, one memory copy of the state and the save's total time.
  std::optional<double> file_mbps, ratio_vs_file, copy_seconds, total_seconds;
  // ckpt-async: where the blocked time goes (slowest rank per phase, medians).
  std::vector<std::pair<std::string, double>> phases;
  // CPU-seconds (user + system, every rank process, all threads) per GiB moved (per 1,000 ops
  // for metadata rows), of the engine's runs and of each baseline's.
  std::optional<double> cpu_per_unit, baseline_cpu_per_unit, disk_cpu_per_unit, ucx_cpu_per_unit;
  // The raw-disk baseline's block size and queue depth (0: the row has none).
  uint32_t raw_block = 0, raw_depth = 0;
  double mbps() const { return seconds > 0 ? bytes / 1e6 / seconds : 0; }
  double ops_per_s() const { return seconds > 0 ? ops / seconds : 0; }
};

class Member {
 public:
  Member(const WorldConfig& c, std::unique_ptr<Engine> e)
      : c_(c), e_(std::move(e)), rank_(e_->rank()), n_(e_->world_size()) {}

  // Every rank runs fn after a barrier; returns the slowest rank's seconds. The CPU every rank
  // process spent meanwhile, summed, goes to last_cpu_.
  template <typename Fn>
  double Timed(Fn fn) {
    Check(e_->Barrier(), "barrier");
    const double cpu0 = ProcessCpuSeconds();
    auto t0 = Clock::now();
    fn();
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    const auto [worst, cpu] = WorstAndSum(secs, ProcessCpuSeconds() - cpu0);
    last_cpu_ = cpu;
    return worst;
  }

  // Collective: the largest of every rank's `mine`.
  double Worst(double mine) { return WorstAndSum(mine, 0).first; }

  // Collective: the largest of every rank's `mine` and the sum of every rank's `add`.
  std::pair<double, double> WorstAndSum(double mine, double add) {
    Bytes b(2 * sizeof(double));
    std::memcpy(b.data(), &mine, sizeof(double));
    std::memcpy(b.data() + sizeof(double), &add, sizeof(double));
    auto all = Check(e_->AllGather(b), "all-gather");
    double worst = 0, sum = 0;
    for (auto& x : all) {
      double v = 0, a = 0;
      std::memcpy(&v, x.data(), sizeof(double));
      std::memcpy(&a, x.data() + sizeof(double), sizeof(double));
      worst = std::max(worst, v);
      sum += a;
    }
    return {worst, sum};
  }
  static double Gib(uint64_t bytes) { return static_cast<double>(bytes) / (1ull << 30); }

  // A --dir of an earlier run keeps its stores (the world reopens them) but not its bench
  // objects: rank 0 removes what an earlier run left under bench/ and bench-ckpt/ (an object of
  // the same name would make this run's Create fail) and says so, before any rank starts.
  void ClearEarlierRun() {
    if (rank_ == 0) {
      uint64_t removed = 0;
      std::function<void(const std::string&)> clear = [&](const std::string& dir) {
        ListOptions lo;
        for (;;) {
          auto page = e_->List(dir, lo);
          if (!page.ok()) return;  // NotFound: nothing there
          for (const DirEntry& d : page->entries) {
            const std::string p = dir + "/" + d.name;
            if (d.is_dir) {
              clear(p);
            } else if (e_->Remove(p).ok()) {
              removed++;
            }
          }
          if (!page->truncated) return;
          lo.start_after = page->next_start_after;
        }
      };
      clear("bench");
      clear("bench-ckpt");
      if (removed > 0) {
        std::fprintf(stderr, "shoal-bench: %llu object(s) of an earlier run removed from the stores in %s\n",
                     static_cast<unsigned long long>(removed), c_.dir.c_str());
      }
    }
    Check(e_->Barrier(), "barrier");
  }

  std::vector<Row> Run() {
    ClearEarlierRun();
    std::vector<Row> rows;
    const std::string& m = c_.mode;
    per_rank_ = c_.size / n_ / c_.chunk_size * c_.chunk_size;
    if (per_rank_ == 0) per_rank_ = c_.chunk_size;
    if (m != "meta") ChooseRawShapes(m == "ckpt" ? c_.size / c_.chunk_size * c_.chunk_size : per_rank_);
    if (m == "write" || m == "read" || m == "all") {
      rows.push_back(Write());
      SetShape(rows.back(), write_shape_);
      if (m != "write") {
        rows.push_back(Read());
        SetShape(rows.back(), read_shape_);
      }
    }
    if (m == "remote-read" || m == "all") {
      rows.push_back(RemoteRead());
      SetShape(rows.back(), read_shape_);
    }
    if (m == "meta" || m == "all") {
      for (Row& r : Meta()) rows.push_back(r);
    }
    if (m == "ckpt") {
      for (Row& r : Ckpt()) rows.push_back(r);
      SetShape(rows[0], write_shape_);
      SetShape(rows[1], read_shape_);
    }
    return rows;
  }

  // The raw-disk baseline's shapes: the engine's chunk size and queue depth (--raw-shape
  // engine), or the fastest of a collective sweep: every rank writes, then reads, a probe file
  // of up to 128 MiB at each block size {1 MiB, 4 MiB, the chunk size} that divides the chunk
  // size x queue depth {4, 16, 32, the engine's}, all ranks at once as the baselines run; the
  // aggregate of the slowest rank decides, so every rank picks the same shape.
  void ChooseRawShapes(uint64_t bytes_per_rank) {
    write_shape_ = read_shape_ = RawShape{c_.chunk_size, c_.queue_depth, 0};
    if (c_.raw_shape != "best") return;
    const uint64_t probe =
        std::max<uint64_t>(c_.chunk_size, std::min<uint64_t>(bytes_per_rank, 128ull << 20) /
                                              c_.chunk_size * c_.chunk_size);
    const RawCandidates cand = SequentialCandidates(c_.chunk_size, c_.queue_depth);
    const std::string file = RawPath("probe");
    for (bool write : {true, false}) {
      std::vector<RawShape> sweep;
      for (uint32_t b : cand.blocks) {
        for (uint32_t d : cand.depths) {
          double secs = Timed([&] {
            Check((write ? RawSequentialWrite(file, probe, b, d, nullptr)
                         : RawSequentialRead(file, probe, b, d, nullptr)).status(),
                  "raw sweep");
          });
          sweep.push_back(RawShape{b, d, secs > 0 ? probe * n_ / 1e6 / secs : 0});
        }
      }
      std::sort(sweep.begin(), sweep.end(),
                [](const RawShape& a, const RawShape& b) { return a.mbps > b.mbps; });
      (write ? write_shape_ : read_shape_) = sweep.front();
      if (rank_ == 0) {
        std::string line = fmt::format("raw {} sweep ({} ranks x {} MiB each):",
                                       write ? "write" : "read", n_, probe >> 20);
        for (const RawShape& r : sweep) {
          line += fmt::format(" {}K qd{} {:.0f} MB/s;", r.block >> 10, r.depth, r.mbps);
        }
        std::fprintf(stderr, "%s best first\n", line.c_str());
      }
    }
    std::filesystem::remove(file);
  }

  static void SetShape(Row& row, const RawShape& shape) {
    row.raw_block = shape.block;
    row.raw_depth = shape.depth;
  }

  uint32_t rank() const { return rank_; }
  uint32_t size() const { return n_; }

 private:
  // The users' baseline: this rank's state to a file with write(2) + fsync, its page cache
  // dropped afterwards (a restart reads from the device), and read back with read(2).
  void FileWrite(const std::string& path, const std::byte* p, uint64_t n) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) Die(Status::IOError("open"), path);
    for (uint64_t off = 0; off < n;) {
      ssize_t w = ::write(fd, p + off, std::min<uint64_t>(n - off, 64ull << 20));
      if (w <= 0) Die(Status::IOError("write"), path);
      off += static_cast<uint64_t>(w);
    }
    if (::fsync(fd) != 0) Die(Status::IOError("fsync"), path);
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
  void FileRead(const std::string& path, std::byte* p, uint64_t n) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) Die(Status::IOError("open"), path);
    for (uint64_t off = 0; off < n;) {
      ssize_t r = ::read(fd, p + off, std::min<uint64_t>(n - off, 64ull << 20));
      if (r <= 0) Die(Status::IOError("read"), path);
      off += static_cast<uint64_t>(r);
    }
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }

  // Checkpoint save and restore of `size` bytes per rank (blobs of up to 128 MiB), each beside
  // the raw O_DIRECT disk and the users' file-per-rank baseline; then async saves: the time
  // Save+Commit block the caller against one memcpy of the state.
  std::vector<Row> Ckpt() {
    const uint64_t per = c_.size / c_.chunk_size * c_.chunk_size;
    const uint64_t piece = 128ull << 20;
    Buffer state(per), back(per);
    StampBlocks(state.data(), per, rank_ + 1);
    std::memset(back.data(), 0, per);  // touched: page faults are not the engine's
    CheckpointOptions co;
    co.root = "bench-ckpt";
    co.keep_last = 1;
    auto ck = Check(Checkpointer::Open(*e_, co), "checkpointer");
    auto blobs = [&](auto&& fn) {
      for (uint64_t off = 0, i = 0; off < per; off += piece, ++i) {
        fn(fmt::format("r{}/shard-{}", rank_, i), off, std::min(piece, per - off));
      }
    };
    int tag = 0;
    double phase[3] = {0, 0, 0};  // this rank's last save: Begin, the Save calls, Commit
    auto save = [&](Checkpointer& k) {
      auto t0 = Clock::now();
      auto s = Check(k.Begin(fmt::format("t-{}", ++tag)), "begin");
      auto t1 = Clock::now();
      blobs([&](const std::string& name, uint64_t off, uint64_t n) {
        Check(s->Save(name, std::span<const std::byte>(state.data() + off, n)), "save " + name);
      });
      auto t2 = Clock::now();
      SaveHandle h = s->Commit("{}");
      auto t3 = Clock::now();
      phase[0] = std::chrono::duration<double>(t1 - t0).count();
      phase[1] = std::chrono::duration<double>(t2 - t1).count();
      phase[2] = std::chrono::duration<double>(t3 - t2).count();
      return h;
    };
    auto restore = [&](int) {
      auto latest = Check(ck->Latest(), "latest");
      auto m = Check(ck->GetManifest(latest), "manifest");
      blobs([&](const std::string& name, uint64_t off, uint64_t n) {
        Check(ck->Load(m, name, std::span<std::byte>(back.data() + off, n)), "load " + name);
      });
    };
    // Engine against the raw disk, as every other row (alternating pairs, median ratio).
    std::vector<Row> rows;
    rows.push_back(Pair(
        "ckpt-save", per * n_, [&](int) { Check(save(*ck).Wait(), "commit"); },
        [&](int) {
          Check(RawSequentialWrite(RawPath("ckpt"), per, write_shape_.block, write_shape_.depth, nullptr)
                    .status(), "raw write");
        }));
    rows.push_back(Pair("ckpt-restore", per * n_, restore, [&](int) {
      Check(RawSequentialRead(RawPath("ckpt"), per, read_shape_.block, read_shape_.depth, nullptr)
                .status(), "raw read");
    }));
    if (std::memcmp(state.data(), back.data(), per) != 0) Die(Status::Corruption("restore"), "ckpt");
    // The users' baseline: a file per rank.
    const std::string file = RawPath("ckpt-file");
    std::vector<double> fw, fr;
    for (int i = 0; i < c_.repeat; ++i) {
      fw.push_back(Timed([&] { FileWrite(file, state.data(), per); }));
      fr.push_back(Timed([&] { FileRead(file, back.data(), per); }));
    }
    for (auto [row, f] : {std::pair{&rows[0], &fw}, std::pair{&rows[1], &fr}}) {
      row->file_mbps = row->bytes / 1e6 / Median(*f);
      row->ratio_vs_file = Median(*f) / row->seconds;
    }

    // Async: a pool that holds the whole state, so Save only copies.
    CheckpointOptions ao = co;
    ao.async = true;
    ao.staging_bytes = per + (8ull << 20);
    auto ack = Check(Checkpointer::Open(*e_, ao), "async checkpointer");
    Buffer copy(per);
    std::memset(copy.data(), 0, per);
    std::vector<double> blocked, copied, totals, phases[3];
    for (int i = 0; i < c_.repeat + 1; ++i) {  // the first one allocates the pool: not counted
      SaveHandle h;
      double b = Timed([&] { h = save(*ack); });
      auto start = Clock::now();
      Check(h.Wait(), "async commit");
      double rest = std::chrono::duration<double>(Clock::now() - start).count();
      double worst_phase[3] = {Worst(phase[0]), Worst(phase[1]), Worst(phase[2])};
      double c = Timed([&] { std::memcpy(copy.data(), state.data(), per); });
      if (i == 0) continue;
      blocked.push_back(b);
      copied.push_back(c);
      totals.push_back(b + rest);
      for (int k = 0; k < 3; ++k) phases[k].push_back(worst_phase[k]);
    }
    Row a;
    a.mode = "ckpt-async";
    a.bytes = per * n_;
    a.block = c_.chunk_size;
    a.seconds = Median(blocked);
    a.copy_seconds = Median(copied);
    a.total_seconds = Median(totals);
    a.ratio = *a.copy_seconds / a.seconds;
    a.phases = {{"begin", Median(phases[0])}, {"save_calls", Median(phases[1])},
                {"commit", Median(phases[2])}};
    rows.push_back(a);
    return rows;
  }

  std::string RawPath(const std::string& what) const {
    return fmt::format("{}/raw-{}-{}.dat", c_.dir, what, rank_);
  }
  std::string Object(int rep) const { return fmt::format("bench/w{}-{}", rank_, rep); }

  void EngineWriteOnce(const std::string& path, uint64_t bytes, uint64_t stamp) {
    const uint64_t call = 64ull << 20;
    Buffer buf(std::min(bytes, call));
    Check(e_->Create(path, {.size = bytes}), "create " + path);
    for (uint64_t off = 0; off < bytes; off += call) {
      uint64_t n = std::min(call, bytes - off);
      StampBlocks(buf.data(), n, stamp * 1000003 + off / 4096 + 1);
      Check(e_->Write(path, off, buf.data(), n), "write " + path);
    }
    Check(e_->Seal(path), "seal " + path);
  }

  // Medians of engine and raw over `repeat` back-to-back pairs (alternating order) and the
  // median pair ratio.
  template <typename E, typename R>
  Row Pair(std::string mode, uint64_t bytes, E engine_fn, R raw_fn) {
    std::vector<double> es, rs, ratios;
    double ecpu = 0, rcpu = 0;
    for (int i = 0; i < c_.repeat; ++i) {
      double e = 0, r = 0;
      if (i % 2 == 0) {
        r = Timed([&] { raw_fn(i); });
        rcpu += last_cpu_;
        e = Timed([&] { engine_fn(i); });
        ecpu += last_cpu_;
      } else {
        e = Timed([&] { engine_fn(i); });
        ecpu += last_cpu_;
        r = Timed([&] { raw_fn(i); });
        rcpu += last_cpu_;
      }
      es.push_back(e);
      rs.push_back(r);
      ratios.push_back(r / e);
    }
    Row row;
    row.mode = std::move(mode);
    row.bytes = bytes;
    row.block = c_.chunk_size;
    row.ops = bytes / c_.chunk_size;
    row.seconds = Median(es);
    row.baseline_mbps = bytes / 1e6 / Median(rs);
    row.ratio = Median(ratios);
    row.cpu_per_unit = ecpu / (Gib(bytes) * c_.repeat);
    row.baseline_cpu_per_unit = rcpu / (Gib(bytes) * c_.repeat);
    return row;
  }

  Row Write() {
    const uint64_t total = per_rank_ * n_;
    Row row = Pair(
        "write", total,
        [&](int rep) { EngineWriteOnce(Object(rep), per_rank_, rank_ * 100 + rep); },
        [&](int) {
          Check(RawSequentialWrite(RawPath("seq"), per_rank_, write_shape_.block,
                                   write_shape_.depth, nullptr).status(),
                "raw write");
        });
    last_ = Object(c_.repeat - 1);
    for (int rep = 0; rep + 1 < c_.repeat; ++rep) Check(e_->Remove(Object(rep)), "remove");
    return row;
  }

  Row Read() {
    Buffer buf(256ull << 20);
    const uint64_t total = per_rank_ * n_;
    return Pair(
        "read", total,
        [&](int) {
          for (uint64_t off = 0; off < per_rank_; off += 256ull << 20) {
            uint64_t n = std::min<uint64_t>(256ull << 20, per_rank_ - off);
            auto got = Check(e_->Read(last_, off, std::span<std::byte>(buf.data(), n)), "read");
            if (got != n) Die(Status::Internal("short read"), last_);
          }
        },
        [&](int) {
          Check(RawSequentialRead(RawPath("seq"), per_rank_, read_shape_.block,
                                  read_shape_.depth, nullptr).status(),
                "raw read");
        });
  }

  // Rank 1 reads the chunks of rank 0's object that only other members hold.
  Row RemoteRead() {
    if (n_ < 2) Die(Status::InvalidArgument("remote-read needs --ranks 2 or more"), "remote-read");
    const std::string path = "bench/remote";
    if (rank_ == 0) {
      if (e_->Stat(path).ok()) Check(e_->Remove(path), "remove");
      EngineWriteOnce(path, c_.size / c_.chunk_size * c_.chunk_size, 7);
    }
    Check(e_->Barrier(), "barrier");
    std::vector<ReadRequest> reqs;
    uint64_t remote_bytes = 0;
    const uint64_t batch = 32;
    Buffer buf(batch * c_.chunk_size);
    if (rank_ == 1) {
      auto where = Check(e_->Locate(path), "locate");
      for (uint64_t i = 0; i < where.size(); ++i) {
        if (std::find(where[i].begin(), where[i].end(), 1u) != where[i].end()) continue;
        reqs.push_back({path, i * c_.chunk_size, {}, {}, 0});
        remote_bytes += c_.chunk_size;
      }
    }
    // Everyone learns the byte count (rank 1's) for the baselines.
    Bytes mine(8);
    std::memcpy(mine.data(), &remote_bytes, 8);
    auto all = Check(e_->AllGather(mine), "all-gather");
    std::memcpy(&remote_bytes, all[1].data(), 8);
    if (remote_bytes == 0) Die(Status::Internal("no chunk of the object is remote"), "remote-read");
    if (rank_ == 0) {  // the raw file rank 0's disk would serve
      Check(RawSequentialWrite(RawPath("remote"), remote_bytes, write_shape_.block,
                               write_shape_.depth, nullptr).status(), "raw write");
    }
    // UCX at its best between the same two processes (benchmarks/raw_ucx.h): one-sided gets
    // of chunk-sized pieces from rank 0's registered buffer into rank 1's, as many in flight as
    // the engine's window; rank 0 progresses its worker meanwhile (UCX's TCP emulation of RMA
    // needs it) until rank 1 says it is done.
    auto raw = Check(RawUcx::Create(static_cast<size_t>(c_.window) * c_.chunk_size), "raw UCX");
    auto blobs = Check(e_->AllGather(raw->Blob()), "all-gather");
    if (rank_ == 1) Check(raw->Connect(0, blobs[0]), "raw UCX connect");

    std::vector<double> es, ds, us, ratios;
    double ecpu = 0, dcpu = 0, ucpu = 0;
    for (int i = 0; i < c_.repeat; ++i) {
      double e = Timed([&] {
        if (rank_ != 1) return;
        for (size_t b = 0; b < reqs.size(); b += batch) {
          size_t k = std::min<size_t>(batch, reqs.size() - b);
          for (size_t j = 0; j < k; ++j) {
            reqs[b + j].dst = std::span<std::byte>(buf.data() + j * c_.chunk_size, c_.chunk_size);
          }
          Check(e_->ReadBatch(std::span(reqs).subspan(b, k)), "read batch");
          for (size_t j = 0; j < k; ++j) Check(reqs[b + j].status, "remote chunk read");
        }
      });
      ecpu += last_cpu_;
      double d = Timed([&] {
        if (rank_ != 0) return;
        Check(RawSequentialRead(RawPath("remote"), remote_bytes, read_shape_.block,
                                read_shape_.depth, nullptr).status(), "raw read");
      });
      dcpu += last_cpu_;
      double u = Timed([&] {
        if (rank_ == 0) {
          Check(raw->ServeUntil(static_cast<uint64_t>(i) + 1, std::chrono::seconds(120)),
                "raw UCX serve");
        } else if (rank_ == 1) {
          Check(raw->Read(0, remote_bytes, c_.chunk_size, c_.window).status(), "raw UCX read");
        }
      });
      ucpu += last_cpu_;
      es.push_back(e);
      ds.push_back(d);
      us.push_back(u);
      ratios.push_back((remote_bytes / e) / std::min(remote_bytes / d, remote_bytes / u));
    }
    Check(e_->Barrier(), "barrier");
    raw.reset();
    Row row;
    row.mode = "remote-read";
    row.bytes = remote_bytes;
    row.block = c_.chunk_size;
    row.ops = remote_bytes / c_.chunk_size;
    row.seconds = Median(es);
    row.disk_mbps = remote_bytes / 1e6 / Median(ds);
    row.ucx_mbps = remote_bytes / 1e6 / Median(us);
    row.baseline_mbps = std::min(*row.disk_mbps, *row.ucx_mbps);
    row.ratio = Median(ratios);
    const double moved = Gib(remote_bytes) * c_.repeat;
    row.cpu_per_unit = ecpu / moved;
    row.disk_cpu_per_unit = dcpu / moved;
    row.ucx_cpu_per_unit = ucpu / moved;
    return row;
  }

  std::vector<Row> Meta() {
    const uint64_t per_rank = c_.files / n_;
    const uint64_t total = per_rank * n_;
    const uint32_t t = c_.threads;
    auto name = [](uint64_t r, uint64_t i) { return fmt::format("meta/d/f{}-{:08}", r, i); };
    auto parallel = [&](uint64_t count, auto&& op) {
      std::vector<std::thread> threads;
      for (uint32_t k = 0; k < t; ++k) {
        threads.emplace_back([&, k] {
          for (uint64_t i = k; i < count; i += t) op(k, i);
        });
      }
      for (auto& th : threads) th.join();
    };
    std::string payload(100, 'x');
    double create = Timed([&] {
      parallel(per_rank, [&](uint32_t, uint64_t i) {
        Check(e_->Put(name(rank_, i), payload), "put");
      });
    });
    const double create_cpu = last_cpu_;
    // Stats: each rank looks up stats/N distinct names (a rotation of all of them, so ranks ask
    // different owners), first all at once in StatBatch calls of 1,024 names per thread (cold:
    // the first stat of each name), then each again with Stat (warm: within the lease, the
    // names other members own come from this rank's cache, Engine::Stat).
    const uint64_t stats_per_rank = std::min<uint64_t>(c_.stats / n_, total);
    auto stat_name = [&](uint64_t i) {
      const uint64_t j = (rank_ * stats_per_rank + i) % total;
      return name(j / per_rank, j % per_rank);
    };
    const uint64_t batch = 1024;
    // Both in one phase: a collective (the phases' barrier) ends the lease (Engine::Stat).
    double cold_secs = 0, warm_secs = 0, cold_cpu = 0, warm_cpu = 0;
    (void)Timed([&] {
      double cpu0 = ProcessCpuSeconds();
      auto t0 = Clock::now();
      parallel((stats_per_rank + batch - 1) / batch, [&](uint32_t, uint64_t b) {
        std::vector<StatRequest> reqs;
        for (uint64_t i = b * batch; i < std::min(stats_per_rank, (b + 1) * batch); ++i) {
          reqs.push_back({stat_name(i), {}, {}});
        }
        Check(e_->StatBatch(reqs), "stat batch");
        for (const StatRequest& q : reqs) {
          Check(q.status, "stat " + q.path);
          if (q.info.size != payload.size()) Die(Status::Internal("stat size"), q.path);
        }
      });
      auto t1 = Clock::now();
      double cpu1 = ProcessCpuSeconds();
      parallel(stats_per_rank, [&](uint32_t, uint64_t i) {
        const std::string n = stat_name(i);
        auto info = Check(e_->Stat(n), "stat");
        if (info.size != payload.size()) Die(Status::Internal("stat size"), n);
      });
      cold_secs = std::chrono::duration<double>(t1 - t0).count();
      warm_secs = std::chrono::duration<double>(Clock::now() - t1).count();
      cold_cpu = cpu1 - cpu0;
      warm_cpu = ProcessCpuSeconds() - cpu1;
    });
    // Slowest rank's time and every rank's CPU, per part.
    const auto [stat_cold, stat_cold_cpu] = WorstAndSum(cold_secs, cold_cpu);
    const auto [stat, stat_cpu] = WorstAndSum(warm_secs, warm_cpu);
    uint64_t listed = 0;
    double list = Timed([&] {
      if (rank_ != 0) return;
      ListOptions lo;
      lo.limit = 1000000;
      for (;;) {
        auto page = Check(e_->List("meta/d", lo), "list");
        for (const DirEntry& d : page.entries) {
          if (d.size != payload.size()) Die(Status::Internal("list size"), d.name);
        }
        listed += page.entries.size();
        if (!page.truncated) break;
        lo.start_after = page.next_start_after;
      }
    });
    const double list_cpu = last_cpu_;
    if (rank_ == 0 && listed != total) {
      Die(Status::Internal(fmt::format("listed {} entries, created {}", listed, total)), "list");
    }
    Check(e_->Barrier(), "barrier");
    auto row = [](std::string mode, uint64_t ops, double s, double cpu) {
      Row r;
      r.mode = std::move(mode);
      r.ops = ops;
      r.seconds = s;
      r.cpu_per_unit = ops > 0 ? cpu / (static_cast<double>(ops) / 1000) : 0;
      return r;
    };
    return {row("create", total, create, create_cpu),
            row("stat-cold", stats_per_rank * n_, stat_cold, stat_cold_cpu),
            row("stat-warm", stats_per_rank * n_, stat, stat_cpu),
            row("list", total, list, list_cpu)};
  }

  const WorldConfig& c_;
  std::unique_ptr<Engine> e_;
  uint32_t rank_, n_;
  uint64_t per_rank_ = 0;
  std::string last_;
  RawShape write_shape_, read_shape_;  // the raw-disk baselines' (ChooseRawShapes)
  double last_cpu_ = 0;  // Timed's: CPU-seconds of every rank process during its last run
};

void Print(const WorldConfig& c, uint32_t ranks, const std::vector<Row>& rows) {
  if (c.json) {
    for (const Row& r : rows) {
      auto opt = [](const std::optional<double>& v) {
        return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
      };
      nlohmann::json j = {{"mode", r.mode},
                          {"ranks", ranks},
                          {"replicas", c.replicas},
                          {"bytes", r.bytes},
                          {"block_size", r.block},
                          {"seconds", r.seconds},
                          {"mbps", r.mbps()},
                          {"ops", r.ops},
                          {"ops_per_s", r.ops_per_s()},
                          {"baseline_mbps", opt(r.baseline_mbps)},
                          {"ratio", opt(r.ratio)},
                          {"repeat", c.repeat}};
      if (r.disk_mbps) j["baseline_disk_mbps"] = *r.disk_mbps;
      if (r.ucx_mbps) j["baseline_ucx_mbps"] = *r.ucx_mbps;
      if (r.file_mbps) j["baseline_file_fsync_mbps"] = *r.file_mbps;
      if (r.ratio_vs_file) j["ratio_vs_file"] = *r.ratio_vs_file;
      if (r.copy_seconds) j["memcpy_seconds"] = *r.copy_seconds;
      if (r.total_seconds) j["total_seconds"] = *r.total_seconds;
      for (const auto& [name, secs] : r.phases) j["phases_seconds"][name] = secs;
      // Per GiB moved, or per 1,000 ops for the metadata rows (which move no bytes).
      const std::string unit = r.bytes > 0 ? "gib" : "kop";
      if (r.cpu_per_unit) j["cpu_s_per_" + unit] = *r.cpu_per_unit;
      if (r.baseline_cpu_per_unit) j["baseline_cpu_s_per_" + unit] = *r.baseline_cpu_per_unit;
      if (r.disk_cpu_per_unit) j["baseline_disk_cpu_s_per_gib"] = *r.disk_cpu_per_unit;
      if (r.ucx_cpu_per_unit) j["baseline_ucx_cpu_s_per_gib"] = *r.ucx_cpu_per_unit;
      if (r.raw_block != 0) {
        j["baseline_block_size"] = r.raw_block;
        j["baseline_queue_depth"] = r.raw_depth;
      }
      std::printf("%s\n", j.dump().c_str());
    }
    return;
  }
  std::printf("shoal-bench  %u ranks  replicas %u  chunk %u KiB  qd %u  window %u  median of %d\n",
              ranks, c.replicas, c.chunk_size >> 10, c.queue_depth, c.window, c.repeat);
  std::printf("%-11s %11s %8s | %12s %11s %9s | %13s %9s | %6s  %s\n", "mode", "bytes",
              "seconds", "engine MB/s", "ops/s", "CPU s/u", "baseline MB/s", "CPU s/u",
              "ratio", "baseline");
  for (const Row& r : rows) {
    std::string base =
        r.mode == "remote-read"
            ? fmt::format("min(raw disk {:.1f}, raw UCX {:.1f})", *r.disk_mbps, *r.ucx_mbps)
        : r.file_mbps ? fmt::format("raw O_DIRECT per rank; file+fsync per rank {:.1f} MB/s "
                                    "(engine {:.2f}x)", *r.file_mbps, *r.ratio_vs_file)
        : r.copy_seconds ? fmt::format("save blocked {:.3f} s (Begin {:.3f}, Save calls {:.3f}, "
                                       "Commit {:.3f}) vs one memcpy of the state {:.3f} s "
                                       "(ratio = memcpy/blocked); whole save {:.3f} s",
                                       r.seconds, r.phases[0].second, r.phases[1].second,
                                       r.phases[2].second, *r.copy_seconds, *r.total_seconds)
        : r.baseline_mbps ? std::string("raw O_DIRECT file per rank")
                          : std::string("-");
    auto cpu = [](const std::optional<double>& v) {
      return v ? fmt::format("{:.3f}", *v) : std::string("-");
    };
    const std::optional<double> base_cpu =
        r.baseline_cpu_per_unit ? r.baseline_cpu_per_unit : r.disk_cpu_per_unit;
    std::printf("%-11s %11llu %8.3f | %12.1f %11.0f %9s | %13s %9s | %6s  %s\n", r.mode.c_str(),
                static_cast<unsigned long long>(r.bytes), r.seconds, r.mbps(), r.ops_per_s(),
                cpu(r.cpu_per_unit).c_str(),
                r.baseline_mbps ? fmt::format("{:.1f}", *r.baseline_mbps).c_str() : "-",
                cpu(base_cpu).c_str(), r.ratio ? fmt::format("{:.3f}", *r.ratio).c_str() : "-",
                base.c_str());
  }
  std::printf("CPU s/u: CPU-seconds of every rank process (user + system, all threads) per GiB "
              "moved, or per 1,000 ops for create/stat/list%s\n",
              std::any_of(rows.begin(), rows.end(),
                          [](const Row& r) { return r.ucx_cpu_per_unit.has_value(); })
                  ? "; remote-read's baseline column is the raw disk's (raw UCX's in --json)"
                  : "");
  std::string shapes;
  for (const Row& r : rows) {
    if (r.raw_block != 0) shapes += fmt::format(" {} {}K qd{};", r.mode, r.raw_block >> 10, r.raw_depth);
  }
  if (!shapes.empty()) std::printf("raw disk shapes (%s):%s\n", c.raw_shape == "best" ? "the fastest of the sweep" : "the engine's", shapes.c_str());
}

}  // namespace

bool InWorld() {
  auto li = transport::LaunchInfoFromEnv();
  return li.ok() && li->world_size > 1;
}

// The ranks are started by the launcher `shoal run` uses (bindings/cli/launcher.h): this
// binary again, with --dir added when it was not given; only rank 0 prints.
int SpawnWorld(const WorldConfig& c, int argc, char** argv) {
  // The stores of a run with another rank count are not this world's (a majority of theirs
  // would be missing, or new members added): start clean. The same count: reuse them.
  std::error_code ec;
  std::vector<std::filesystem::path> stores;
  for (const auto& d : std::filesystem::directory_iterator(c.dir, ec)) {
    if (d.path().filename().string().rfind("rank-", 0) == 0) stores.push_back(d.path());
  }
  if (!stores.empty() && stores.size() != c.ranks) {
    std::fprintf(stderr, "shoal-bench: %s holds the stores of a %zu-rank run; starting clean with %u\n",
                 c.dir.c_str(), stores.size(), c.ranks);
    for (const auto& s : stores) std::filesystem::remove_all(s, ec);
  } else if (!stores.empty()) {
    std::fprintf(stderr, "shoal-bench: reusing the %zu stores in %s\n", stores.size(), c.dir.c_str());
  }
  cli::LaunchSpec spec;
  spec.ranks = c.ranks;
  spec.node_prefix = "bench-node-";
  spec.prefix_output = false;
  spec.argv.assign(argv, argv + argc);
  spec.argv[0] = "/proc/self/exe";
  if (std::none_of(argv, argv + argc, [](const char* a) { return std::string_view(a) == "--dir"; })) {
    spec.argv.push_back("--dir");
    spec.argv.push_back(c.dir);
  }
  auto rc = cli::RunRanks(spec);
  if (!rc.ok()) {
    std::fprintf(stderr, "shoal-bench: starting %u ranks: %s\n", c.ranks,
                 rc.status().ToString().c_str());
    return 1;
  }
  return *rc;
}

int RunWorldMember(const WorldConfig& c) {
  auto li = Check(transport::LaunchInfoFromEnv(), "launcher environment");
  Options o;
  o.store_dir = fmt::format("{}/rank-{}", c.dir, li.rank);
  o.chunk_size = c.chunk_size;
  o.queue_depth = c.queue_depth;
  o.replicas = c.replicas;
  o.window = c.window;
  if (c.stat_lease_ms) o.stat_lease_ms = *c.stat_lease_ms;
  auto e = Check(Engine::Open(o), "open engine (rank " + std::to_string(li.rank) + ")");
  Member m(c, std::move(e));
  std::vector<Row> rows = m.Run();
  if (m.rank() == 0) Print(c, m.size(), rows);
  std::fflush(stdout);
  return 0;
}

}  // namespace shoal::bench
