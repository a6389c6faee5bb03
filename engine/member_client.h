// MemberClient: this member's typed calls to any member of the world — to itself directly (the
// MemberService's method, no encoding), to a peer through the transport with the request and
// reply encoded by engine/protocol.h. The client paths (engine/cluster.h), read planning and
// repair use it; none of them builds or parses message bytes.
//
// Fan-outs ask several members in parallel and return one result per member, in order.
//
// Thread-safety: all methods are thread-safe. The transport and the service must outlive it.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "base/metrics.h"
#include "engine/flight.h"
#include "engine/member_service.h"
#include "engine/protocol.h"
#include "transport/transport.h"

namespace shoal::engine {

class MemberClient {
 public:
  // Records into `metrics` (which must outlive it): per op, the calls that crossed the transport
  // ("member.remote.<op>.calls" / ".errors") and the chunk bytes sent and received.
  MemberClient(transport::Transport* transport, MemberService* local,
               std::chrono::milliseconds deadline, metrics::Registry* metrics);

  uint32_t self() const { return t_->self(); }
  // This member, or a peer whose endpoint is up.
  bool Reachable(uint32_t rank) const { return rank == self() || t_->peer_up(rank); }

  // ---- chunk holder ----
  Status ChunkWrite(uint32_t rank, const protocol::ChunkWrite& req);
  // Returns at once. req.data is not copied: it goes from where it is to the holder (UCX:
  // by rendezvous into the holder's pool buffer) and must stay valid until `released` ran
  // (Transport::CallGather), which may be before or after `done`.
  void ChunkWriteAsync(uint32_t rank, const protocol::ChunkWrite& req,
                       std::function<void(Status)> done, std::function<void()> released);
  // Reads into dst (dst.size() == req.len), bytes past what the holder has as zeros, checking
  // the holder's CRC32C of the bytes in transit.
  Status ChunkRead(uint32_t rank, const protocol::ChunkRead& req, std::span<std::byte> dst);
  void ChunkReadAsync(uint32_t rank, const protocol::ChunkRead& req, std::span<std::byte> dst,
                      std::function<void(Status)> done);
  std::vector<Status> ChunkCommitAll(const std::vector<uint32_t>& ranks, uint64_t uid,
                                     std::string_view path);
  std::vector<Status> ChunkDropAll(const std::vector<uint32_t>& ranks, uint64_t uid);

  // ---- metadata owner ----
  Status MetaCheck(uint32_t rank, std::string_view path);
  Result<Inode> MetaGet(uint32_t rank, std::string_view path);
  // MetaGet of many paths at several owners, every call in flight at once: one call per
  // (rank, paths) of `groups` (split in calls of at most protocol::kMaxPathsPerRequest paths),
  // this member's answered from its own shards. out[g][i] is groups[g].second[i]'s; a failed
  // call gives its error to each of its paths.
  using PathGroup = std::pair<uint32_t, std::vector<std::string_view>>;
  std::vector<std::vector<Result<Inode>>> MetaGetMany(const std::vector<PathGroup>& groups);
  // Versions (engine/meta_store.h): 0 asks the owner to assign one, which is returned.
  Result<uint64_t> MetaInsert(uint32_t rank, std::string_view path, const Inode& inode,
                              uint64_t version);
  Result<protocol::RemoveReply> MetaRemove(uint32_t rank, std::string_view path, uint64_t uid,
                                           uint64_t version);
  std::vector<Status> MetaInsertAll(const std::vector<uint32_t>& ranks, std::string_view path,
                                    const Inode& inode, uint64_t version);
  std::vector<Status> MetaRemoveAll(const std::vector<uint32_t>& ranks, std::string_view path,
                                    uint64_t uid, uint64_t version);
  Result<protocol::ShardPageReply> ShardPage(uint32_t rank, uint32_t shard, std::string_view after,
                                             uint32_t limit);
  Result<uint64_t> MetaReplace(uint32_t rank, std::string_view path, uint64_t uid,
                               const Inode& inode, uint64_t version);
  std::vector<Status> MetaReplaceAll(const std::vector<uint32_t>& ranks, std::string_view path,
                                     uint64_t uid, const Inode& inode, uint64_t version);
  // ---- batched ingest (Engine::PutBatch) ----
  // Every call at once (this member's run here meanwhile); one status per call.
  using ChunkPutCall = std::pair<uint32_t, protocol::ChunkPutMany>;
  std::vector<Status> ChunkPutMany(const std::vector<ChunkPutCall>& calls);
  // One MetaInsertMany per group of (rank, records), all at once; out[g][i] is the outcome of
  // groups[g].second[i] (a failed call gives its error to each of its records). The records'
  // inodes may be changed (their ids assigned) when this member is the group's rank.
  using InsertGroup = std::pair<uint32_t, std::vector<protocol::MetaInsert>>;
  std::vector<std::vector<Result<uint64_t>>> MetaInsertMany(std::vector<InsertGroup>& groups);

  // ---- leases ----
  Result<protocol::LeaseReply> Lease(uint32_t rank, const protocol::LeaseRequest& req);

  std::vector<Result<ListPage>> MetaListAll(const std::vector<uint32_t>& ranks,
                                            std::string_view dir, std::string_view start_after,
                                            uint32_t limit);

 private:
  Result<transport::Payload> Call(uint32_t rank, protocol::Op op, transport::Payload request);
  // Asks every rank in parallel: `local` for this member, `decode` of the reply for the others.
  template <typename T>
  std::vector<Result<T>> FanOut(const std::vector<uint32_t>& ranks, protocol::Op op,
                                const protocol::Bytes& request,
                                const std::function<Result<T>()>& local,
                                const std::function<Result<T>(const transport::Payload&)>& decode);
  std::vector<Status> FanOutStatus(const std::vector<uint32_t>& ranks, protocol::Op op,
                                   const protocol::Bytes& request,
                                   const std::function<Status()>& local);

  // Counts a finished remote call of `op`.
  void Count(protocol::Op op, const Status& s) {
    const auto i = static_cast<size_t>(protocol::Wire(op)) % kOpSlots;
    calls_[i]->Add();
    if (!s.ok()) errors_[i]->Add();
  }

  static constexpr size_t kOpSlots = 64;
  transport::Transport* const t_;
  MemberService* const local_;
  const std::chrono::milliseconds deadline_;
  std::array<metrics::Counter*, kOpSlots> calls_{};
  std::array<metrics::Counter*, kOpSlots> errors_{};
  metrics::Counter* bytes_sent_ = nullptr;      // chunk bytes written to peers
  metrics::Counter* bytes_received_ = nullptr;  // chunk bytes read from peers
};

}  // namespace shoal::engine
