#include "engine/store_layout.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "base/errno_status.h"
#include "shoal/result.h"

namespace shoal::engine {

std::string StorePath(std::string_view store, std::string_view name) {
  return fmt::format("{}/{}", store, name);
}

std::string SegmentFileName(uint32_t id) { return fmt::format("seg-{:08x}.dat", id); }

bool ParseSegmentFileName(std::string_view name, uint32_t* id) {
  if (name.size() != 16 || name.substr(0, 4) != "seg-" || name.substr(12) != ".dat") return false;
  uint32_t v = 0;
  for (char c : name.substr(4, 8)) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    v = v << 4 | static_cast<uint32_t>(d);
  }
  *id = v;
  return true;
}

std::string ChunkObjectName(uint64_t uid) { return fmt::format("c/{:016x}", uid); }

bool IsChunkObjectName(std::string_view name) {
  return name.size() == 18 && name.substr(0, 2) == "c/" &&
         name.substr(2).find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

Result<uint32_t> ReadStoreFormat(const std::string& store) {
  const std::string path = StorePath(store, kFormatFile);
  std::ifstream in(path);
  if (!in) {
    if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) return 0u;
    return ErrnoStatus(errno, "reading " + path);
  }
  std::string magic;
  uint32_t version = 0;
  in >> magic >> version;
  if (!in || magic != "shoal-store" || version == 0) {
    return Status::Corruption(fmt::format("{} does not name a shoal store format", path));
  }
  return version;
}

Status WriteStoreFormat(const std::string& store) {
  const std::string path = StorePath(store, kFormatFile);
  const std::string tmp = path + ".tmp";
  const std::string text = fmt::format("shoal-store {}\n", kStoreFormat);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(errno, "creating " + tmp);
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok) return ErrnoStatus(err, "writing " + tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoStatus(errno, "renaming " + tmp);
  int dfd = ::open(store.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return Status::OK();
}

}  // namespace shoal::engine
