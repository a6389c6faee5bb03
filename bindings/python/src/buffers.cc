#include "bindings/python/src/buffers.h"

#include <string>

namespace py = pybind11;

namespace shoal::python {

Bytes::Bytes(py::handle obj, bool writable) {
  if (PyObject_CheckBuffer(obj.ptr())) {
    const int flags = (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS;
    if (PyObject_GetBuffer(obj.ptr(), &view_, flags) != 0) {
      // Say what to do instead of the bare BufferError.
      PyObject *type, *value, *tb;
      PyErr_Fetch(&type, &value, &tb);
      std::string why = value ? py::str(value).cast<std::string>() : "unusable buffer";
      Py_XDECREF(type);
      Py_XDECREF(value);
      Py_XDECREF(tb);
      if (writable && PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_C_CONTIGUOUS) == 0) {
        PyBuffer_Release(&view_);  // a buffer, but read-only
        throw py::type_error(std::string("the destination is a read-only buffer (") +
                             Py_TYPE(obj.ptr())->tp_name +
                             "): shoal writes into it; give a bytearray, a memoryview of "
                             "writable memory, a numpy array or a tensor");
      }
      PyErr_Clear();
      if (writable && why.find("writable") != std::string::npos) {
        throw py::type_error("the destination is a read-only buffer: shoal writes into it; give "
                             "a bytearray, a memoryview of writable memory, a numpy array or a "
                             "tensor (" + why + ")");
      }
      throw py::value_error("shoal needs a C-contiguous buffer: " + why);
    }
    has_view_ = true;
    data_ = static_cast<std::byte*>(view_.buf);
    size_ = static_cast<size_t>(view_.len);
    return;
  }
  if (py::hasattr(obj, "data_ptr") && py::hasattr(obj, "is_contiguous") &&
      py::hasattr(obj, "element_size")) {
    const std::string device = py::str(obj.attr("device").attr("type"));
    if (device != "cpu") {
      throw py::value_error("shoal reads and writes CPU tensors; this one is on " + device +
                            ": copy it with .cpu() first");
    }
    if (!obj.attr("is_contiguous")().cast<bool>()) {
      throw py::value_error("shoal needs a contiguous tensor: pass t.contiguous()");
    }
    keep_ = py::reinterpret_borrow<py::object>(obj);
    size_ = obj.attr("numel")().cast<size_t>() * obj.attr("element_size")().cast<size_t>();
    data_ = reinterpret_cast<std::byte*>(obj.attr("data_ptr")().cast<uintptr_t>());
    return;
  }
  throw py::type_error(std::string("shoal needs bytes-like memory (buffer protocol) or a CPU "
                                   "torch.Tensor, not ") +
                       std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
}

Bytes::Bytes(Bytes&& o) noexcept
    : data_(o.data_), size_(o.size_), has_view_(o.has_view_), view_(o.view_),
      keep_(std::move(o.keep_)) {
  o.has_view_ = false;
  o.data_ = nullptr;
  o.size_ = 0;
}

Bytes::~Bytes() {
  if (has_view_) PyBuffer_Release(&view_);
}

std::vector<Bytes> BytesOf(py::sequence items, bool writable) {
  std::vector<Bytes> held;
  held.reserve(py::len(items));
  for (py::handle item : items) held.emplace_back(item, writable);
  return held;
}

}  // namespace shoal::python
