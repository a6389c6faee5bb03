#include "bindings/python/src/errors.h"

#include <cerrno>
#include <string>

namespace py = pybind11;

namespace shoal::python {
namespace {

struct Mapping {
  Code code;
  const char* name;
  PyObject* builtin;  // the standard class it also derives from
  int err;            // errno for OSError subclasses, else 0
};

// Filled once at import; index = code.
PyObject* g_classes[static_cast<int>(Code::kInternal) + 1] = {};
PyObject* g_base = nullptr;

PyObject* Instance(PyObject* cls, int err, const Status& s) {
  const std::string msg = s.ToString();
  PyObject* args = err != 0 ? Py_BuildValue("(is)", err, msg.c_str())
                            : Py_BuildValue("(s)", msg.c_str());
  if (args == nullptr) return nullptr;
  PyObject* e = PyObject_CallObject(cls, args);
  Py_DECREF(args);
  if (e == nullptr) return nullptr;
  const std::string code(CodeName(s.code()));
  PyObject* c = PyUnicode_FromString(code.c_str());
  if (c != nullptr) {
    PyObject_SetAttrString(e, "code", c);
    Py_DECREF(c);
  }
  return e;
}

int g_errno[static_cast<int>(Code::kInternal) + 1] = {};

}  // namespace

void RegisterErrors(py::module_& m) {
  const Mapping mappings[] = {
      {Code::kNotFound, "NotFoundError", PyExc_FileNotFoundError, ENOENT},
      {Code::kAlreadyExists, "AlreadyExistsError", PyExc_FileExistsError, EEXIST},
      {Code::kInvalidArgument, "InvalidArgumentError", PyExc_ValueError, 0},
      {Code::kCorruption, "CorruptionError", PyExc_OSError, EIO},
      {Code::kIOError, "StorageIOError", PyExc_OSError, EIO},
      {Code::kNoSpace, "NoSpaceError", PyExc_OSError, ENOSPC},
      {Code::kUnavailable, "UnavailableError", PyExc_ConnectionError, 0},
      {Code::kTimeout, "TimeoutError", PyExc_TimeoutError, ETIMEDOUT},
      {Code::kPermissionDenied, "PermissionDeniedError", PyExc_PermissionError, EACCES},
      {Code::kFailedPrecondition, "FailedPreconditionError", PyExc_RuntimeError, 0},
      {Code::kInternal, "InternalError", PyExc_RuntimeError, 0},
  };
  g_base = PyErr_NewExceptionWithDoc("shoal.Error",
                                     "Base class of every error shoal raises; `code` names the "
                                     "shoal status code.",
                                     PyExc_Exception, nullptr);
  if (g_base == nullptr) throw py::error_already_set();
  m.add_object("Error", py::handle(g_base));
  for (const Mapping& mp : mappings) {
    PyObject* bases = PyTuple_Pack(2, g_base, mp.builtin);
    if (bases == nullptr) throw py::error_already_set();
    const std::string qualified = std::string("shoal.") + mp.name;
    PyObject* cls = PyErr_NewException(qualified.c_str(), bases, nullptr);
    Py_DECREF(bases);
    if (cls == nullptr) throw py::error_already_set();
    g_classes[static_cast<int>(mp.code)] = cls;
    g_errno[static_cast<int>(mp.code)] = mp.err;
    m.add_object(mp.name, py::handle(cls));
  }
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      int i = static_cast<int>(e.status().code());
      if (i <= 0 || i >= static_cast<int>(std::size(g_classes)) || g_classes[i] == nullptr) {
        i = static_cast<int>(Code::kInternal);
      }
      PyObject* cls = g_classes[i];
      PyObject* inst = Instance(cls, g_errno[i], e.status());
      if (inst == nullptr) return;  // the Python error of building it is set
      PyErr_SetObject(cls, inst);
      Py_DECREF(inst);
    }
  });
}

}  // namespace shoal::python
