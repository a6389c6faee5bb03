// Helpers shared by shoal's tests.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "shoal/options.h"
#include "shoal/result.h"
#include "shoal/status.h"

// Asserts a Status (or Result) is OK, printing it when it is not; more may be streamed in.
#define ASSERT_OK(expr) ASSERT_PRED_FORMAT1(::shoal::testing::IsOk, (expr))
#define EXPECT_OK(expr) EXPECT_PRED_FORMAT1(::shoal::testing::IsOk, (expr))
// Expects a Status (or Result) with the given Code (kNotFound, ...).
#define EXPECT_CODE(expr, code_) \
  EXPECT_PRED_FORMAT2(::shoal::testing::HasCode, (expr), ::shoal::Code::code_)

namespace shoal::testing {

inline Status ToStatus(const Status& s) { return s; }
template <typename T>
Status ToStatus(const Result<T>& r) {
  return r.status();
}

template <typename T>
::testing::AssertionResult IsOk(const char* text, const T& v) {
  Status s = ToStatus(v);
  if (s.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << text << " -> " << s.ToString();
}

template <typename T>
::testing::AssertionResult HasCode(const char* text, const char*, const T& v, Code code) {
  Status s = ToStatus(v);
  if (s.code() == code) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << text << " -> " << s.ToString() << " (wanted " << CodeName(code) << ")";
}

// A fresh directory under $TMPDIR (or /var/tmp: a real disk, O_DIRECT works), removed at the end.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base ? base : "/var/tmp") + "/shoal-test-XXXXXX";
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Small chunks and segments keep tests fast while crossing every boundary often.
inline constexpr uint32_t kTestChunk = 64u << 10;

inline Options TestOptions(const std::string& store_dir, IoBackend backend,
                           uint32_t queue_depth = 8) {
  Options o;
  o.store_dir = store_dir;
  o.chunk_size = kTestChunk;
  o.queue_depth = queue_depth;
  o.io_backend = backend;
  o.segment_size = 64ull << 20;
  return o;
}

// Names test instances of backend-parametrized suites "IoUring" / "Posix".
struct BackendName {
  template <typename Info>
  std::string operator()(const Info& info) const {
    return info.param == IoBackend::kPosix ? "Posix" : "IoUring";
  }
};

// A loopback TCP port that was free a moment ago (for rendezvous tests).
inline uint16_t FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Deterministic pseudo-random bytes.
inline std::vector<std::byte> Pattern(size_t n, uint64_t seed) {
  std::vector<std::byte> v(n);
  std::mt19937_64 rng(seed);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x = rng();
    std::memcpy(v.data() + i, &x, 8);
  }
  for (; i < n; ++i) v[i] = static_cast<std::byte>(rng());
  return v;
}

// Flips one bit of the first occurrence of `needle` (>= 16 bytes: unique in practice) in the
// files of directory `dir` (a store's chunk segments, the store closed): on-disk damage under a
// known byte of an object. False when no file holds it.
inline bool FlipBitAt(const std::string& dir, std::span<const std::byte> needle) {
  const std::string want(reinterpret_cast<const char*>(needle.data()), needle.size());
  for (auto& f : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(f.path(), std::ios::binary);
    std::string hay((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t pos = hay.find(want);
    if (pos == std::string::npos) continue;
    FILE* out = std::fopen(f.path().c_str(), "r+b");
    if (out == nullptr) return false;
    const char c = static_cast<char>(hay[pos] ^ 0x10);
    const bool ok = std::fseek(out, static_cast<long>(pos), SEEK_SET) == 0 &&
                    std::fwrite(&c, 1, 1, out) == 1;
    return std::fclose(out) == 0 && ok;
  }
  return false;
}

}  // namespace shoal::testing
