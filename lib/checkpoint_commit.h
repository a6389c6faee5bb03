// The commit protocol's collective pieces that Checkpointer::Begin shares with the commit itself
// (SaveJob::Commit, in checkpoint_commit.cc), the statuses of its exact outcome, and a test seam.
#pragma once

#include <functional>
#include <string_view>

#include "shoal/engine.h"
#include "shoal/status.h"

namespace shoal {

// Collective: every rank returns rank 0's `verdict` (the others' argument is ignored).
Status Rank0Verdict(Engine& e, const Status& verdict);

// Commit's result is exact (include/shoal/checkpoint.h): OK iff the tag is committed, Timeout
// iff this rank cannot know, anything else iff it is not committed. Definite(s): `s` as a
// "not committed" result (a Timeout becomes Unavailable, the message says it timed out).
// OutcomeUnknown(why): the Timeout that means "outcome unknown".
Status Definite(const Status& s);
Status OutcomeUnknown(const Status& why);

// Test seam: the instants of the commit protocol and of retention at which a test can stop a
// rank (tests/lib/ckpt_member_main.cc kills itself there). Not for production use; the hook is
// global to the process and must be set before any checkpointer runs.
enum class CommitPoint {
  kPartsGathered,  // every rank: its parts all-gather returned OK
  kPublished,      // rank 0: the manifest is sealed; neither retention nor the verdict ran
  kUnpublished,    // retention (rank 0): every excess manifest removed, no blob removed yet
};
using CommitHook = std::function<void(CommitPoint point, Engine& e, std::string_view tag)>;
void SetCommitHookForTesting(CommitHook hook);
void AtCommitPoint(CommitPoint point, Engine& e, std::string_view tag);

}  // namespace shoal
