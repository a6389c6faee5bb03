// The commit protocol of a checkpoint save: every rank's part (its blob list, or why it failed)
// all-gathered; rank 0 publishes the manifest, the commit point, when every part succeeded;
// every rank returns rank 0's verdict.
#include "lib/checkpoint_commit.h"

#include <fmt/format.h>

#include <algorithm>

#include "base/log.h"
#include "engine/object_rules.h"
#include "engine/protocol.h"
#include "lib/checkpoint_tags.h"
#include "lib/manifest.h"
#include "lib/save_job.h"

namespace shoal {
namespace {

namespace protocol = engine::protocol;

constexpr size_t kMaxMetadata = 64 << 10;

}  // namespace

Status Rank0Verdict(Engine& e, const Status& verdict) {
  auto told = e.AllGather(e.rank() == 0 ? protocol::Encode(protocol::Verdict{verdict})
                                        : std::vector<std::byte>{});
  if (!told.ok()) return told.status();
  if (e.rank() == 0) return verdict;
  protocol::Verdict v;
  SHOAL_RETURN_IF_ERROR(protocol::Decode((*told)[0], &v));
  return v.status;
}

Status SaveJob::Commit(std::string_view metadata) {
  Engine& e = *engine;
  // 1. Every rank's part: its blob list, or why it failed.
  Status local;
  {
    std::lock_guard lk(mu);
    local = error;
  }
  if (local.ok() && metadata.size() > kMaxMetadata) {
    local = Status::InvalidArgument(
        fmt::format("checkpoint metadata of {} bytes (at most {})", metadata.size(), kMaxMetadata));
  }
  std::vector<std::byte> mine;
  if (local.ok()) {
    mine = protocol::Encode(protocol::CommitPart{Status::OK(), blobs});
    if (mine.size() > protocol::kMaxCommitPart) {
      local = Status::InvalidArgument(fmt::format(
          "rank {}: the list of {} blobs needs {} bytes, more than a commit carries ({})",
          e.rank(), blobs.size(), mine.size(), protocol::kMaxCommitPart));
    }
  }
  if (!local.ok()) mine = protocol::Encode(protocol::CommitPart{local, {}});
  auto parts = e.AllGather(mine);
  if (!parts.ok()) return parts.status().WithContext(fmt::format("committing \"{}\"", tag));

  // 2. Rank 0 publishes the manifest when every rank succeeded.
  Status outcome;
  if (e.rank() == 0) {
    CheckpointManifest m;
    m.tag = tag;
    m.world_size = e.world_size();
    m.metadata = std::string(metadata);
    for (uint32_t r = 0; r < parts->size() && outcome.ok(); ++r) {
      protocol::CommitPart part;
      outcome = protocol::Decode((*parts)[r], r, &part);
      if (outcome.ok() && !part.status.ok()) {
        outcome = part.status.WithContext(fmt::format("rank {} could not save", r));
      }
      for (BlobInfo& blob : part.blobs) m.blobs.push_back(std::move(blob));
    }
    std::sort(m.blobs.begin(), m.blobs.end(),
              [](const BlobInfo& a, const BlobInfo& b) { return a.name < b.name; });
    for (size_t i = 1; i < m.blobs.size() && outcome.ok(); ++i) {
      if (m.blobs[i].name == m.blobs[i - 1].name) {
        outcome = Status::AlreadyExists(fmt::format("blob \"{}\" saved twice", m.blobs[i].name));
      }
    }
    if (outcome.ok()) {
      // The sequence: one past the newest committed tag.
      auto tags = CommittedTags(e, root);
      outcome = tags.status();
      for (size_t i = 0; outcome.ok() && i < tags->size(); ++i) {
        if ((*tags)[i].tag == tag) {
          outcome = Status::AlreadyExists(fmt::format("checkpoint \"{}\" is committed", tag));
        }
      }
      if (outcome.ok()) {
        m.sequence = tags->empty() ? 1 : tags->back().sequence + 1;
        m.commit_time_ns = engine::SealTimeNs();
      }
    }
    if (outcome.ok()) {
      auto json = EncodeManifest(m);
      outcome = json.status();
      // The commit point: sealing this one object publishes the tag.
      if (outcome.ok()) {
        outcome = e.Put(ManifestPath(root, m.sequence, tag), *json);
      }
    }
    if (outcome.ok()) {
      Log(LogLevel::kInfo, "checkpoint \"{}\" committed: {} blobs from {} ranks, sequence {}", tag,
          m.blobs.size(), m.world_size, m.sequence);
      if (after_publish) after_publish();
    }
    outcome = outcome.WithContext(fmt::format("committing \"{}\"", tag));
  }
  // 3. Every rank learns the outcome.
  return Rank0Verdict(e, outcome).WithContext(fmt::format("committing \"{}\"", tag));
}

}  // namespace shoal
