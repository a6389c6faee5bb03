// The extension module shoal._shoal; the Python package `shoal` (bindings/python/shoal) wraps it.
#include <pybind11/pybind11.h>

#include "bindings/python/src/errors.h"
#include "bindings/python/src/py_engine.h"

PYBIND11_MODULE(_shoal, m) {
  m.doc() = "shoal: the storage engine every rank links in (C++ core)";
  shoal::python::RegisterErrors(m);
  shoal::python::BindEngine(m);
  shoal::python::BindCheckpoint(m);
  shoal::python::BindDataset(m);
  shoal::python::BindSharedRead(m);
}
