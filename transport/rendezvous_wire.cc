#include "transport/rendezvous_wire.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "base/bytes.h"
#include "base/errno_status.h"

namespace shoal::transport {
namespace {

constexpr uint32_t kMaxFrame = 64u << 20;

Status RecvAll(int fd, void* data, size_t n, Clock::time_point deadline) {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    SHOAL_RETURN_IF_ERROR(WaitFd(fd, POLLIN, deadline, "receiving"));
    ssize_t k = ::recv(fd, p, n, 0);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (k < 0) return ErrnoStatus(errno, "rendezvous receive");
    if (k == 0) return Status::Unavailable("rendezvous: the other side closed the connection");
    p += k;
    n -= static_cast<size_t>(k);
  }
  return Status::OK();
}

}  // namespace

Blob EncodeTable(const std::vector<Blob>& table) {
  ByteWriter w;
  w.Put<uint32_t>(static_cast<uint32_t>(table.size()));
  for (const Blob& b : table) w.Prefixed(b);
  return w.Take();
}

Blob Concat(std::initializer_list<std::span<const std::byte>> parts) {
  ByteWriter w;
  for (auto p : parts) w.Raw(p);
  return w.Take();
}

Result<std::vector<Blob>> DecodeTable(std::span<const std::byte> bytes, uint32_t world) {
  ByteReader r(bytes);
  uint32_t n = 0;
  if (!r.Get(&n) || n != world) return Status::InvalidArgument("rendezvous table: member count");
  std::vector<Blob> table(n);
  for (uint32_t i = 0; i < n; ++i) {
    std::span<const std::byte> b;
    if (!r.Prefixed(kMaxBlobBytes, &b)) {
      return Status::InvalidArgument(fmt::format("rendezvous table: entry {} malformed", i));
    }
    table[i].assign(b.begin(), b.end());
  }
  if (r.left() != 0) return Status::InvalidArgument("rendezvous table: trailing bytes");
  return table;
}

Blob EncodeWorld(const std::vector<Blob>& members, std::span<const std::byte> info) {
  const Blob table = EncodeTable(members);
  ByteWriter w;
  w.Prefixed(table);
  w.Raw(info);
  return w.Take();
}

Result<ObservedWorld> DecodeWorld(std::span<const std::byte> bytes) {
  ByteReader r(bytes);
  std::span<const std::byte> table;
  if (!r.Prefixed(bytes.size(), &table)) {
    return Status::InvalidArgument("rendezvous: world description of wrong length");
  }
  ObservedWorld out;
  SHOAL_ASSIGN_OR_RETURN(out.members, DecodeAnyTable(table));
  std::span<const std::byte> info;
  (void)r.Raw(r.left(), &info);
  out.info.assign(info.begin(), info.end());
  return out;
}

Result<std::vector<Blob>> DecodeAnyTable(std::span<const std::byte> bytes) {
  ByteReader r(bytes);
  uint32_t n = 0;
  // Every entry takes at least its 4-byte length: a count the bytes cannot hold is refused
  // before anything is allocated for it.
  if (!r.Get(&n) || n == 0 || n > r.left() / 4) {
    return Status::InvalidArgument("rendezvous table: member count");
  }
  return DecodeTable(bytes, n);
}

Blob Frame(char tag, std::span<const std::byte> body) {
  ByteWriter w;
  w.Put<uint32_t>(static_cast<uint32_t>(body.size() + 1));
  w.Put<char>(tag);
  w.Raw(body);
  return w.Take();
}

int Remaining(Clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return ms <= 0 ? 0 : static_cast<int>(std::min<int64_t>(ms, 1 << 30));
}

Status WaitFd(int fd, short events, Clock::time_point deadline, std::string_view what) {
  while (true) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, Remaining(deadline));
    if (n > 0) return Status::OK();
    if (n == 0) return Status::Timeout(fmt::format("rendezvous: timed out {}", what));
    if (errno != EINTR) return ErrnoStatus(errno, "poll");
  }
}

Status SendAll(int fd, const void* data, size_t n, Clock::time_point deadline) {
  auto* p = static_cast<const char*>(data);
  while (n > 0) {
    SHOAL_RETURN_IF_ERROR(WaitFd(fd, POLLOUT, deadline, "sending"));
    ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (k < 0) return ErrnoStatus(errno, "rendezvous send");
    p += k;
    n -= static_cast<size_t>(k);
  }
  return Status::OK();
}

Status SendFrame(int fd, char tag, std::span<const std::byte> body, Clock::time_point deadline) {
  uint32_t len = static_cast<uint32_t>(body.size() + 1);
  SHOAL_RETURN_IF_ERROR(SendAll(fd, &len, 4, deadline));
  SHOAL_RETURN_IF_ERROR(SendAll(fd, &tag, 1, deadline));
  return SendAll(fd, body.data(), body.size(), deadline);
}

// Receives one frame; returns its tag in *tag and its body.
Result<Blob> RecvFrame(int fd, char* tag, Clock::time_point deadline) {
  uint32_t len = 0;
  SHOAL_RETURN_IF_ERROR(RecvAll(fd, &len, 4, deadline));
  if (len == 0 || len > kMaxFrame) {
    return Status::InvalidArgument(fmt::format("rendezvous: frame of {} bytes", len));
  }
  SHOAL_RETURN_IF_ERROR(RecvAll(fd, tag, 1, deadline));
  Blob body(len - 1);
  SHOAL_RETURN_IF_ERROR(RecvAll(fd, body.data(), body.size(), deadline));
  return body;
}

std::string MissingRanks(const std::vector<bool>& have, size_t max_ranges) {
  std::string out;
  size_t ranges = 0, missing = 0;
  for (size_t r = 0; r < have.size();) {
    if (have[r]) {
      ++r;
      continue;
    }
    size_t end = r;
    while (end + 1 < have.size() && !have[end + 1]) ++end;
    missing += end - r + 1;
    if (ranges++ < max_ranges) {
      out += (out.empty() ? "" : ",") +
             (end == r ? std::to_string(r) : fmt::format("{}-{}", r, end));
    }
    r = end + 1;
  }
  if (ranges > max_ranges) out += fmt::format(",... ({} ranks in all)", missing);
  return out;
}

}  // namespace shoal::transport
