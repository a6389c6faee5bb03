// Engine::Impl: what the public Engine holds. For one member it is the member's ObjectStore;
// later the world (placement, remote members) sits here, above engine/.
#pragma once

#include <memory>

#include "engine/object_store.h"
#include "shoal/engine.h"

namespace shoal {

class Engine::Impl {
 public:
  explicit Impl(std::unique_ptr<engine::ObjectStore> store) : store_(std::move(store)) {}
  engine::ObjectStore& store() { return *store_; }

 private:
  std::unique_ptr<engine::ObjectStore> store_;
};

}  // namespace shoal
