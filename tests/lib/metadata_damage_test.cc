// A truncated or damaged metadata file (LMDB's data.mdb, which has no checksums and is mapped)
// is refused at Open or read as errors, never a SIGBUS and never wrong bytes. Every case opens
// the store in a forked child, so a signal is observed by the test instead of ending it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "engine/lmdb_check.h"
#include "shoal/engine.h"
#include "tests/test_util.h"

namespace shoal {
namespace {

using testing::Pattern;
using testing::TempDir;

// Child exit codes.
constexpr int kOpenedAllGood = 0;     // Open OK; every object exact bytes or an error
constexpr int kRefused = 10;          // Open failed with Corruption or IOError
constexpr int kOtherOpenError = 11;   // Open failed with another code (a test failure)
constexpr int kWrongBytes = 12;       // a read returned bytes that differ (a test failure)
constexpr int kSomeReadErrors = 13;   // Open OK; some objects read as errors (fine)

std::string ReadAll(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string& file, const std::string& bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

class MetadataDamage : public ::testing::Test {
 protected:
  void SetUp() override {
    auto e = Engine::Open(Opts());
    ASSERT_OK(e);
    // Inline objects, multi-chunk objects, nested directories and long names: enough records for
    // several B-tree pages (branch and leaf) and an overflow record.
    for (int i = 0; i < 120; ++i) {
      std::string path = "d" + std::to_string(i % 7) + "/sub" + std::to_string(i % 3) + "/obj-" +
                         std::to_string(i) + std::string(static_cast<size_t>(i % 40), 'x');
      size_t size = i % 12 == 0 ? 70000 + static_cast<size_t>(i) * 100
                                 : 10 + static_cast<size_t>(i) * 17;
      objects_[path] = Pattern(size, static_cast<uint64_t>(i));
      ASSERT_OK((*e)->Put(path, objects_[path]));
    }
    e->reset();
    // Every case starts from a copy of this store: Open of a damaged store may change it (a
    // damaged extent record makes recovery reclaim the space of chunks it no longer sees).
    std::filesystem::rename(dir_.Sub("store"), dir_.Sub("pristine"));
    file_ = dir_.Sub("store") + "/meta/data.mdb";
    pristine_ = ReadAll(dir_.Sub("pristine") + "/meta/data.mdb");
    Restore();
    ASSERT_TRUE(std::filesystem::exists(file_)) << file_;
    ASSERT_GE(pristine_.size(), 16384u);
  }

  void Restore() {
    std::filesystem::remove_all(dir_.Sub("store"));
    std::filesystem::copy(dir_.Sub("pristine"), dir_.Sub("store"),
                          std::filesystem::copy_options::recursive);
  }

  Options Opts() const {
    Options o = testing::TestOptions(dir_.Sub("store"), IoBackend::kPosix, 4);
    o.world_size = 1;
    o.rank = 0;
    o.create_if_missing = true;
    return o;
  }

  // Installs `bytes` as data.mdb, opens the store in a child; returns the child's wait status.
  int RunCase(const std::string& bytes) {
    Restore();
    WriteAll(file_, bytes);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::alarm(60);  // a hang is reported as a signal too
      auto e = Engine::Open(Opts());
      if (!e.ok()) {
        Code c = e.status().code();
        if (c != Code::kCorruption && c != Code::kIOError) {
          std::fprintf(stderr, "open refused with another code: %s\n",
                       e.status().ToString().c_str());
          ::_exit(kOtherOpenError);
        }
        ::_exit(kRefused);
      }
      bool errors = false;
      for (const auto& [path, want] : objects_) {
        std::vector<std::byte> got(want.size() + 1);
        auto n = (*e)->Read(path, 0, got);
        if (!n.ok()) {
          errors = true;
          continue;
        }
        got.resize(*n);
        if (got != want) ::_exit(kWrongBytes);
      }
      ::_exit(errors ? kSomeReadErrors : kOpenedAllGood);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return status;
  }

  TempDir dir_;
  std::string file_, pristine_;
  std::map<std::string, std::vector<std::byte>> objects_;
};

std::string Outcome(int status) {
  if (WIFSIGNALED(status)) return "signal " + std::string(strsignal(WTERMSIG(status)));
  switch (WEXITSTATUS(status)) {
    case kOpenedAllGood: return "opened, all exact";
    case kRefused: return "refused (Corruption/IOError)";
    case kSomeReadErrors: return "opened, some reads failed";
    case kOtherOpenError: return "refused with another code";
    case kWrongBytes: return "WRONG BYTES";
    default: return "exit " + std::to_string(WEXITSTATUS(status));
  }
}

bool Acceptable(int status) {
  if (!WIFEXITED(status)) return false;
  int c = WEXITSTATUS(status);
  return c == kOpenedAllGood || c == kRefused || c == kSomeReadErrors;
}

TEST_F(MetadataDamage, TruncatedFileIsRefusedNotSigbus) {
  std::vector<size_t> sizes = {1, 100, 4095, 4096, 4097, 8192, 12288, 8192 + 100, 16384 - 1};
  for (size_t s = 4096; s < pristine_.size(); s += 4096) sizes.push_back(s);
  for (size_t s = 4096; s < pristine_.size(); s += 4096) sizes.push_back(s + 123);
  sizes.push_back(pristine_.size() - 1);
  std::map<std::string, int> outcomes;
  for (size_t size : sizes) {
    if (size >= pristine_.size()) continue;
    int status = RunCase(pristine_.substr(0, size));
    outcomes[Outcome(status)]++;
    EXPECT_TRUE(Acceptable(status)) << "truncated to " << size << ": " << Outcome(status);
    // A file missing pages is always refused: nothing past its end may be trusted.
    if (WIFEXITED(status)) {
      EXPECT_EQ(WEXITSTATUS(status), kRefused) << "truncated to " << size;
    }
  }
  std::cout << "data.mdb of " << pristine_.size() << " bytes, " << sizes.size()
            << " truncations:";
  for (auto& [o, n] : outcomes) std::cout << " [" << o << ": " << n << "]";
  std::cout << "\n";
  RecordProperty("truncation_cases", static_cast<int>(sizes.size()));
  // The intact file still opens.
  EXPECT_EQ(WEXITSTATUS(RunCase(pristine_)), kOpenedAllGood);
}

// One byte XORed with a random mask: every 4th byte of both meta pages' headers and meta
// records, then every page's header and node area, then random offsets anywhere. The list is
// fixed by its seed; the suite runs it in kFlipShards parts (case i in part i % kFlipShards), so
// each part stays well inside the per-test timeout under the sanitizers (a case is a fork and an
// Open: ~27 ms in release, ~190 ms under ASan) and ctest runs the parts side by side.
constexpr int kFlipShards = 4;

std::vector<std::pair<size_t, uint8_t>> FlipCases(size_t file_size) {
  std::mt19937_64 rng(20261129);
  std::vector<size_t> offsets;
  for (size_t page = 0; page < 2; ++page) {
    for (size_t o = 0; o < 16 + 136; o += 4) offsets.push_back(page * 4096 + o);
  }
  for (size_t page = 2; page * 4096 < file_size; ++page) {
    for (size_t o : {0, 8, 10, 12, 13, 14, 15, 16, 17, 18, 20, 24}) offsets.push_back(page * 4096 + o);
  }
  for (int i = 0; i < 400; ++i) offsets.push_back(rng() % file_size);
  std::vector<std::pair<size_t, uint8_t>> cases;
  for (size_t off : offsets) cases.emplace_back(off, static_cast<uint8_t>(1 + rng() % 255));
  return cases;
}

class MetadataFlips : public MetadataDamage, public ::testing::WithParamInterface<int> {};

TEST_P(MetadataFlips, FlippedBytesAreRefusedOrErrorsNeverSigbusOrWrongBytes) {
  const auto cases = FlipCases(pristine_.size());
  std::map<std::string, int> outcomes;
  int run = 0;
  for (size_t i = static_cast<size_t>(GetParam()); i < cases.size(); i += kFlipShards) {
    auto [off, mask] = cases[i];
    std::string bytes = pristine_;
    bytes[off] = static_cast<char>(static_cast<uint8_t>(bytes[off]) ^ mask);
    int status = RunCase(bytes);
    outcomes[Outcome(status)]++;
    ++run;
    EXPECT_TRUE(Acceptable(status)) << "byte " << off << " ^ " << int{mask} << ": "
                                    << Outcome(status);
  }
  ASSERT_GE(run, 100) << "part " << GetParam() << " of " << cases.size() << " cases";
  std::cout << "data.mdb of " << pristine_.size() << " bytes, part " << GetParam() << " of "
            << kFlipShards << ": " << run << " of " << cases.size() << " single-byte flips:";
  for (auto& [o, n] : outcomes) std::cout << " [" << o << ": " << n << "]";
  std::cout << "\n";
  RecordProperty("flip_cases", run);
}

INSTANTIATE_TEST_SUITE_P(Parts, MetadataFlips, ::testing::Range(0, kFlipShards));

// The meta-page check alone, on the file of a real store.
TEST_F(MetadataDamage, ReadLmdbMetaChecksPagesAgainstTheFileSize) {
  ASSERT_EQ(ReadAll(file_), pristine_);
  auto meta = engine::ReadLmdbMeta(file_);
  ASSERT_OK(meta);
  EXPECT_EQ(meta->page_size, 4096u);
  EXPECT_EQ(meta->file_size, pristine_.size());
  EXPECT_GE(meta->last_page, 2u);
  EXPECT_LE((meta->last_page + 1) * meta->page_size, meta->file_size);
  ASSERT_OK(engine::VerifyLmdbFile(file_));

  // One page short of the used meta's last page: Corruption naming the file.
  WriteAll(file_, pristine_.substr(0, meta->last_page * meta->page_size));
  auto cut = engine::ReadLmdbMeta(file_);
  EXPECT_CODE(cut, kCorruption);
  EXPECT_NE(cut.status().message().find(file_), std::string::npos) << cut.status();
  for (size_t size : {size_t{8192}, size_t{12288}, size_t{5000}, size_t{100}}) {
    WriteAll(file_, pristine_.substr(0, size));
    EXPECT_CODE(engine::ReadLmdbMeta(file_), kCorruption) << size;
  }
  // A damaged magic number, version, page size, or a last page beyond the file.
  for (size_t at : {size_t{16}, size_t{20}, size_t{16 + 24}, size_t{4096 + 16}}) {
    std::string bytes = pristine_;
    bytes[at] = static_cast<char>(bytes[at] ^ 0x40);
    WriteAll(file_, bytes);
    EXPECT_CODE(engine::ReadLmdbMeta(file_), kCorruption) << "byte " << at;
  }
  {
    std::string bytes = pristine_;
    size_t at = (meta->used_meta * 4096) + 16 + 120 + 3;  // mm_last_pg, third byte
    bytes[at] = static_cast<char>(bytes[at] ^ 0x01);
    WriteAll(file_, bytes);
    EXPECT_CODE(engine::ReadLmdbMeta(file_), kCorruption);
  }
  // No file, or an empty one: NotFound (LMDB creates a new environment).
  WriteAll(file_, "");
  EXPECT_CODE(engine::ReadLmdbMeta(file_), kNotFound);
  EXPECT_CODE(engine::ReadLmdbMeta(dir_.Sub("nothing/data.mdb")), kNotFound);
  WriteAll(file_, pristine_);
}

}  // namespace
}  // namespace shoal
