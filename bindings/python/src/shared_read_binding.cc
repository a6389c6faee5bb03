// shoal._shoal.SharedReadServer / SharedReader / PoolBuffer: reads for DataLoader workers (and
// any process of the host) through shared memory (include/shoal/shared_reader.h).
//
// A PoolBuffer exports its bytes in the pool with the buffer protocol (writable, so
// torch.frombuffer wraps it without a copy or a warning); its lease is returned when the last
// reference goes (the PoolBuffer and every memoryview / tensor made from it).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bindings/python/src/errors.h"
#include "bindings/python/src/py_engine.h"
#include "shoal/shared_reader.h"

namespace py = pybind11;

namespace shoal::python {

// The DatasetCache of a shoal._shoal.DatasetCache object (dataset_binding.cc).
DatasetCache* DatasetCacheOf(py::handle dataset);

namespace {

using Release = py::gil_scoped_release;

struct PyServer {
  py::object owner;  // the PyEngine
  PyEngine* pe = nullptr;
  std::unique_ptr<SharedReadServer> server;
  std::vector<py::object> datasets;  // registered DatasetCache objects, kept alive

  SharedReadServer& get() {
    if (!server) throw StatusError(Status::FailedPrecondition("the shared read server is stopped"));
    return *server;
  }
  void Stop() {
    if (!server) return;
    std::unique_ptr<SharedReadServer> s = std::move(server);
    {
      Release nogil;
      s.reset();
    }
    datasets.clear();
    pe->users--;
  }
  ~PyServer() {
    if (server) Stop();
  }
};

struct PyPoolBuffer {
  std::shared_ptr<SharedReader> reader;
  uint64_t offset = ~0ull;
  std::span<std::byte> bytes;
  ~PyPoolBuffer() {
    if (reader && offset != ~0ull) reader->Release(std::span(&offset, 1));
  }
};

struct PyReader {
  std::shared_ptr<SharedReader> reader;
};

std::string Describe(const ReadItem& it) {
  if (it.dataset != 0) return "sample " + std::to_string(it.index) + " of dataset " + std::to_string(it.dataset);
  return "\"" + it.path + "\"";
}

ReadItem ItemOf(py::handle h) {
  ReadItem it;
  if (py::isinstance<py::str>(h)) {
    it.path = h.cast<std::string>();
    return it;
  }
  py::tuple t = h.cast<py::tuple>();
  if (t.size() == 2 && py::isinstance<py::int_>(t[0])) {  // (dataset id, sample index)
    const int64_t id = t[0].cast<int64_t>(), index = t[1].cast<int64_t>();
    if (id <= 0 || id > UINT32_MAX || index < 0) {
      throw StatusError(Status::InvalidArgument("a (dataset, index) item needs a registered "
                                                "dataset id and a non-negative index"));
    }
    it.dataset = static_cast<uint32_t>(id);
    it.index = static_cast<uint64_t>(index);
    return it;
  }
  if (t.size() == 3) {  // (path, offset, size)
    const int64_t off = t[1].cast<int64_t>(), size = t[2].cast<int64_t>();
    if (off < 0 || size < 0) throw StatusError(Status::InvalidArgument("a negative offset or size"));
    it.path = t[0].cast<std::string>();
    it.offset = static_cast<uint64_t>(off);
    it.size = static_cast<uint64_t>(size);
    return it;
  }
  throw StatusError(Status::InvalidArgument(
      "a shared read item is a path, (path, offset, size) or (dataset id, index)"));
}

}  // namespace

void BindSharedRead(py::module_& m) {
  py::class_<PyServer>(m, "SharedReadServer",
                       "Serves reads to other processes of the host through shared memory.")
      .def(py::init([](py::object engine, uint32_t channels, uint64_t part_bytes,
                       const std::string& token) {
             PyEngine& pe = engine.cast<PyEngine&>();
             SharedReadOptions o;
             o.channels = channels;
             o.part_bytes = part_bytes;
             o.token = token;
             Engine& e = pe.get();
             auto p = std::make_unique<PyServer>();
             p->server = ValueOrThrow(SharedReadServer::Start(e, o));
             p->owner = engine;
             p->pe = &pe;
             pe.users++;
             return p;
           }),
           py::arg("engine"), py::arg("channels") = 16, py::arg("part_bytes") = 64ull << 20,
           py::arg("token") = "")
      .def_property_readonly("name", [](PyServer& s) { return s.get().name(); })
      .def_property_readonly("token", [](PyServer& s) { return s.get().token(); })
      .def("register",
           [](PyServer& s, py::object dataset) {
             DatasetCache* c = DatasetCacheOf(dataset);
             const uint32_t id = s.get().Register(c);
             s.datasets.push_back(dataset);
             return id;
           },
           py::arg("dataset"), "Makes a DatasetCache readable as (id, index) items; returns id.")
      .def("counters",
           [](PyServer& s) {
             SharedReadServer::Counters c = s.get().counters();
             py::dict d;
             d["attached"] = c.attached;
             d["requests"] = c.requests;
             d["items"] = c.items;
             d["reclaimed_readers"] = c.reclaimed_readers;
             d["reclaimed_bytes"] = c.reclaimed_bytes;
             d["leased_bytes"] = c.leased_bytes;
             return d;
           })
      .def("stop", [](PyServer& s) { s.Stop(); })
      .def_property_readonly("stopped", [](PyServer& s) { return !s.server; })
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyServer& s, py::args) { s.Stop(); });

  py::class_<PyPoolBuffer>(m, "PoolBuffer", py::buffer_protocol(),
                           "Bytes read into the shared pool; the lease returns when the last "
                           "reference (memoryview, tensor) goes.")
      .def_buffer([](PyPoolBuffer& b) {
        return py::buffer_info(b.bytes.data(), 1, py::format_descriptor<uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(b.bytes.size())}, {1}, /*readonly=*/false);
      })
      .def("__len__", [](PyPoolBuffer& b) { return b.bytes.size(); })
      .def_property_readonly("address",
                             [](PyPoolBuffer& b) { return reinterpret_cast<uintptr_t>(b.bytes.data()); });

  py::class_<PyReader>(m, "SharedReader", "A process's end of a SharedReadServer's ring.")
      .def_static("attach",
                  [](const std::string& name, const std::string& token) {
                    PyReader r;
                    r.reader = ValueOrThrow(SharedReader::Attach(name, token));
                    return r;
                  },
                  py::arg("name"), py::arg("token"), py::call_guard<Release>())
      .def("read_batch",
           [](PyReader& r, py::sequence items) {
             std::vector<ReadItem> req;
             req.reserve(py::len(items));
             for (py::handle h : items) req.push_back(ItemOf(h));
             std::vector<PoolBuffer> got;
             {
               Release nogil;
               got = ValueOrThrow(r.reader->ReadBatch(req));
             }
             py::list out;
             std::optional<Status> failed;
             for (size_t i = 0; i < got.size(); ++i) {
               auto b = std::make_unique<PyPoolBuffer>();
               b->reader = r.reader;
               b->offset = got[i].pool_offset;
               b->bytes = got[i].bytes;
               if (!got[i].status.ok() && !failed) {
                 failed = Status(got[i].status.code(),
                                 Describe(req[i]) + ": " + std::string(got[i].status.message()));
               }
               out.append(py::cast(std::move(b)));
             }
             if (failed) throw StatusError(*failed);  // `out` goes, returning every lease
             return out;
           },
           py::arg("items"),
           "Reads items (a path, (path, offset, size) or (dataset id, index)) into the pool: a "
           "list of PoolBuffer in order. Raises the first item's error (the others' leases "
           "return).")
      .def("flush", [](PyReader& r) { r.reader->Flush(); })
      .def_property_readonly("channel", [](PyReader& r) { return r.reader->channel(); })
      .def_property_readonly("pool_range", [](PyReader& r) {
        std::span<std::byte> p = r.reader->pool();
        return py::make_tuple(reinterpret_cast<uintptr_t>(p.data()), p.size());
      });
}

}  // namespace shoal::python
