// Caller memory as bytes, without copying: anything with the buffer protocol (bytes, bytearray,
// memoryview, numpy arrays, mmap) or a CPU torch.Tensor (read through data_ptr(), since tensors
// do not export the buffer protocol for every dtype).
//
// A Bytes holds a reference to the object (and its Py_buffer) so the memory stays valid while
// the GIL is released around the I/O; it must be destroyed with the GIL held, which is the case
// for a local of a binding function that releases the GIL in an inner scope.
//
// Errors (raised as Python exceptions): a non-contiguous buffer or tensor -> ValueError (call
// .contiguous() / pass a contiguous copy); a tensor not on the CPU -> ValueError; a read-only
// buffer where the bytes would be written -> TypeError (BufferError from Python).
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <span>
#include <vector>

namespace shoal::python {

class Bytes {
 public:
  // `writable`: the bytes will be written (a read destination).
  Bytes(pybind11::handle obj, bool writable);
  ~Bytes();
  Bytes(Bytes&& other) noexcept;
  Bytes(const Bytes&) = delete;
  Bytes& operator=(const Bytes&) = delete;
  Bytes& operator=(Bytes&&) = delete;

  std::span<std::byte> span() const { return {data_, size_}; }
  std::span<const std::byte> cspan() const { return {data_, size_}; }
  size_t size() const { return size_; }

 private:
  std::byte* data_ = nullptr;
  size_t size_ = 0;
  bool has_view_ = false;
  Py_buffer view_{};
  pybind11::object keep_;  // the tensor, when read through data_ptr()
};

// Every item of `items`, pinned (a state dict's tensors).
std::vector<Bytes> BytesOf(pybind11::sequence items, bool writable);

}  // namespace shoal::python
