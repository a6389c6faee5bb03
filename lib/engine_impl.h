// Engine::Impl: what the public Engine holds. A single member is its ObjectStore; a member of a
// world is a Cluster (engine/cluster.h), which owns the member's ObjectStore.
#pragma once

#include <memory>

#include "engine/cluster.h"
#include "engine/object_store.h"
#include "shoal/engine.h"

namespace shoal {

class Engine::Impl {
 public:
  explicit Impl(std::unique_ptr<engine::ObjectStore> store) : store_(std::move(store)) {}
  explicit Impl(std::unique_ptr<engine::Cluster> cluster) : cluster_(std::move(cluster)) {}

  engine::ObjectStore& store() { return cluster_ ? cluster_->store() : *store_; }
  engine::Cluster* cluster() { return cluster_.get(); }

  // Calls fn on whichever serves the API: the cluster in a world, else the store.
  template <typename Fn>
  auto Serve(Fn&& fn) {
    return cluster_ ? fn(*cluster_) : fn(*store_);
  }

 private:
  std::unique_ptr<engine::ObjectStore> store_;
  std::unique_ptr<engine::Cluster> cluster_;
};

}  // namespace shoal
