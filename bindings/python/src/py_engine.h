// The Engine as Python holds it: closable (close() releases the GIL while the engine drains),
// and refusing to close while checkpointers built on it are open.
#pragma once

#include <memory>

#include "bindings/python/src/errors.h"
#include "shoal/engine.h"

namespace shoal::python {

struct PyEngine {
  std::unique_ptr<Engine> engine;
  // Open Checkpointers and DatasetCaches built on `engine` (guarded by the GIL): close() is
  // refused while any is open.
  int users = 0;

  Engine& get() {
    if (!engine) throw StatusError(Status::FailedPrecondition("the shoal engine is closed"));
    return *engine;
  }
};

void BindEngine(pybind11::module_& m);
void BindCheckpoint(pybind11::module_& m);
void BindDataset(pybind11::module_& m);
void BindSharedRead(pybind11::module_& m);

}  // namespace shoal::python
