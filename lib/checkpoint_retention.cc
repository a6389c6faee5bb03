// Retention of committed checkpoints: removing a tag (manifest first, then its data), keeping
// the newest keep_last (every excess manifest first, then their data), and collecting the data
// that uncommitted saves and interrupted removals left behind.
#include <fmt/format.h>

#include <set>
#include <string>

#include "lib/checkpoint_commit.h"
#include "lib/checkpoint_tags.h"
#include "lib/checkpointer_impl.h"
#include "lib/manifest.h"

namespace shoal {
namespace {

// Removes every object below `dir`; returns how many.
Result<uint64_t> RemoveTree(Engine& e, const std::string& dir) {
  uint64_t n = 0;
  SHOAL_ASSIGN_OR_RETURN(auto entries, ListAll(e, dir));
  for (const DirEntry& d : entries) {
    std::string p = dir + "/" + d.name;
    if (d.is_dir) {
      SHOAL_ASSIGN_OR_RETURN(uint64_t k, RemoveTree(e, p));
      n += k;
      continue;
    }
    Status s = e.Remove(p);
    if (!s.ok() && s.code() != Code::kNotFound) return s.WithContext("removing checkpoint data");
    n++;
  }
  return n;
}

}  // namespace

Status Checkpointer::Impl::Remove(std::string_view tag) {
  SHOAL_ASSIGN_OR_RETURN(TagInfo t, Find(tag));
  // Unpublish first: from here on the tag is not listed, whatever happens to its data.
  SHOAL_RETURN_IF_ERROR(engine_.Remove(ManifestPath(options_.root, t.sequence, t.tag)));
  return RemoveTree(engine_, DataDir(options_.root) + "/" + t.tag).status();
}

// Every excess tag is unpublished (oldest first, so the listed tags stay a suffix of the commit
// order) before any blob goes, and blobs go only once a fresh listing confirms that none of
// those tags is listed any more. So the listed count is down to keep_last as soon as the
// (metadata-only) removals are done, a rank killed or a removal failing while blobs are being
// deleted never leaves a listed tag without a blob, and data left behind is data without a
// manifest: the next Begin collects it.
Result<uint32_t> Checkpointer::Impl::Retain(uint32_t keep_last) {
  SHOAL_ASSIGN_OR_RETURN(auto tags, Tags());
  if (tags.size() <= keep_last) return 0u;
  const std::vector<TagInfo> excess(tags.begin(), tags.end() - keep_last);
  for (const TagInfo& t : excess) {
    Status s = engine_.Remove(ManifestPath(options_.root, t.sequence, t.tag));
    if (!s.ok() && s.code() != Code::kNotFound) {
      return s.WithContext(fmt::format("retention: unpublishing \"{}\"", t.tag));
    }
  }
  AtCommitPoint(CommitPoint::kUnpublished, engine_, excess.back().tag);
  std::set<std::string> gone;
  for (const TagInfo& t : excess) gone.insert(t.tag);
  SHOAL_ASSIGN_OR_RETURN(auto listed, Tags());
  for (const TagInfo& t : listed) {
    if (gone.count(t.tag) != 0) {
      return Status::Unavailable(fmt::format(
          "retention: \"{}\" is still listed after its manifest was removed; its data stays",
          t.tag));
    }
  }
  for (const TagInfo& t : excess) {
    SHOAL_RETURN_IF_ERROR(RemoveTree(engine_, DataDir(options_.root) + "/" + t.tag).status());
  }
  return static_cast<uint32_t>(excess.size());
}

Result<CollectReport> Checkpointer::Impl::Collect() {
  SHOAL_ASSIGN_OR_RETURN(auto tags, Tags());
  std::set<std::string> committed;
  for (const TagInfo& t : tags) committed.insert(t.tag);
  SHOAL_ASSIGN_OR_RETURN(auto dirs, ListAll(engine_, DataDir(options_.root)));
  CollectReport report;
  for (const DirEntry& d : dirs) {
    if (committed.count(d.name) != 0) continue;
    std::string dir = DataDir(options_.root) + "/" + d.name;
    if (!d.is_dir) {
      SHOAL_RETURN_IF_ERROR(engine_.Remove(dir));
      report.objects++;
      continue;
    }
    SHOAL_ASSIGN_OR_RETURN(uint64_t n, RemoveTree(engine_, dir));
    report.objects += n;
    report.tags.push_back(d.name);
  }
  return report;
}

Status Checkpointer::Remove(std::string_view tag) { return impl_->Remove(tag); }

Result<uint32_t> Checkpointer::Retain(uint32_t keep_last) { return impl_->Retain(keep_last); }

Result<CollectReport> Checkpointer::CollectAbandoned() { return impl_->Collect(); }

}  // namespace shoal
