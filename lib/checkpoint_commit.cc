// The commit protocol of a checkpoint save: every rank's part (its blob list, or why it failed)
// all-gathered; rank 0 publishes the manifest, the commit point, when every part succeeded;
// rank 0 runs retention; every rank returns rank 0's verdict, or Timeout ("outcome unknown")
// when it cannot hear it.
#include "lib/checkpoint_commit.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>

#include "base/log.h"
#include "engine/object_rules.h"
#include "engine/protocol.h"
#include "lib/checkpoint_tags.h"
#include "lib/engine_impl.h"
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

Status Definite(const Status& s) {
  if (s.ok() || s.code() != Code::kTimeout) return s;
  return Status(Code::kUnavailable, "timed out: " + s.message());
}

Status OutcomeUnknown(const Status& why) {
  return Status::Timeout(fmt::format(
      "outcome unknown: {} (the tag is committed iff List/Latest show it once rank 0's commit "
      "ended; the next Begin waits for that)",
      why.ToString()));
}

namespace {

std::mutex hook_mu;
CommitHook& Hook() {
  static CommitHook hook;
  return hook;
}

}  // namespace

void SetCommitHookForTesting(CommitHook hook) {
  std::lock_guard lk(hook_mu);
  Hook() = std::move(hook);
}

void AtCommitPoint(CommitPoint point, Engine& e, std::string_view tag) {
  CommitHook hook;
  {
    std::lock_guard lk(hook_mu);
    hook = Hook();
  }
  if (hook) hook(point, e, tag);
}

// The outcome is exact on every rank (include/shoal/checkpoint.h):
// - rank 0 knows it: it sealed the manifest (OK, whatever happens to the verdict's all-gather
//   afterwards) or it did not (the reason). A failed seal is settled by a Stat of the manifest;
//   only when that fails too is rank 0's own outcome unknown.
// - another rank knows it when its own part failed (rank 0 publishes only when every part is
//   OK) or when rank 0's verdict reached it. Otherwise (the verdict's all-gather failed: rank 0
//   or a peer died, or timed out) it cannot know: OutcomeUnknown. A failure of the parts'
//   all-gather is not enough to know either: rank 0 may have received every part (its
//   collective succeeds while another rank's fails), so every rank still takes part in the
//   verdict's all-gather, which tells the live ones the truth.
void SaveJob::CommitAndFinish(std::string_view metadata) {
  metrics::Registry& reg = engine->internal().metrics();
  const auto t0 = std::chrono::steady_clock::now();
  Status s = Commit(metadata);
  const auto now = std::chrono::steady_clock::now();
  reg.histogram("checkpoint.commit.latency_ns").RecordDuration(now - t0);
  reg.histogram("checkpoint.save.latency_ns").RecordDuration(now - start);
  reg.counter(s.ok() ? "checkpoint.saves" : "checkpoint.save_errors").Add();
  handle->Finish(s, now - start);
}

Status SaveJob::Commit(std::string_view metadata) {
  Engine& e = *engine;
  const std::string context = fmt::format("committing \"{}\"", tag);
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
  if (parts.ok()) AtCommitPoint(CommitPoint::kPartsGathered, e, tag);

  // 2. Rank 0 publishes the manifest when every rank succeeded.
  Status outcome;  // rank 0: the verdict
  bool published = false, unknown = false;
  if (e.rank() == 0) {
    outcome = parts.status();
    CheckpointManifest m;
    m.tag = tag;
    m.world_size = e.world_size();
    m.metadata = std::string(metadata);
    for (uint32_t r = 0; outcome.ok() && r < parts->size(); ++r) {
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
        const std::string path = ManifestPath(root, m.sequence, tag);
        outcome = e.Put(path, *json);
        if (outcome.ok()) {
          published = true;
        } else {
          // A failed Put may still have sealed (the seal's reply lost): the store settles it.
          auto st = e.Stat(path);
          if (st.ok()) {
            Log(LogLevel::kWarn, "checkpoint \"{}\": the manifest's Put said {}, yet it is sealed",
                tag, outcome.ToString());
            published = true;
            outcome = Status::OK();
          } else if (st.status().code() != Code::kNotFound) {
            unknown = true;
            outcome = OutcomeUnknown(outcome.WithContext(
                fmt::format("sealing the manifest (then Stat: {})", st.status().ToString())));
          }
        }
      }
    }
    if (published) {
      Log(LogLevel::kInfo, "checkpoint \"{}\" committed: {} blobs from {} ranks, sequence {}", tag,
          m.blobs.size(), m.world_size, m.sequence);
      AtCommitPoint(CommitPoint::kPublished, e, tag);
      // Retention before the verdict: when Commit returns on any rank, at most keep_last tags
      // are listed (tests/python/world_worker.py relies on it). Its failure is logged and
      // never changes the result: the tag is committed.
      if (after_publish) after_publish();
    } else if (!unknown) {
      outcome = Definite(outcome);
    }
    outcome = outcome.WithContext(context);
  }

  // 3. Every rank learns the outcome (rank 0 tells it even when the parts' all-gather failed:
  // the live ranks then know it was not committed).
  auto told = e.AllGather(e.rank() == 0 ? protocol::Encode(protocol::Verdict{outcome})
                                        : std::vector<std::byte>{});
  if (e.rank() == 0) {
    if (!told.ok()) {
      Log(LogLevel::kWarn, "checkpoint \"{}\": the verdict reached not every rank: {}", tag,
          told.status().ToString());
    }
    return published ? Status::OK() : outcome;
  }
  if (!local.ok()) return Definite(local).WithContext(context);  // rank 0 cannot have published
  if (!told.ok()) return OutcomeUnknown(told.status().WithContext("hearing rank 0's verdict"))
                      .WithContext(context);
  protocol::Verdict v;
  Status bad = protocol::Decode((*told)[0], &v);
  if (!bad.ok()) return OutcomeUnknown(bad.WithContext("rank 0's verdict")).WithContext(context);
  return v.status;  // already in context, and Definite or OutcomeUnknown, on rank 0
}

}  // namespace shoal
