// The commit protocol's collective pieces that Checkpointer::Begin shares with the commit itself
// (SaveJob::Commit, in checkpoint_commit.cc).
#pragma once

#include "shoal/engine.h"
#include "shoal/status.h"

namespace shoal {

// Collective: every rank returns rank 0's `verdict` (the others' argument is ignored).
Status Rank0Verdict(Engine& e, const Status& verdict);

}  // namespace shoal
