// The dataset sources shoal ships: a directory tree, and the caller's functions.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include <fmt/format.h>

#include "base/errno_status.h"
#include "shoal/dataset.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;

Status FsError(const std::error_code& ec, std::string_view what) {
  return ErrnoStatus(ec.value(), std::string(what));
}

// size:mtime_ns of a regular file (following links), or NotFound / the errno's status.
Result<SampleInfo> StatFile(const std::string& full, std::string_view name) {
  struct stat st{};
  if (::stat(full.c_str(), &st) != 0) {
    return ErrnoStatus(errno, fmt::format("dataset sample \"{}\"", name));
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::NotFound(fmt::format("dataset sample \"{}\" is not a regular file", name));
  }
  const int64_t ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  return SampleInfo{std::string(name), static_cast<uint64_t>(st.st_size),
                    fmt::format("{}:{}", st.st_size, ns)};
}

class Directory final : public DatasetSource {
 public:
  explicit Directory(std::string root) : root_(std::move(root)) {}

  Result<std::vector<SampleInfo>> List(uint32_t part, uint32_t parts) override {
    if (parts == 0 || part >= parts) {
      return Status::InvalidArgument(fmt::format("list part {} of {}", part, parts));
    }
    std::error_code ec;
    fs::directory_iterator top(root_, ec);
    if (ec) return FsError(ec, fmt::format("listing dataset directory \"{}\"", root_));
    std::vector<SampleInfo> out;
    for (; top != fs::directory_iterator(); top.increment(ec)) {
      if (ec) return FsError(ec, fmt::format("listing dataset directory \"{}\"", root_));
      const std::string name = top->path().filename().string();
      if (XXH3_64bits(name.data(), name.size()) % parts != part) continue;
      SHOAL_RETURN_IF_ERROR(Walk(*top, &out));
    }
    return out;
  }

  Result<SampleInfo> Stat(std::string_view name) override {
    return StatFile(Full(name), name);
  }

  Result<uint64_t> Read(std::string_view name, std::span<std::byte> dst) override {
    const std::string full = Full(name);
    const int fd = ::open(full.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(errno, fmt::format("dataset sample \"{}\"", name));
    uint64_t n = 0;
    Status s;
    while (n < dst.size()) {
      const ssize_t r = ::pread(fd, dst.data() + n, dst.size() - n, static_cast<off_t>(n));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        s = ErrnoStatus(errno, fmt::format("reading dataset sample \"{}\"", name));
        break;
      }
      if (r == 0) break;
      n += static_cast<uint64_t>(r);
    }
    if (s.ok() && n == dst.size()) {  // is there more than dst holds?
      std::byte extra;
      if (::pread(fd, &extra, 1, static_cast<off_t>(n)) == 1) {
        s = Status::InvalidArgument(fmt::format(
            "dataset sample \"{}\" is larger than the {} bytes given for it", name, dst.size()));
      }
    }
    ::close(fd);
    if (!s.ok()) return s;
    return n;
  }

 private:
  std::string Full(std::string_view name) const { return root_ + "/" + std::string(name); }

  // Regular files (links to files followed) under `entry`, named relative to the root.
  Status Walk(const fs::directory_entry& entry, std::vector<SampleInfo>* out) {
    std::error_code ec;
    auto add = [&](const fs::path& p) -> Status {
      const std::string rel = p.lexically_relative(root_).generic_string();
      auto info = StatFile(p.string(), rel);
      if (info.ok()) out->push_back(std::move(info).value());
      else if (info.status().code() != Code::kNotFound) return info.status();  // gone meanwhile: skip
      return Status::OK();
    };
    if (entry.is_symlink(ec)) {
      if (entry.is_regular_file(ec)) return add(entry.path());
      return Status::OK();  // a link to a directory (or dangling): not followed
    }
    if (entry.is_regular_file(ec)) return add(entry.path());
    if (!entry.is_directory(ec)) return Status::OK();
    fs::recursive_directory_iterator it(entry.path(), fs::directory_options::none, ec);
    if (ec) return FsError(ec, fmt::format("listing \"{}\"", entry.path().string()));
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) return FsError(ec, fmt::format("listing \"{}\"", entry.path().string()));
      if (it->is_regular_file(ec)) SHOAL_RETURN_IF_ERROR(add(it->path()));
    }
    return Status::OK();
  }

  const std::string root_;
};

class Callback final : public DatasetSource {
  static Status Missing(std::string_view fn) {
    return Status::InvalidArgument(fmt::format("CallbackSource: no {} function", fn));
  }

 public:
  explicit Callback(CallbackSourceFns fns) : fns_(std::move(fns)) {}
  Result<std::vector<SampleInfo>> List(uint32_t part, uint32_t parts) override {
    if (!fns_.list) return Missing("list");
    return fns_.list(part, parts);
  }
  Result<SampleInfo> Stat(std::string_view name) override {
    if (!fns_.stat) return Missing("stat");
    return fns_.stat(name);
  }
  Result<uint64_t> Read(std::string_view name, std::span<std::byte> dst) override {
    if (!fns_.read) return Missing("read");
    return fns_.read(name, dst);
  }

 private:
  const CallbackSourceFns fns_;
};

}  // namespace

std::shared_ptr<DatasetSource> DirectorySource(std::string root) {
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  return std::make_shared<Directory>(std::move(root));
}

std::shared_ptr<DatasetSource> CallbackSource(CallbackSourceFns fns) {
  return std::make_shared<Callback>(std::move(fns));
}

}  // namespace shoal
