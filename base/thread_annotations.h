// Clang thread-safety annotations (checked by a clang build with -Wthread-safety; no-ops under
// GCC), and the annotated Mutex / MutexLock the engine's code uses instead of bare std::mutex
// where a mutex guards state: the type then says which state, and the compiler checks it.
// Model: leveldb's port/thread_annotations.h and port::Mutex.
#pragma once

#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define SHOAL_TSA(x) __attribute__((x))
#else
#define SHOAL_TSA(x)
#endif

#define CAPABILITY(x) SHOAL_TSA(capability(x))
#define SCOPED_CAPABILITY SHOAL_TSA(scoped_lockable)
#define GUARDED_BY(x) SHOAL_TSA(guarded_by(x))
#define PT_GUARDED_BY(x) SHOAL_TSA(pt_guarded_by(x))
#define REQUIRES(...) SHOAL_TSA(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) SHOAL_TSA(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) SHOAL_TSA(acquire_capability(__VA_ARGS__))
#define RELEASE(...) SHOAL_TSA(release_capability(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS SHOAL_TSA(no_thread_safety_analysis)

namespace shoal {

class CAPABILITY("mutex") Mutex {
 public:
  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  // For condition variables: the std::mutex underneath.
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* mu_;
};

// Waits on `cv` with `mu` held (the caller holds it through a MutexLock); the analysis cannot
// see through std::condition_variable, so the wait is declared to need the lock.
template <typename Pred>
void Await(std::condition_variable& cv, Mutex* mu, Pred pred) REQUIRES(mu) {
  std::unique_lock<std::mutex> lk(mu->native(), std::adopt_lock);
  cv.wait(lk, pred);
  lk.release();
}

template <typename Pred, typename Duration>
bool AwaitFor(std::condition_variable& cv, Mutex* mu, Duration d, Pred pred) REQUIRES(mu) {
  std::unique_lock<std::mutex> lk(mu->native(), std::adopt_lock);
  bool ok = cv.wait_for(lk, d, pred);
  lk.release();
  return ok;
}

}  // namespace shoal
