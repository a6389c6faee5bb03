// The TCP rendezvous's wire, shared by the rank-0 host (rendezvous_tcp_host.cc) and the joining
// ranks (rendezvous_tcp_join.cc): frames (u32 length, one tag byte, body), the member table's
// encoding, the labels its token MACs are bound to, and blocking socket I/O under a deadline.
//
// Frames, by tag: 'H' hello (client nonce), 'C' challenge (server nonce, server MAC), 'J' join
// (client MAC, rank, world size, blob), 'P' progress (missing count, missing ranks), 'T' table
// (table MAC, encoded table), 'R' refusal (why, as text). After the world formed: 'O' observe
// (client MAC), 'W' world (MAC, u32 table length, encoded table, info blob), 'F' formed (a
// join that came too late: why, as text; the joiner retries).
//
// Failures: Timeout when the deadline passes, Unavailable when the peer closed, InvalidArgument
// for a malformed frame or table; errno otherwise (base/errno_status.h).
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shoal/result.h"
#include "transport/rendezvous.h"

namespace shoal::transport {

using Clock = std::chrono::steady_clock;
// Labels of the token MACs: the host's proof, the joiner's proof, the table's.
inline constexpr std::string_view kServerLabel = "shoal-rdzv-server-v1";
inline constexpr std::string_view kClientLabel = "shoal-rdzv-client-v1";
inline constexpr std::string_view kTableLabel = "shoal-rdzv-table-v1";
// Labels of an observer's proof and of the world rank 0 answers it with.
inline constexpr std::string_view kObserverLabel = "shoal-rdzv-observer-v1";
inline constexpr std::string_view kWorldLabel = "shoal-rdzv-world-v1";

// The member table: u32 count, then each member's blob length-prefixed, in rank order.
Blob EncodeTable(const std::vector<Blob>& table);
// InvalidArgument unless `bytes` is a table of exactly `world` blobs of at most kMaxBlobBytes.
Result<std::vector<Blob>> DecodeTable(std::span<const std::byte> bytes, uint32_t world);
// The same for a table of any number of blobs (the count it declares, bounded by its size).
Result<std::vector<Blob>> DecodeAnyTable(std::span<const std::byte> bytes);

// An observer's world description (the 'W' frame after its MAC): u32 length of the encoded
// member table, the table, then the info blob (the rest). Decode: InvalidArgument for a length
// past the bytes or a table that does not decode; one encoding per description.
Blob EncodeWorld(const std::vector<Blob>& members, std::span<const std::byte> info);
Result<ObservedWorld> DecodeWorld(std::span<const std::byte> bytes);

// The concatenation of `parts`.
Blob Concat(std::initializer_list<std::span<const std::byte>> parts);

// One whole frame, as bytes to queue on a non-blocking socket.
Blob Frame(char tag, std::span<const std::byte> body);

// Milliseconds until `deadline` for poll(), 0 when it passed.
int Remaining(Clock::time_point deadline);
// Waits until `fd` is ready for `events`; Timeout names `what` was waited for.
Status WaitFd(int fd, short events, Clock::time_point deadline, std::string_view what);
// Sends all `n` bytes, waiting for the socket as needed.
Status SendAll(int fd, const void* data, size_t n, Clock::time_point deadline);
Status SendFrame(int fd, char tag, std::span<const std::byte> body, Clock::time_point deadline);
// Receives one frame (at most 64 MiB); returns its tag in *tag and its body.
Result<Blob> RecvFrame(int fd, char* tag, Clock::time_point deadline);

// "1,3-5,9": the ranks r with !have[r], as ranges, at most `max_ranges` of them.
std::string MissingRanks(const std::vector<bool>& have, size_t max_ranges = 32);

// An owned file descriptor, closed on destruction; -1 for none.
struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (fd >= 0) ::close(fd);
    fd = std::exchange(o.fd, -1);
    return *this;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace shoal::transport
