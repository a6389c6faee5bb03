#include "base/fork_closed_fds.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <vector>

namespace shoal {
namespace {

// The registry. Its mutex is held across fork() (the prepare handler locks it, the parent and
// child handlers unlock it), so the child's copy of the list is never one half-changed.
struct Registry {
  std::mutex mu;
  std::vector<int> fds;
};

Registry& TheRegistry() {
  static Registry* r = [] {
    auto* reg = new Registry;  // never destroyed: a fork may come during static destruction
    ::pthread_atfork([] { TheRegistry().mu.lock(); }, [] { TheRegistry().mu.unlock(); },
                     [] {
                       Registry& g = TheRegistry();
                       for (int fd : g.fds) ::close(fd);
                       g.fds.clear();
                       g.mu.unlock();
                     });
    return reg;
  }();
  return *r;
}

}  // namespace

void CloseInForkedChildren(int fd) {
  if (fd < 0) return;
  Registry& r = TheRegistry();
  std::lock_guard<std::mutex> lk(r.mu);
  r.fds.push_back(fd);
}

void ForgetInForkedChildren(int fd) {
  if (fd < 0) return;
  Registry& r = TheRegistry();
  std::lock_guard<std::mutex> lk(r.mu);
  r.fds.erase(std::remove(r.fds.begin(), r.fds.end(), fd), r.fds.end());
}

}  // namespace shoal
