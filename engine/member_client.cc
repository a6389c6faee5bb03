#include "engine/member_client.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "base/crc32c.h"

namespace shoal::engine {

using protocol::Op;
using transport::Payload;

namespace {

// A holder's chunk-read reply into `dst`: check its CRC32C, copy, zeros after what it had.
Status TakeChunkReply(const Payload& reply, std::span<std::byte> dst) {
  protocol::ChunkReadReply r;
  SHOAL_RETURN_IF_ERROR(protocol::Decode(reply, static_cast<uint32_t>(dst.size()), &r));
  if (Crc32c(r.data.data(), r.data.size()) != r.crc) {
    return Status::Corruption("chunk read: CRC32C mismatch in transit");
  }
  if (!r.data.empty()) std::memcpy(dst.data(), r.data.data(), r.data.size());
  std::memset(dst.data() + r.data.size(), 0, dst.size() - r.data.size());
  return Status::OK();
}

}  // namespace

MemberClient::MemberClient(transport::Transport* transport, MemberService* local,
                           std::chrono::milliseconds deadline, metrics::Registry* metrics)
    : t_(transport), local_(local), deadline_(deadline) {
  static_assert(
      [] {
        for (Op op : protocol::kAllOps) {
          if (protocol::Wire(op) >= kOpSlots) return false;
        }
        return true;
      }(),
      "every protocol op has a slot of its own");
  for (Op op : protocol::kAllOps) {
    const std::string name = fmt::format("member.remote.{}", protocol::OpName(protocol::Wire(op)));
    calls_[protocol::Wire(op) % kOpSlots] = &metrics->counter(name + ".calls");
    errors_[protocol::Wire(op) % kOpSlots] = &metrics->counter(name + ".errors");
  }
  bytes_sent_ = &metrics->counter("member.remote.chunk_bytes_sent");
  bytes_received_ = &metrics->counter("member.remote.chunk_bytes_received");
}

Result<Payload> MemberClient::Call(uint32_t rank, Op op, Payload request) {
  auto r = t_->Call(rank, protocol::Wire(op), std::move(request), deadline_);
  Count(op, r.status());
  return r;
}

template <typename T>
std::vector<Result<T>> MemberClient::FanOut(
    const std::vector<uint32_t>& ranks, Op op, const protocol::Bytes& request,
    const std::function<Result<T>()>& local,
    const std::function<Result<T>(const Payload&)>& decode) {
  std::vector<Result<T>> out(ranks.size(), Status::Unavailable("no reply"));
  Flight flight(ranks.size() + 1);
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (ranks[i] == self()) continue;
    flight.Acquire();
    t_->CallAsync(ranks[i], protocol::Wire(op), request, deadline_,
                  [this, op, &out, &flight, &decode, i](Result<Payload> r) {
                    Count(op, r.status());
                    out[i] = r.ok() ? decode(*r) : Result<T>(r.status());
                    flight.Release();
                  });
  }
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (ranks[i] == self()) out[i] = local();
  }
  flight.Wait();
  return out;
}

std::vector<Status> MemberClient::FanOutStatus(const std::vector<uint32_t>& ranks, Op op,
                                               const protocol::Bytes& request,
                                               const std::function<Status()>& local) {
  struct None {};
  auto results = FanOut<None>(
      ranks, op, request,
      [&]() -> Result<None> {
        Status s = local();
        if (!s.ok()) return s;
        return None{};
      },
      [](const Payload&) -> Result<None> { return None{}; });
  std::vector<Status> out;
  out.reserve(results.size());
  for (auto& r : results) out.push_back(r.status());
  return out;
}

// ---- chunk holder ----

Status MemberClient::ChunkWrite(uint32_t rank, const protocol::ChunkWrite& req) {
  if (rank == self()) return local_->ChunkWrite(req);
  bytes_sent_->Add(req.data.size());
  return Call(rank, Op::kChunkWrite, protocol::Encode(req)).status();
}

void MemberClient::ChunkWriteAsync(uint32_t rank, const protocol::ChunkWrite& req,
                                   std::function<void(Status)> done,
                                   std::function<void()> released) {
  if (rank == self()) {
    Status s = local_->ChunkWrite(req);
    released();
    return done(std::move(s));
  }
  bytes_sent_->Add(req.data.size());
  t_->CallGather(rank, protocol::Wire(Op::kChunkWrite), protocol::EncodeHead(req), req.data,
                 deadline_,
                 [this, done = std::move(done)](Result<Payload> r) {
                   Count(Op::kChunkWrite, r.status());
                   done(r.status());
                 },
                 std::move(released));
}

Status MemberClient::ChunkRead(uint32_t rank, const protocol::ChunkRead& req,
                               std::span<std::byte> dst) {
  if (rank == self()) {
    uint64_t n = 0;
    SHOAL_RETURN_IF_ERROR(local_->ChunkRead(req, dst, &n));
    std::memset(dst.data() + n, 0, dst.size() - n);
    return Status::OK();
  }
  auto reply = Call(rank, Op::kChunkRead, protocol::Encode(req));
  if (!reply.ok()) return reply.status();
  bytes_received_->Add(dst.size());
  return TakeChunkReply(*reply, dst);
}

void MemberClient::ChunkReadAsync(uint32_t rank, const protocol::ChunkRead& req,
                                  std::span<std::byte> dst, std::function<void(Status)> done) {
  if (rank == self()) return done(ChunkRead(rank, req, dst));
  // The reply's data lands in dst itself (the UCX messenger receives a rendezvous reply there,
  // no intermediate vector); only its 12-byte head comes back as a payload.
  t_->CallInto(rank, protocol::Wire(Op::kChunkRead), protocol::Encode(req),
               protocol::kChunkReadReplyHead, dst, deadline_,
               [this, dst, done = std::move(done)](Result<Payload> head, size_t n) {
                 Count(Op::kChunkRead, head.status());
                 if (!head.ok()) return done(head.status());
                 bytes_received_->Add(dst.size());
                 uint32_t crc = 0;
                 Status s = protocol::DecodeChunkReadHead(
                     *head, n, static_cast<uint32_t>(dst.size()), &crc);
                 if (s.ok() && Crc32c(dst.data(), n) != crc) {
                   s = Status::Corruption("chunk read: CRC32C mismatch in transit");
                 }
                 if (s.ok()) std::memset(dst.data() + n, 0, dst.size() - n);
                 done(std::move(s));
               });
}

std::vector<Status> MemberClient::ChunkCommitAll(const std::vector<uint32_t>& ranks,
                                                 uint64_t uid, std::string_view path) {
  return FanOutStatus(ranks, Op::kChunkCommit, protocol::Encode(protocol::ChunkCommit{uid, path}),
                      [&] { return local_->ChunkCommit(uid, path); });
}

std::vector<Status> MemberClient::ChunkDropAll(const std::vector<uint32_t>& ranks, uint64_t uid) {
  return FanOutStatus(ranks, Op::kChunkDrop, protocol::Encode(protocol::UidRequest{uid}),
                      [&] { return local_->ChunkDrop(uid); });
}

// ---- metadata owner ----

Status MemberClient::MetaCheck(uint32_t rank, std::string_view path) {
  if (rank == self()) return local_->MetaCheck(path);
  return Call(rank, Op::kMetaCheck, protocol::Encode(protocol::PathRequest{path})).status();
}

Result<Inode> MemberClient::MetaGet(uint32_t rank, std::string_view path) {
  if (rank == self()) return local_->MetaGet(path);
  SHOAL_ASSIGN_OR_RETURN(Payload reply,
                         Call(rank, Op::kMetaGet, protocol::Encode(protocol::PathRequest{path})));
  protocol::InodeReply r;
  SHOAL_RETURN_IF_ERROR(protocol::Decode(reply, path, &r));
  return std::move(r.inode);
}

std::vector<std::vector<Result<Inode>>> MemberClient::MetaGetMany(
    const std::vector<PathGroup>& groups) {
  std::vector<std::vector<Result<Inode>>> out(groups.size());
  size_t calls = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    out[g].assign(groups[g].second.size(), Status::Unavailable("no reply"));
    if (groups[g].first != self()) {
      calls += (groups[g].second.size() + protocol::kMaxPathsPerRequest - 1) /
               protocol::kMaxPathsPerRequest;
    }
  }
  Flight flight(calls + 1);
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto& [rank, paths] = groups[g];
    if (rank == self()) continue;
    for (size_t from = 0; from < paths.size(); from += protocol::kMaxPathsPerRequest) {
      const size_t n = std::min<size_t>(protocol::kMaxPathsPerRequest, paths.size() - from);
      std::span<const std::string_view> asked(paths.data() + from, n);
      flight.Acquire();
      t_->CallAsync(rank, protocol::Wire(Op::kMetaGetMany),
                    protocol::Encode(protocol::PathsRequest{{asked.begin(), asked.end()}}),
                    deadline_, [this, &out, &flight, asked, g, from](Result<Payload> r) {
                      Count(Op::kMetaGetMany, r.status());
                      protocol::InodesReply reply;
                      Status s = r.ok() ? protocol::Decode(*r, asked, &reply) : r.status();
                      for (size_t i = 0; i < asked.size(); ++i) {
                        out[g][from + i] = s.ok() ? std::move(reply.inodes[i]) : Result<Inode>(s);
                      }
                      flight.Release();
                    });
    }
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    if (groups[g].first == self()) out[g] = local_->MetaGetMany(groups[g].second);
  }
  flight.Wait();
  return out;
}

Result<uint64_t> MemberClient::MetaInsert(uint32_t rank, std::string_view path,
                                          const Inode& inode, uint64_t version) {
  if (rank == self()) return local_->MetaInsert(path, inode, version);
  SHOAL_ASSIGN_OR_RETURN(Payload reply,
                         Call(rank, Op::kMetaInsert,
                              protocol::Encode(protocol::MetaInsert{path, version, inode})));
  protocol::VersionReply r;
  SHOAL_RETURN_IF_ERROR(protocol::Decode(reply, &r));
  return r.version;
}

Result<protocol::RemoveReply> MemberClient::MetaRemove(uint32_t rank, std::string_view path,
                                                       uint64_t uid, uint64_t version) {
  if (rank == self()) return local_->MetaRemove(path, uid, version);
  SHOAL_ASSIGN_OR_RETURN(Payload reply,
                         Call(rank, Op::kMetaRemove,
                              protocol::Encode(protocol::MetaRemove{path, uid, version})));
  protocol::RemoveReply r;
  SHOAL_RETURN_IF_ERROR(protocol::Decode(reply, path, &r));
  return r;
}

std::vector<Status> MemberClient::MetaInsertAll(const std::vector<uint32_t>& ranks,
                                                std::string_view path, const Inode& inode,
                                                uint64_t version) {
  return FanOutStatus(ranks, Op::kMetaInsert,
                      protocol::Encode(protocol::MetaInsert{path, version, inode}),
                      [&] { return local_->MetaInsert(path, inode, version).status(); });
}

std::vector<Status> MemberClient::MetaRemoveAll(const std::vector<uint32_t>& ranks,
                                                std::string_view path, uint64_t uid,
                                                uint64_t version) {
  return FanOutStatus(ranks, Op::kMetaRemove,
                      protocol::Encode(protocol::MetaRemove{path, uid, version}),
                      [&] { return local_->MetaRemove(path, uid, version).status(); });
}

Result<protocol::ShardPageReply> MemberClient::ShardPage(uint32_t rank, uint32_t shard,
                                                         std::string_view after, uint32_t limit) {
  if (rank == self()) return local_->ShardPage(shard, after, limit);
  SHOAL_ASSIGN_OR_RETURN(Payload reply,
                         Call(rank, Op::kShardPage,
                              protocol::Encode(protocol::ShardPage{shard, after, limit})));
  protocol::ShardPageReply r;
  SHOAL_RETURN_IF_ERROR(protocol::Decode(reply, limit, &r));
  return r;
}

Result<uint64_t> MemberClient::MetaReplace(uint32_t rank, std::string_view path, uint64_t uid,
                                           const Inode& inode, uint64_t version) {
  if (rank == self()) return local_->MetaReplace(path, uid, inode, version);
  SHOAL_ASSIGN_OR_RETURN(Payload reply,
                         Call(rank, Op::kMetaReplace,
                              protocol::Encode(protocol::MetaReplace{path, uid, version, inode})));
  protocol::VersionReply r;
  SHOAL_RETURN_IF_ERROR(protocol::Decode(reply, &r));
  return r.version;
}

std::vector<Status> MemberClient::MetaReplaceAll(const std::vector<uint32_t>& ranks,
                                                 std::string_view path, uint64_t uid,
                                                 const Inode& inode, uint64_t version) {
  return FanOutStatus(ranks, Op::kMetaReplace,
                      protocol::Encode(protocol::MetaReplace{path, uid, version, inode}),
                      [&] { return local_->MetaReplace(path, uid, inode, version).status(); });
}

Result<protocol::LeaseReply> MemberClient::Lease(uint32_t rank,
                                                 const protocol::LeaseRequest& req) {
  if (rank == self()) return local_->Lease(req);
  SHOAL_ASSIGN_OR_RETURN(Payload reply, Call(rank, Op::kLease, protocol::Encode(req)));
  protocol::LeaseReply r;
  SHOAL_RETURN_IF_ERROR(protocol::Decode(reply, &r));
  return r;
}

std::vector<Status> MemberClient::ChunkPutMany(const std::vector<ChunkPutCall>& calls) {
  std::vector<Status> out(calls.size(), Status::Unavailable("no reply"));
  Flight flight(calls.size() + 1);
  for (size_t i = 0; i < calls.size(); ++i) {
    const auto& [rank, req] = calls[i];
    if (rank == self()) continue;
    uint64_t bytes = 0;
    for (const protocol::ChunkPutItem& item : req.items) bytes += item.data.size();
    flight.Acquire();
    t_->CallAsync(rank, protocol::Wire(Op::kChunkPutMany), protocol::Encode(req), deadline_,
                  [this, &out, &flight, i, bytes](Result<Payload> r) {
                    Count(Op::kChunkPutMany, r.status());
                    if (r.ok()) bytes_sent_->Add(bytes);
                    out[i] = r.status();
                    flight.Release();
                  });
  }
  for (size_t i = 0; i < calls.size(); ++i) {
    if (calls[i].first == self()) out[i] = local_->ChunkPutMany(calls[i].second);
  }
  flight.Wait();
  return out;
}

std::vector<std::vector<Result<uint64_t>>> MemberClient::MetaInsertMany(
    std::vector<InsertGroup>& groups) {
  std::vector<std::vector<Result<uint64_t>>> out(groups.size());
  Flight flight(groups.size() + 1);
  for (size_t g = 0; g < groups.size(); ++g) {
    auto& [rank, records] = groups[g];
    out[g].assign(records.size(), Status::Unavailable("no reply"));
    if (rank == self() || records.empty()) continue;
    flight.Acquire();
    t_->CallAsync(rank, protocol::Wire(Op::kMetaInsertMany),
                  protocol::EncodeMetaInsertMany(records), deadline_,
                  [this, &out, &flight, g](Result<Payload> r) {
                    Count(Op::kMetaInsertMany, r.status());
                    protocol::VersionsReply reply;
                    Status s = r.ok() ? protocol::Decode(*r, out[g].size(), &reply) : r.status();
                    for (size_t i = 0; i < out[g].size(); ++i) {
                      out[g][i] = s.ok() ? std::move(reply.versions[i]) : Result<uint64_t>(s);
                    }
                    flight.Release();
                  });
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    if (groups[g].first == self() && !groups[g].second.empty()) {
      out[g] = local_->MetaInsertMany(groups[g].second);
    }
  }
  flight.Wait();
  return out;
}

std::vector<Result<ListPage>> MemberClient::MetaListAll(const std::vector<uint32_t>& ranks,
                                                        std::string_view dir,
                                                        std::string_view start_after,
                                                        uint32_t limit) {
  return FanOut<ListPage>(
      ranks, Op::kMetaList, protocol::Encode(protocol::MetaList{dir, start_after, limit}),
      [&]() { return local_->MetaList(dir, start_after, limit); },
      [limit](const Payload& p) -> Result<ListPage> {
        protocol::MetaListReply r;
        SHOAL_RETURN_IF_ERROR(protocol::Decode(p, limit, &r));
        ListPage page;
        page.truncated = r.truncated;
        page.entries = std::move(r.entries);
        return page;
      });
}

}  // namespace shoal::engine
