// The dataset cache on one member over real files and a real store: the index built once and
// kept, reads through the cache with one source read per sample, versions, failing sources,
// batches, warm-up. Worlds of processes: dataset_world_test.cc.
#include "shoal/dataset.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "lib/dataset_index.h"
#include "lib/dataset_memory_tier.h"
#include "shoal/engine.h"
#include "tests/test_util.h"

namespace shoal {
namespace {

using testing::TempDir;
namespace fs = std::filesystem;

std::string Str(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// The content of sample `name` at revision `rev`: sizes 0 .. ~200 KiB.
std::string SampleContent(const std::string& name, int rev = 0) {
  const size_t n = (std::hash<std::string>{}(name) % 200000) + (name.size() % 3 == 0 ? 0 : 1);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + name.size() * 7 + rev) & 0xff);
  return s;
}

void WriteFile(const fs::path& p, const std::string& content) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
}

// A source that counts what it is asked and can fail, stall, or change samples.
class CountingSource : public DatasetSource {
 public:
  explicit CountingSource(std::shared_ptr<DatasetSource> inner) : inner_(std::move(inner)) {}
  Result<std::vector<SampleInfo>> List(uint32_t part, uint32_t parts) override {
    lists++;
    return inner_->List(part, parts);
  }
  Result<SampleInfo> Stat(std::string_view name) override { return inner_->Stat(name); }
  Result<uint64_t> Read(std::string_view name, std::span<std::byte> dst) override {
    {
      std::lock_guard lk(mu);
      reads[std::string(name)]++;
      if (fail.count(std::string(name)) != 0) return Status::IOError("injected source failure");
    }
    if (stall.count() > 0) std::this_thread::sleep_for(stall);
    return inner_->Read(name, dst);
  }
  int ReadsOf(const std::string& name) {
    std::lock_guard lk(mu);
    return reads[name];
  }
  int TotalReads() {
    std::lock_guard lk(mu);
    int n = 0;
    for (auto& [k, v] : reads) n += v;
    return n;
  }

  std::atomic<int> lists{0};
  std::mutex mu;
  std::map<std::string, int> reads;
  std::set<std::string> fail;
  std::chrono::milliseconds stall{0};

 private:
  std::shared_ptr<DatasetSource> inner_;
};

class DatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A tree: top-level files, nested directories, an empty file, a link to a file, a link to
    // a directory (not followed), a fifo (not a sample).
    for (int d = 0; d < 6; ++d) {
      for (int f = 0; f < 7; ++f) {
        std::string name = fmt::format("class-{}/img-{:03}.bin", d, f);
        if (d == 5) name = fmt::format("class-5/deep/er/img-{:03}.bin", f);
        names_.push_back(name);
      }
    }
    names_.push_back("top.bin");
    names_.push_back("empty.bin");
    for (const std::string& n : names_) {
      WriteFile(fs::path(src_.Sub("data")) / n, n == "empty.bin" ? "" : SampleContent(n));
    }
    fs::create_symlink(fs::path(src_.Sub("data")) / "top.bin", fs::path(src_.Sub("data")) / "link.bin");
    names_.push_back("link.bin");
    fs::create_directory_symlink(fs::path(src_.Sub("data")) / "class-0",
                                 fs::path(src_.Sub("data")) / "dirlink");
    std::sort(names_.begin(), names_.end());
    OpenEngine();
    source_ = std::make_shared<CountingSource>(DirectorySource(src_.Sub("data")));
  }

  void OpenEngine() {
    engine_.reset();
    Options o = testing::TestOptions(dir_.Sub("store"), IoBackend::kAuto);
    o.world_size = 1;
    o.rank = 0;
    auto e = Engine::Open(o);
    ASSERT_OK(e);
    engine_ = std::move(e).value();
  }

  std::unique_ptr<DatasetCache> OpenCache(DatasetOptions o = {}) {
    o.root = "datasets/test";
    auto c = DatasetCache::Open(*engine_, source_, o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  std::string ReadName(DatasetCache& c, const std::string& name) {
    auto i = c.Find(name);
    EXPECT_TRUE(i.ok()) << name;
    if (!i.ok()) return "<absent>";
    std::vector<std::byte> buf(c.info(*i)->size);
    auto n = c.Read(*i, buf);
    EXPECT_TRUE(n.ok()) << name << ": " << n.status().ToString();
    if (!n.ok()) return "<error>";
    return Str(std::span(buf).first(*n));
  }

  TempDir dir_, src_;
  std::vector<std::string> names_;
  std::unique_ptr<Engine> engine_;
  std::shared_ptr<CountingSource> source_;
};

TEST_F(DatasetTest, TheIndexListsEveryFileOnceAndIsKeptForTheNextOpen) {
  auto c = OpenCache();
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->size(), names_.size());
  for (uint64_t i = 0; i < c->size(); ++i) {
    auto s = c->info(i);
    ASSERT_OK(s);
    EXPECT_EQ(s->name, names_[i]) << "indices follow name order";
    const std::string want = s->name == "empty.bin" ? "" : SampleContent(s->name == "link.bin" ? "top.bin" : s->name);
    EXPECT_EQ(s->size, want.size()) << s->name;
    EXPECT_FALSE(s->version.empty());
  }
  EXPECT_CODE(c->info(c->size()), kInvalidArgument);
  EXPECT_CODE(c->Find("dirlink/img-000.bin"), kNotFound);  // a link to a directory: not followed
  EXPECT_EQ(source_->lists.load(), 1);
  const uint64_t gen = c->generation();
  c.reset();
  // A restarted job (a new engine on the same store) lists nothing at the source.
  OpenEngine();
  c = OpenCache();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(source_->lists.load(), 1);
  EXPECT_EQ(c->generation(), gen);
  EXPECT_EQ(c->size(), names_.size());
  // refresh lists again, into a new generation; the old one is removed.
  DatasetOptions o;
  o.refresh = true;
  c = OpenCache(o);
  EXPECT_EQ(source_->lists.load(), 2);
  EXPECT_GT(c->generation(), gen);
  auto latest = dataset::LatestGeneration(*engine_, "datasets/test");
  ASSERT_OK(latest);
  EXPECT_EQ(**latest, c->generation());
  EXPECT_CODE(engine_->Stat(fmt::format("datasets/test/index/{:020}/complete", gen)), kNotFound);
}

TEST_F(DatasetTest, EverySampleIsReadFromTheSourceOnceThenFromTheCache) {
  auto c = OpenCache();
  for (int round = 0; round < 3; ++round) {
    for (const std::string& n : names_) {
      const std::string want =
          n == "empty.bin" ? "" : SampleContent(n == "link.bin" ? "top.bin" : n);
      ASSERT_EQ(ReadName(*c, n), want) << n << " round " << round;
    }
  }
  for (const std::string& n : names_) EXPECT_EQ(source_->ReadsOf(n), 1) << n;
  DatasetStats s = c->stats();
  EXPECT_EQ(s.misses, names_.size());
  EXPECT_EQ(s.hits, 2 * names_.size());
  EXPECT_EQ(s.source_reads, names_.size());
  EXPECT_GT(s.source_bytes, 0u);
  // The same counts in the engine's metrics (Engine::GetStats, the Prometheus endpoint).
  Stats m = engine_->GetStats();
  EXPECT_EQ(m.counters["dataset.hits"], s.hits);
  EXPECT_EQ(m.counters["dataset.misses"], s.misses);
  EXPECT_EQ(m.counters["dataset.source_reads"], s.source_reads);
  EXPECT_EQ(m.counters["dataset.source_bytes"], s.source_bytes);
  EXPECT_EQ(m.histograms["dataset.source_read.latency_ns"].count, s.source_reads);
  // The cache outlives the job: a new engine and cache read nothing from the source.
  c.reset();
  OpenEngine();
  c = OpenCache();
  for (const std::string& n : names_) ASSERT_NE(ReadName(*c, n), "<error>");
  EXPECT_EQ(source_->TotalReads(), static_cast<int>(names_.size()));
  // A buffer too small is refused with the size, and nothing is read.
  std::vector<std::byte> small(3);
  auto i = c->Find("top.bin");
  ASSERT_OK(i);
  auto r = c->Read(*i, small);
  EXPECT_CODE(r, kInvalidArgument);
  EXPECT_NE(r.status().message().find("top.bin"), std::string::npos);
  EXPECT_CODE(c->Read(std::string_view("no/such.bin"), small), kNotFound);
}

TEST_F(DatasetTest, ConcurrentMissesOfOneSampleAreOneSourceRead) {
  auto c = OpenCache();
  source_->stall = std::chrono::milliseconds(100);  // every reader arrives while the first reads
  const std::string name = "class-1/img-003.bin";
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      std::vector<std::byte> buf(300000);
      auto n = c->Read(std::string_view(name), buf);
      if (n.ok() && Str(std::span(buf).first(*n)) == SampleContent(name)) good++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 8);
  EXPECT_EQ(source_->ReadsOf(name), 1);
  EXPECT_EQ(c->stats().waited, 7u);
}

TEST_F(DatasetTest, AChangedFileIsCachedUnderItsNewVersionAtItsNextLoad) {
  auto c = OpenCache();
  const std::string a = "class-2/img-001.bin", b = "class-2/img-002.bin";
  ASSERT_EQ(ReadName(*c, a), SampleContent(a));
  // a changes after it was cached: hits serve the cached copy (no source round trip) ...
  WriteFile(fs::path(src_.Sub("data")) / a, "changed, and shorter");
  EXPECT_EQ(ReadName(*c, a), SampleContent(a));
  // ... b changes before its first load: the load sees the new version and caches that.
  WriteFile(fs::path(src_.Sub("data")) / b, "b, rewritten before anyone read it");
  std::vector<std::byte> buf(300000);
  auto n = c->Read(std::string_view(b), buf);
  ASSERT_OK(n);
  EXPECT_EQ(Str(std::span(buf).first(*n)), "b, rewritten before anyone read it");
  EXPECT_EQ(c->info(*c->Find(b))->size, *n) << "the index follows the change";
  EXPECT_EQ(c->stats().version_changes, 1u);
  // verify_on_hit: a changed sample is never served.
  DatasetOptions o;
  o.verify_on_hit = true;
  auto v = OpenCache(o);
  n = v->Read(std::string_view(a), buf);
  ASSERT_OK(n);
  EXPECT_EQ(Str(std::span(buf).first(*n)), "changed, and shorter");
  // Refresh takes every change into the index; unchanged samples stay cached.
  const int before = source_->TotalReads();
  ASSERT_OK(c->Refresh());
  EXPECT_EQ(ReadName(*c, a), "changed, and shorter");
  EXPECT_EQ(ReadName(*c, "class-3/img-000.bin"), SampleContent("class-3/img-000.bin"));
  EXPECT_EQ(source_->TotalReads(), before + 1) << "class-3/img-000.bin was not cached yet";
  EXPECT_EQ(ReadName(*c, "class-3/img-000.bin"), SampleContent("class-3/img-000.bin"));
  EXPECT_EQ(source_->TotalReads(), before + 1);
}

TEST_F(DatasetTest, ABatchThatFindsASampleGrownRefusesItsTooSmallBufferAndWritesNothingPast) {
  DatasetOptions o;
  o.verify_on_hit = true;
  auto c = OpenCache(o);
  const std::string a = "class-1/img-001.bin";
  ASSERT_EQ(ReadName(*c, a), SampleContent(a));
  const size_t was = SampleContent(a).size();
  WriteFile(fs::path(src_.Sub("data")) / a, std::string(was + 5000, 'g'));  // grows
  // Its new version gets cached by one reader; another, whose index has the old size, batches.
  std::vector<std::byte> big(was + 5000);
  EXPECT_CODE(c->Read(std::string_view(a), std::span(big).first(was)), kInvalidArgument);
  ASSERT_OK(c->Read(std::string_view(a), big));
  c = OpenCache(o);
  ASSERT_EQ(c->info(*c->Find(a))->size, was) << "the kept index has the size listed";
  std::vector<std::byte> buf(was + 64, std::byte{0x5a});
  std::vector<SampleRead> reads(1);
  reads[0].name = a;
  reads[0].dst = std::span(buf).first(was);  // the size the index had
  ASSERT_OK(c->ReadBatch(reads));
  EXPECT_CODE(reads[0].status, kInvalidArgument);
  for (size_t i = was; i < buf.size(); ++i) ASSERT_EQ(buf[i], std::byte{0x5a}) << "written past at " << i;
  EXPECT_EQ(c->info(*c->Find(a))->size, was + 5000) << "the index follows the change";
  buf.assign(was + 5000, std::byte{0});
  reads[0].dst = std::span(buf);
  ASSERT_OK(c->ReadBatch(reads));
  ASSERT_OK(reads[0].status);
  EXPECT_EQ(Str(std::span(buf).first(reads[0].bytes)), std::string(was + 5000, 'g'));
}

TEST_F(DatasetTest, AFailingOrMissingSourceGivesThatSampleAnErrorAndCachesNothing) {
  auto c = OpenCache();
  const std::string bad = "class-4/img-004.bin", gone = "class-4/img-005.bin";
  source_->fail.insert(bad);
  fs::remove(fs::path(src_.Sub("data")) / gone);
  std::vector<std::byte> buf(300000);
  auto r = c->Read(std::string_view(bad), buf);
  EXPECT_CODE(r, kIOError);
  EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().ToString();
  r = c->Read(std::string_view(gone), buf);
  EXPECT_CODE(r, kNotFound);
  EXPECT_NE(r.status().message().find(gone), std::string::npos) << r.status().ToString();
  // Nothing half-made stays: once the source recovers the sample loads, once.
  source_->fail.clear();
  EXPECT_EQ(ReadName(*c, bad), SampleContent(bad));
  EXPECT_EQ(ReadName(*c, bad), SampleContent(bad));
  EXPECT_EQ(source_->ReadsOf(bad), 2);
  // Other samples are unaffected.
  EXPECT_EQ(ReadName(*c, "class-4/img-000.bin"), SampleContent("class-4/img-000.bin"));
}

TEST_F(DatasetTest, BatchesMixHitsMissesAndErrors) {
  auto c = OpenCache();
  ASSERT_EQ(ReadName(*c, "class-0/img-000.bin"), SampleContent("class-0/img-000.bin"));
  std::vector<std::vector<std::byte>> bufs(names_.size() + 2, std::vector<std::byte>(300000));
  std::vector<SampleRead> reads(names_.size() + 2);
  for (size_t k = 0; k < names_.size(); ++k) {
    reads[k].index = k;
    reads[k].dst = bufs[k];
  }
  reads[names_.size()].name = "absent.bin";
  reads[names_.size()].dst = bufs[names_.size()];
  reads[names_.size() + 1].index = 1;
  reads[names_.size() + 1].dst = std::span(bufs[names_.size() + 1]).first(1);  // too small
  ASSERT_OK(c->ReadBatch(reads));
  for (size_t k = 0; k < names_.size(); ++k) {
    ASSERT_OK(reads[k].status) << names_[k];
    const std::string want = names_[k] == "empty.bin"
                                 ? ""
                                 : SampleContent(names_[k] == "link.bin" ? "top.bin" : names_[k]);
    EXPECT_EQ(Str(std::span(bufs[k]).first(reads[k].bytes)), want) << names_[k];
  }
  EXPECT_CODE(reads[names_.size()].status, kNotFound);
  EXPECT_CODE(reads[names_.size() + 1].status, kInvalidArgument);
  EXPECT_EQ(c->stats().hits, 1u);  // class-0/img-000.bin, read once before the batch
  for (const std::string& n : names_) EXPECT_EQ(source_->ReadsOf(n), 1) << n;
}

TEST_F(DatasetTest, WarmLoadsEverythingOnceWithProgress) {
  auto c = OpenCache();
  std::atomic<uint64_t> last{0}, calls{0};
  ASSERT_OK(c->Warm({}, [&](uint64_t done, uint64_t total) {
    calls++;
    EXPECT_LE(done, total);
    last = std::max<uint64_t>(last, done);
  }));
  EXPECT_EQ(calls.load(), names_.size());
  EXPECT_EQ(last.load(), names_.size());
  EXPECT_EQ(source_->TotalReads(), static_cast<int>(names_.size()));
  // A second warm-up finds everything cached; reads are hits.
  ASSERT_OK(c->Warm());
  EXPECT_EQ(source_->TotalReads(), static_cast<int>(names_.size()));
  for (const std::string& n : names_) ASSERT_NE(ReadName(*c, n), "<error>");
  EXPECT_EQ(c->stats().hits, names_.size());
}

// Finds `needle` in a file under `dir` and flips a bit of its first byte.
bool FlipIn(const std::string& dir, const std::vector<std::byte>& needle) {
  const std::string n(reinterpret_cast<const char*>(needle.data()), needle.size());
  for (auto& f : fs::recursive_directory_iterator(dir)) {
    if (!f.is_regular_file()) continue;
    std::ifstream in(f.path(), std::ios::binary);
    std::string hay((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t pos = hay.find(n);
    if (pos == std::string::npos) continue;
    std::fstream io(f.path(), std::ios::binary | std::ios::in | std::ios::out);
    io.seekp(static_cast<std::streamoff>(pos));
    io.put(static_cast<char>(hay[pos] ^ 0x01));
    return true;
  }
  return false;
}

TEST_F(DatasetTest, ADamagedCachedCopyIsReadFromTheSourceAgainNeverReportedLost) {
  const auto unique = testing::Pattern(150000, 77);
  WriteFile(fs::path(src_.Sub("data")) / "unique.bin",
            std::string(reinterpret_cast<const char*>(unique.data()), unique.size()));
  auto c = OpenCache();
  std::vector<std::byte> buf(200000);
  ASSERT_OK(c->Read(std::string_view("unique.bin"), buf));
  c.reset();
  engine_.reset();
  ASSERT_TRUE(FlipIn(dir_.Sub("store/chunks"),
                     std::vector<std::byte>(unique.begin() + 70000, unique.begin() + 70064)));
  OpenEngine();
  c = OpenCache();
  auto n = c->Read(std::string_view("unique.bin"), buf);
  ASSERT_OK(n);
  EXPECT_EQ(std::vector<std::byte>(buf.begin(), buf.begin() + static_cast<long>(*n)), unique);
  EXPECT_EQ(c->stats().refetched, 1u);
  EXPECT_EQ(source_->ReadsOf("unique.bin"), 2);
  // Cached again, whole: the next read is a hit.
  ASSERT_OK(c->Read(std::string_view("unique.bin"), buf));
  EXPECT_EQ(source_->ReadsOf("unique.bin"), 2);
  EXPECT_EQ(c->stats().hits, 1u);
}

TEST_F(DatasetTest, AClaimItsHolderAbandonedIsTakenOverAFreshOneIsWaitedFor) {
  DatasetOptions o;
  o.fetch_wait = std::chrono::milliseconds(300);
  auto c = OpenCache(o);
  const std::string a = "class-3/img-001.bin", b = "class-3/img-002.bin";
  // Another rank's lease on the sample's claim name (holder 7, as a dead or a slow rank).
  auto claim = [&](const std::string& name, std::chrono::milliseconds ttl) {
    auto i = c->Find(name);
    const std::string path = dataset::ClaimPath("datasets/test", name, c->info(*i)->version);
    auto l = engine_->TryLease(path, 7, ttl);
    EXPECT_OK(l);
    EXPECT_TRUE(l.ok() && l->granted);
  };
  // A lease whose holder died (it ran out): taken over at once, the sample cached.
  claim(a, std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(ReadName(*c, a), SampleContent(a));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(250));
  EXPECT_EQ(ReadName(*c, a), SampleContent(a));
  EXPECT_EQ(source_->ReadsOf(a), 1);
  EXPECT_EQ(c->stats().hits, 1u);
  // A fresh lease nobody fulfils: the reader waits fetch_wait, then serves the source (uncached).
  claim(b, std::chrono::seconds(10));
  start = std::chrono::steady_clock::now();
  EXPECT_EQ(ReadName(*c, b), SampleContent(b));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(250));
  EXPECT_EQ(c->stats().uncached, 1u);
}

TEST_F(DatasetTest, TheMemoryTierServesAWarmEpochAndStaysWithinItsBytes) {
  DatasetOptions o;
  o.memory_bytes = 8 << 20;  // the whole set (~4 MiB)
  auto c = OpenCache(o);
  for (int round = 0; round < 2; ++round) {
    for (const std::string& n : names_) ASSERT_NE(ReadName(*c, n), "<error>");
  }
  DatasetStats s = c->stats();
  EXPECT_EQ(s.memory_hits, names_.size()) << "the second epoch came from memory";
  EXPECT_LE(s.memory_bytes, o.memory_bytes);
  EXPECT_GT(s.memory_bytes, 0u);
  // A batch is served from memory too.
  std::vector<std::vector<std::byte>> bufs(names_.size(), std::vector<std::byte>(300000));
  std::vector<SampleRead> reads(names_.size());
  for (size_t k = 0; k < reads.size(); ++k) {
    reads[k].index = k;
    reads[k].dst = bufs[k];
  }
  ASSERT_OK(c->ReadBatch(reads));
  for (size_t k = 0; k < reads.size(); ++k) {
    ASSERT_OK(reads[k].status);
    const std::string want = names_[k] == "empty.bin"
                                 ? ""
                                 : SampleContent(names_[k] == "link.bin" ? "top.bin" : names_[k]);
    EXPECT_EQ(Str(std::span(bufs[k]).first(reads[k].bytes)), want);
  }
  EXPECT_EQ(c->stats().memory_hits, 2 * names_.size());
  // A tier smaller than the set evicts and stays within its bytes; reads stay right.
  o.memory_bytes = 1600 << 10;
  auto small = OpenCache(o);
  for (int round = 0; round < 2; ++round) {
    for (const std::string& n : names_) {
      const std::string want = n == "empty.bin" ? "" : SampleContent(n == "link.bin" ? "top.bin" : n);
      ASSERT_EQ(ReadName(*small, n), want);
      ASSERT_LE(small->stats().memory_bytes, o.memory_bytes);
    }
  }
  EXPECT_LT(small->stats().memory_hits, names_.size());
}

TEST(DatasetMemoryTier, EvictsTheLeastRecentlyUsed) {
  dataset::MemoryTier t(800);
  std::vector<std::byte> v(100, std::byte{1}), out(100);
  t.Put("a", v);
  t.Put("b", v);
  t.Put("big", std::vector<std::byte>(101));  // above an eighth: not kept
  EXPECT_EQ(t.Get("big", out), -1);
  for (int i = 0; i < 6; ++i) t.Put("f" + std::to_string(i), v);  // 800 bytes: full
  EXPECT_EQ(t.used(), 800u);
  EXPECT_EQ(t.Get("a", out), 100);  // a is now the most recent
  t.Put("g", v);                    // evicts b, the least recent
  EXPECT_EQ(t.Get("b", out), -1);
  EXPECT_EQ(t.Get("a", out), 100);
  EXPECT_EQ(t.used(), 800u);
  std::vector<std::byte> tiny(10);
  EXPECT_EQ(t.Get("a", tiny), -1) << "a destination too small gets nothing";
}

TEST(DatasetIndex, PartsRoundTripAndDamagedOnesAreRefused) {
  std::vector<SampleInfo> in{{"a", 1, "v1"}, {"dir/b", 0, ""}, {std::string(300, 'x'), 1ull << 40, "v"}};
  auto bytes = dataset::EncodePart(in);
  auto out = dataset::DecodePart(bytes);
  ASSERT_OK(out);
  ASSERT_EQ(out->size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ((*out)[i].name, in[i].name);
    EXPECT_EQ((*out)[i].size, in[i].size);
    EXPECT_EQ((*out)[i].version, in[i].version);
  }
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_CODE(dataset::DecodePart(std::span(bytes).first(cut)), kCorruption) << cut;
  }
  auto longer = bytes;
  longer.push_back(std::byte{0});
  EXPECT_CODE(dataset::DecodePart(longer), kCorruption);
  auto lie = bytes;
  lie[8] = std::byte{0xff};  // the count
  EXPECT_CODE(dataset::DecodePart(lie), kCorruption);
  // Paths: the name and the version both matter; owners spread.
  EXPECT_NE(dataset::SamplePath("r", "a", "1"), dataset::SamplePath("r", "a", "2"));
  EXPECT_NE(dataset::SamplePath("r", "a", "1"), dataset::SamplePath("r", "b", "1"));
  std::set<uint32_t> owners;
  for (int i = 0; i < 100; ++i) owners.insert(dataset::OwnerRank(std::to_string(i), 4));
  EXPECT_EQ(owners.size(), 4u);
}

// What sample `n` of the fixture holds.
std::string Want(const std::string& n) {
  return n == "empty.bin" ? "" : SampleContent(n == "link.bin" ? "top.bin" : n);
}

// The bytes of cached samples the member holds, as the store itself reports them.
uint64_t HeldBytes(Engine& e, std::set<std::string>* paths = nullptr) {
  auto held = e.LocalObjects("datasets/test/s");
  EXPECT_TRUE(held.ok()) << held.status().ToString();
  uint64_t n = 0;
  if (!held.ok()) return 0;
  for (const LocalObject& o : *held) {
    n += o.bytes;
    if (paths != nullptr) paths->insert(o.path);
  }
  return n;
}

TEST_F(DatasetTest, ACapacityHalfTheSetIsKeptByEvictingAndALaterJobTrimsToItsOwn) {
  uint64_t total = 0;
  for (const std::string& n : names_) total += Want(n).size();
  DatasetOptions o;
  o.capacity_bytes = total / 2;
  auto c = OpenCache(o);
  ASSERT_NE(c, nullptr);
  for (int epoch = 0; epoch < 3; ++epoch) {
    for (size_t k = 0; k < names_.size(); ++k) {
      const std::string& n = names_[(k * 7 + static_cast<size_t>(epoch) * 5) % names_.size()];
      ASSERT_TRUE(ReadName(*c, n) == Want(n)) << n;
      ASSERT_LE(c->stats().disk_bytes, o.capacity_bytes) << "epoch " << epoch;
    }
    EXPECT_LE(HeldBytes(*engine_), o.capacity_bytes) << "epoch " << epoch;
  }
  const DatasetStats st = c->stats();
  EXPECT_GT(st.evictions, 0u);
  EXPECT_GT(st.disk_bytes, o.capacity_bytes / 4) << "the budget was not used";
  // HeldHere names exactly the samples the store holds (besides the inline small ones).
  std::set<std::string> held_paths;
  (void)HeldBytes(*engine_, &held_paths);
  std::set<std::string> here;
  for (uint64_t i : c->HeldHere()) {
    auto info = c->info(i);
    ASSERT_OK(info);
    here.insert(dataset::SamplePath("datasets/test", info->name, info->version));
  }
  for (const std::string& p : held_paths) EXPECT_EQ(here.count(p), 1u) << p;
  EXPECT_EQ(here.size(), st.disk_samples);
  EXPECT_EQ(st.capacity_bytes, o.capacity_bytes);
  EXPECT_GT(source_->TotalReads(), static_cast<int>(names_.size()))  // evicted ones again
      << "nothing read twice under a capacity of half the set";
  // The next job with a quarter: what the member holds is trimmed at Open.
  c.reset();
  o.capacity_bytes = total / 4;
  c = OpenCache(o);
  ASSERT_NE(c, nullptr);
  EXPECT_LE(HeldBytes(*engine_), o.capacity_bytes);
  EXPECT_LE(c->stats().disk_bytes, o.capacity_bytes);
  EXPECT_GT(c->stats().disk_samples, 0u) << "the earlier job's samples were not found";
}

TEST_F(DatasetTest, PinnedSamplesAreNeverEvictedAndOnlyPinnedOnesLeftMeansNotCached) {
  uint64_t total = 0;
  std::vector<std::pair<uint64_t, std::string>> by_size;
  for (const std::string& n : names_) {
    total += Want(n).size();
    by_size.emplace_back(Want(n).size(), n);
  }
  std::sort(by_size.rbegin(), by_size.rend());
  DatasetOptions o;
  o.capacity_bytes = total / 3;
  auto c = OpenCache(o);
  ASSERT_NE(c, nullptr);
  // The largest samples up to a fifth of the set, pinned before they are ever read.
  std::vector<uint64_t> pinned;
  std::set<std::string> pinned_names;
  uint64_t pinned_bytes = 0;
  for (auto& [size, n] : by_size) {
    if (pinned_bytes + size > total / 5) continue;
    pinned_bytes += size;
    pinned.push_back(*c->Find(n));
    pinned_names.insert(n);
  }
  ASSERT_GE(pinned.size(), 2u);
  ASSERT_OK(c->Pin(pinned));
  for (int epoch = 0; epoch < 3; ++epoch) {
    for (size_t k = 0; k < names_.size(); ++k) {
      const std::string& n = names_[(k * 11 + static_cast<size_t>(epoch) * 3) % names_.size()];
      ASSERT_TRUE(ReadName(*c, n) == Want(n)) << n;
    }
  }
  for (const std::string& n : pinned_names) EXPECT_EQ(source_->ReadsOf(n), 1) << n << " evicted";
  EXPECT_GT(c->stats().evictions, 0u);
  // Pins filling the whole capacity: other samples are served, not cached.
  auto tight = OpenCache(DatasetOptions{.capacity_bytes = pinned_bytes});
  ASSERT_NE(tight, nullptr);
  ASSERT_OK(tight->Pin(pinned));
  const std::string other = by_size.back().second == "empty.bin" ? by_size[by_size.size() / 2].second
                                                                 : by_size.back().second;
  const int before = source_->ReadsOf(other);
  ASSERT_TRUE(ReadName(*tight, other) == Want(other)) << other;
  ASSERT_TRUE(ReadName(*tight, other) == Want(other)) << other;
  if (Want(other).size() > 0 && pinned_names.count(other) == 0) {
    EXPECT_GE(source_->ReadsOf(other), before + 1);
    EXPECT_GT(tight->stats().not_admitted, 0u);
  }
  for (const std::string& n : pinned_names) EXPECT_EQ(source_->ReadsOf(n), 1) << n;
}

TEST_F(DatasetTest, AReserveLargerThanTheFreeSpaceCachesNothingAndEveryReadSucceeds) {
  auto space = engine_->GetLocalSpace();
  ASSERT_OK(space);
  ASSERT_GT(space->total_bytes, 0u);
  ASSERT_LE(space->free_bytes, space->total_bytes);
  DatasetOptions o;
  o.reserve_bytes = space->free_bytes + (1ull << 40);  // a checkpoint needs all of it
  auto c = OpenCache(o);
  ASSERT_NE(c, nullptr);
  for (int epoch = 0; epoch < 2; ++epoch) {
    for (const std::string& n : names_) {
      ASSERT_TRUE(ReadName(*c, n) == Want(n)) << n;
    }
  }
  ASSERT_OK(c->Warm());
  const DatasetStats st = c->stats();
  EXPECT_EQ(st.disk_bytes, 0u);
  EXPECT_EQ(HeldBytes(*engine_), 0u);
  EXPECT_GE(st.not_admitted, 2 * names_.size());
  EXPECT_EQ(st.reserve_bytes, o.reserve_bytes);
  // Checkpoints and other objects are not the cache's to refuse.
  ASSERT_OK(engine_->Put("ckpt/after", std::string(100000, 'x')));
}

}  // namespace
}  // namespace shoal
