// Descriptors that a process forked from this one must not keep open.
//
// A forked child (a PyTorch DataLoader worker forked after the engine opened) inherits every
// descriptor. Most are harmless there, since the child never uses the engine (lib/engine.cc
// refuses it). Two kinds outlive the parent's close and so break what comes after it: a
// store's LOCK descriptor (its flock belongs to the open file, which the child now shares: the
// store stays locked against the parent's next Open, or the next job's, until every worker
// exits) and rank 0's rendezvous listener (the port stays bound and accepting into a backlog
// nobody serves, so observers hang and the next job's rank 0 cannot listen). The owner of such a
// descriptor registers it here; every child forked while it is registered closes its copy
// before fork() returns there (pthread_atfork). The parent's descriptor is untouched. Until the
// child first runs, the kernel's copy is the child's as much as the parent's (Linux has no
// close-on-fork flag): a parent that closes and reopens in that instant (microseconds; longer
// on a loaded machine) still finds the LOCK held or the port taken, and a connection then
// queues at the child's copy until its handler closes it.
//
// Contract: Forget before closing a registered descriptor (a closed number may be reused by an
// unrelated file that a child would then close). Thread-safety: all functions are
// thread-safe, and a fork in another thread sees a registration either whole or not at all.
#pragma once

namespace shoal {

void CloseInForkedChildren(int fd);
void ForgetInForkedChildren(int fd);

}  // namespace shoal
