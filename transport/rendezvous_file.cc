// The file rendezvous: each rank writes <dir>/member-<rank> atomically, with a token MAC, and
// reads every other's once it appears.
#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <thread>

#include "base/bytes.h"
#include "transport/job_token.h"
#include "transport/rendezvous.h"

namespace shoal::transport {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::string_view kFileLabel = "shoal-rdzv-file-v1";

class FileRendezvous final : public Rendezvous {
 public:
  FileRendezvous(std::string dir, uint32_t rank, uint32_t world, std::string token,
                 std::chrono::milliseconds timeout)
      : dir_(std::move(dir)), rank_(rank), world_(world), token_(std::move(token)),
        timeout_(timeout) {}

  Result<std::vector<Blob>> AllGather(const Blob& mine) override {
    if (world_ == 0 || rank_ >= world_) {
      return Status::InvalidArgument(fmt::format("rank {} outside a world of {}", rank_, world_));
    }
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    uint32_t r = rank_;
    Mac mac = TokenMac(token_, kFileLabel, {BytesOf(r), mine});
    std::string path = Path(rank_), tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary);
      out.write(reinterpret_cast<const char*>(mac.data()), 32);
      out.write(reinterpret_cast<const char*>(mine.data()), static_cast<std::streamsize>(mine.size()));
      if (!out) return Status::IOError("rendezvous: writing " + tmp);
    }
    std::filesystem::rename(tmp, path, ec);
    if (ec) return Status::IOError("rendezvous: " + ec.message());
    auto deadline = Clock::now() + timeout_;
    std::vector<Blob> table(world_);
    for (uint32_t i = 0; i < world_; ++i) {
      while (!std::filesystem::exists(Path(i))) {
        if (Clock::now() >= deadline) {
          return Status::Timeout(fmt::format("rendezvous: member {} never wrote {}", i, Path(i)));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      std::ifstream in(Path(i), std::ios::binary);
      std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      auto* rp = reinterpret_cast<const std::byte*>(raw.data());
      Blob b(rp, rp + raw.size());
      if (b.size() < 32 || b.size() > 32 + kMaxBlobBytes) {
        return Status::InvalidArgument(fmt::format("rendezvous: {} is malformed", Path(i)));
      }
      Mac got;
      std::memcpy(got.data(), b.data(), 32);
      Blob blob(b.begin() + 32, b.end());
      if (!MacEqual(got, TokenMac(token_, kFileLabel, {BytesOf(i), blob}))) {
        return Status::PermissionDenied(
            fmt::format("rendezvous: {} was not written with this job token", Path(i)));
      }
      table[i] = std::move(blob);
    }
    return table;
  }
 private:
  std::string Path(uint32_t r) const { return fmt::format("{}/member-{}", dir_, r); }
  std::string dir_;
  uint32_t rank_, world_;
  std::string token_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

std::unique_ptr<Rendezvous> NewFileRendezvous(std::string dir, uint32_t rank, uint32_t world_size,
                                              std::string token,
                                              std::chrono::milliseconds timeout) {
  return std::make_unique<FileRendezvous>(std::move(dir), rank, world_size, std::move(token),
                                          timeout);
}

}  // namespace shoal::transport
