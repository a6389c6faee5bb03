#include "lib/checkpoint_tags.h"

#include <fmt/format.h>

#include <algorithm>

#include "lib/checkpointer_impl.h"
#include "lib/manifest.h"

namespace shoal {

Result<std::vector<DirEntry>> ListAll(Engine& e, const std::string& dir) {
  std::vector<DirEntry> all;
  ListOptions lo;
  for (;;) {
    auto page = e.List(dir, lo);
    if (!page.ok()) {
      if (page.status().code() == Code::kNotFound) return all;
      return page.status();
    }
    all.insert(all.end(), page->entries.begin(), page->entries.end());
    if (!page->truncated) return all;
    lo.start_after = page->next_start_after;
  }
}

Result<std::vector<TagInfo>> CommittedTags(Engine& e, std::string_view root) {
  SHOAL_ASSIGN_OR_RETURN(auto entries, ListAll(e, CommitsDir(root)));
  std::vector<TagInfo> tags;
  for (const DirEntry& d : entries) {
    if (d.is_dir) continue;
    if (auto t = ParseManifestName(d.name)) tags.push_back(std::move(*t));
  }
  std::sort(tags.begin(), tags.end(),
            [](const TagInfo& a, const TagInfo& b) { return a.sequence < b.sequence; });
  return tags;
}

Result<std::vector<TagInfo>> Checkpointer::Impl::Tags() {
  return CommittedTags(engine_, options_.root);
}

Result<TagInfo> Checkpointer::Impl::Find(std::string_view tag) {
  SHOAL_RETURN_IF_ERROR(ValidateTag(tag));
  SHOAL_ASSIGN_OR_RETURN(auto tags, Tags());
  for (TagInfo& t : tags) {
    if (t.tag == tag) return std::move(t);
  }
  return Status::NotFound(fmt::format("no committed checkpoint \"{}\"", tag));
}

}  // namespace shoal
