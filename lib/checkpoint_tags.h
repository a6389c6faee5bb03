// The committed tags of a checkpoint root, as the store holds them: one manifest object per
// tag below <root>/commits (lib/manifest.h names them). Shared by the commit protocol (the next
// sequence), Checkpointer's lookups and retention.
//
// Not collective; each call lists the store afresh (no cache), so it sees every rank's commits.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "shoal/checkpoint.h"
#include "shoal/engine.h"
#include "shoal/result.h"

namespace shoal {

// Every entry of `dir`; empty when it does not exist.
Result<std::vector<DirEntry>> ListAll(Engine& e, const std::string& dir);

// The committed tags below `root`, oldest first.
Result<std::vector<TagInfo>> CommittedTags(Engine& e, std::string_view root);

}  // namespace shoal
