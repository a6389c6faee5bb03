// Engine::Impl: what the public Engine holds — one ObjectApi (engine/object_api.h), a Cluster
// for every Engine::Open (a world of one included) or, for tests inside the project, any other
// implementation (an ObjectStore over a fault-injecting disk) through Wrap. Not installed.
#pragma once

#include <memory>

#include "engine/object_api.h"
#include "shoal/engine.h"

namespace shoal {

class Engine::Impl {
 public:
  explicit Impl(std::unique_ptr<engine::ObjectApi> api);

  // An Engine forwarding to `api`.
  static std::unique_ptr<Engine> Wrap(std::unique_ptr<engine::ObjectApi> api);

  engine::ObjectApi& api() { return *api_; }
  // OK in the process that opened the engine; FailedPrecondition in a forked child.
  Status Usable() const;
  bool forked() const;
  // Gives up the implementation without destroying it (a forked child must not join threads
  // that exist only in its parent).
  void Leak() { (void)api_.release(); }

 private:
  std::unique_ptr<engine::ObjectApi> api_;
  uint64_t fork_generation_;
  int pid_;
};

}  // namespace shoal
