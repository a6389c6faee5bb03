// One translation of shoal::Status into Python exceptions, for the whole module.
//
// Every binding turns a non-OK Status into a C++ `StatusError` (ThrowIfError / ValueOrThrow);
// one translator registered at import raises the matching Python class:
//
//   shoal.Error                      base of all of them
//   NotFound           -> shoal.NotFoundError(Error, FileNotFoundError)     errno ENOENT
//   AlreadyExists      -> shoal.AlreadyExistsError(Error, FileExistsError)  errno EEXIST
//   InvalidArgument    -> shoal.InvalidArgumentError(Error, ValueError)
//   Corruption         -> shoal.CorruptionError(Error, OSError)            errno EIO
//   IOError            -> shoal.StorageIOError(Error, OSError)             errno EIO
//   NoSpace            -> shoal.NoSpaceError(Error, OSError)               errno ENOSPC
//   PermissionDenied   -> shoal.PermissionDeniedError(Error, PermissionError) errno EACCES
//   Timeout            -> shoal.TimeoutError(Error, TimeoutError)          errno ETIMEDOUT
//   Unavailable        -> shoal.UnavailableError(Error, ConnectionError)
//   FailedPrecondition -> shoal.FailedPreconditionError(Error, RuntimeError)
//   Internal           -> shoal.InternalError(Error, RuntimeError)
//
// Each exception carries `code` (the stable code name, e.g. "NotFound"); str() is the Status
// message.
#pragma once

#include <pybind11/pybind11.h>

#include <stdexcept>
#include <utility>

#include "shoal/result.h"
#include "shoal/status.h"

namespace shoal::python {

class StatusError : public std::runtime_error {
 public:
  explicit StatusError(Status s) : std::runtime_error(s.ToString()), status_(std::move(s)) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};

inline void ThrowIfError(const Status& s) {
  if (!s.ok()) throw StatusError(s);
}

template <typename T>
T ValueOrThrow(Result<T>&& r) {
  if (!r.ok()) throw StatusError(r.status());
  return std::move(r).value();
}

// Creates the exception classes in `m` and registers the translator. Once, at import.
void RegisterErrors(pybind11::module_& m);

}  // namespace shoal::python
