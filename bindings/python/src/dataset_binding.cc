// shoal._shoal.DatasetCache: the dataset cache (include/shoal/dataset.h) over a directory or a
// Python source. Every cache call releases the GIL (a miss may call the Python source from the
// cache's threads, which take the GIL for it).
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <vector>

#include "bindings/python/src/buffers.h"
#include "bindings/python/src/errors.h"
#include "bindings/python/src/py_engine.h"
#include "shoal/dataset.h"

namespace py = pybind11;

namespace shoal::python {
namespace {

using Release = py::gil_scoped_release;

// A Python object with list(part, parts) -> iterable of (name, size, version),
// stat(name) -> (size, version) and read(name) -> bytes-like, as a DatasetSource. Called from
// any thread: takes the GIL; a Python exception becomes that call's error (IOError, or
// NotFound for FileNotFoundError / KeyError). The object is released with the GIL held.
std::shared_ptr<DatasetSource> PythonSource(py::object obj) {
  std::shared_ptr<py::object> o(new py::object(std::move(obj)), [](py::object* p) {
    py::gil_scoped_acquire gil;
    delete p;
  });
  auto failed = [](py::error_already_set& e, std::string_view what) {
    const bool missing = e.matches(PyExc_FileNotFoundError) || e.matches(PyExc_KeyError);
    std::string msg = std::string("the Python dataset source's ") + std::string(what) +
                      " raised " + e.what();
    return missing ? Status::NotFound(msg) : Status::IOError(msg);
  };
  CallbackSourceFns fns;
  fns.list = [o, failed](uint32_t part, uint32_t parts) -> Result<std::vector<SampleInfo>> {
    py::gil_scoped_acquire gil;
    try {
      std::vector<SampleInfo> out;
      for (py::handle item : o->attr("list")(part, parts)) {
        auto t = item.cast<py::tuple>();
        out.push_back({t[0].cast<std::string>(), t[1].cast<uint64_t>(),
                       py::str(t[2]).cast<std::string>()});
      }
      return out;
    } catch (py::error_already_set& e) {
      return failed(e, "list");
    } catch (py::cast_error& e) {
      return Status::InvalidArgument(std::string("the Python dataset source's list must yield "
                                                 "(name, size, version) tuples: ") + e.what());
    }
  };
  fns.stat = [o, failed](std::string_view name) -> Result<SampleInfo> {
    py::gil_scoped_acquire gil;
    try {
      auto t = o->attr("stat")(std::string(name)).cast<py::tuple>();
      return SampleInfo{std::string(name), t[0].cast<uint64_t>(), py::str(t[1]).cast<std::string>()};
    } catch (py::error_already_set& e) {
      return failed(e, "stat");
    } catch (py::cast_error& e) {
      return Status::InvalidArgument(std::string("the Python dataset source's stat must return "
                                                 "(size, version): ") + e.what());
    }
  };
  fns.read = [o, failed](std::string_view name, std::span<std::byte> dst) -> Result<uint64_t> {
    py::gil_scoped_acquire gil;
    try {
      py::object got = o->attr("read")(std::string(name));
      Bytes b(got, false);
      if (b.size() > dst.size()) {
        return Status::InvalidArgument("the Python dataset source's read of \"" +
                                       std::string(name) + "\" returned " +
                                       std::to_string(b.size()) + " bytes, more than its listed size");
      }
      if (b.size() != 0) std::memcpy(dst.data(), b.cspan().data(), b.size());
      return static_cast<uint64_t>(b.size());
    } catch (py::error_already_set& e) {
      return failed(e, "read");
    }
  };
  return CallbackSource(std::move(fns));
}

struct PyDataset {
  py::object owner;  // the PyEngine
  PyEngine* pe = nullptr;
  std::unique_ptr<DatasetCache> cache;

  DatasetCache& get() {
    if (!cache) throw StatusError(Status::FailedPrecondition("the dataset cache is closed"));
    return *cache;
  }
  void Close() {
    if (!cache) return;
    std::unique_ptr<DatasetCache> c = std::move(cache);
    {
      Release nogil;
      c.reset();
    }
    pe->users--;
  }
  ~PyDataset() {
    if (cache) Close();
  }
};

uint64_t IndexOf(DatasetCache& c, py::handle key) {
  if (py::isinstance<py::str>(key)) return ValueOrThrow(c.Find(key.cast<std::string>()));
  const int64_t i = key.cast<int64_t>();
  if (i < 0) throw StatusError(Status::InvalidArgument("a negative sample index"));
  return static_cast<uint64_t>(i);
}

}  // namespace

DatasetCache* DatasetCacheOf(py::handle dataset) { return &dataset.cast<PyDataset&>().get(); }

void BindDataset(py::module_& m) {
  py::class_<PyDataset>(m, "DatasetCache")
      .def(py::init([](py::object engine, py::object source, const std::string& root, bool refresh,
                       bool verify_on_hit, uint64_t memory_bytes, uint32_t warm_threads,
                       uint32_t fetch_wait_ms, uint64_t capacity_bytes, uint64_t reserve_bytes,
                       uint32_t replicas) {
             PyEngine& pe = engine.cast<PyEngine&>();
             std::shared_ptr<DatasetSource> src =
                 py::isinstance<py::str>(source) ? DirectorySource(source.cast<std::string>())
                                                 : PythonSource(source);
             DatasetOptions o;
             o.root = root;
             o.refresh = refresh;
             o.verify_on_hit = verify_on_hit;
             o.memory_bytes = memory_bytes;
             o.warm_threads = warm_threads;
             o.fetch_wait = std::chrono::milliseconds(fetch_wait_ms);
             o.capacity_bytes = capacity_bytes;
             o.reserve_bytes = reserve_bytes;
             o.replicas = replicas;
             Engine& e = pe.get();
             std::unique_ptr<DatasetCache> c;
             {
               Release nogil;
               c = ValueOrThrow(DatasetCache::Open(e, std::move(src), o));
             }
             auto p = std::make_unique<PyDataset>();
             p->owner = engine;
             p->pe = &pe;
             p->cache = std::move(c);
             pe.users++;
             return p;
           }),
           py::arg("engine"), py::arg("source"), py::arg("root") = "datasets/default",
           py::arg("refresh") = false, py::arg("verify_on_hit") = false,
           py::arg("memory_bytes") = 0, py::arg("warm_threads") = 8,
           py::arg("fetch_wait_ms") = 30000, py::arg("capacity_bytes") = 0,
           py::arg("reserve_bytes") = 0, py::arg("replicas") = 1)
      .def("__len__", [](PyDataset& d) { return d.get().size(); })
      .def_property_readonly("generation", [](PyDataset& d) { return d.get().generation(); })
      .def("info",
           [](PyDataset& d, py::handle key) {
             DatasetCache& c = d.get();
             SampleInfo s = ValueOrThrow(c.info(IndexOf(c, key)));
             return py::make_tuple(s.name, s.size, s.version);
           })
      .def("find", [](PyDataset& d, const std::string& name) { return ValueOrThrow(d.get().Find(name)); })
      .def("read",
           [](PyDataset& d, py::handle key) {
             DatasetCache& c = d.get();
             const uint64_t i = IndexOf(c, key);
             // A sample found grown at its load updates the index: read again at its new size.
             for (int attempt = 0;; ++attempt) {
               const uint64_t size = ValueOrThrow(c.info(i)).size;
               std::string out(size, '\0');
               Result<uint64_t> n = Status::Internal("unread");
               {
                 Release nogil;
                 n = c.Read(i, std::as_writable_bytes(std::span<char>(out.data(), out.size())));
               }
               if (!n.ok() && n.status().code() == Code::kInvalidArgument && attempt < 3 &&
                   ValueOrThrow(c.info(i)).size > size) {
                 continue;
               }
               out.resize(ValueOrThrow(std::move(n)));
               return py::bytes(out);
             }
           })
      .def("read_batch",
           [](PyDataset& d, const std::vector<int64_t>& indices) {
             DatasetCache& c = d.get();
             std::vector<SampleRead> reads(indices.size());
             std::vector<py::object> outs;
             outs.reserve(indices.size());
             for (size_t i = 0; i < indices.size(); ++i) {
               if (indices[i] < 0) throw StatusError(Status::InvalidArgument("a negative sample index"));
               reads[i].index = static_cast<uint64_t>(indices[i]);
               const uint64_t size = ValueOrThrow(c.info(reads[i].index)).size;
               PyObject* raw = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(size));
               if (raw == nullptr) throw py::error_already_set();
               outs.push_back(py::reinterpret_steal<py::object>(raw));
               reads[i].dst = {reinterpret_cast<std::byte*>(PyBytes_AS_STRING(raw)), size};
             }
             {
               Release nogil;
               ThrowIfError(c.ReadBatch(reads));
             }
             py::list out;
             for (size_t i = 0; i < reads.size(); ++i) {
               if (!reads[i].status.ok()) {
                 ThrowIfError(Status(reads[i].status.code(),
                                     "sample " + std::to_string(reads[i].index) + ": " +
                                         std::string(reads[i].status.message())));
               }
               out.append(outs[i]);
             }
             return out;
           },
           py::arg("indices"),
           "Samples by index in one batched read: a list of bytes; raises the first failure.")
      .def("read_into",
           [](PyDataset& d, py::handle key, py::handle buffer) {
             DatasetCache& c = d.get();
             const uint64_t i = IndexOf(c, key);
             Bytes dst(buffer, true);
             Release nogil;
             return ValueOrThrow(c.Read(i, dst.span()));
           })
      .def("warm",
           [](PyDataset& d, std::optional<std::vector<uint64_t>> indices,
              std::optional<py::function> progress) {
             DatasetCache& c = d.get();
             std::vector<uint64_t> idx = indices.value_or(std::vector<uint64_t>{});
             std::function<void(uint64_t, uint64_t)> cb;
             if (progress) {
               std::shared_ptr<py::function> f(new py::function(*progress), [](py::function* p) {
                 py::gil_scoped_acquire gil;
                 delete p;
               });
               cb = [f](uint64_t done, uint64_t total) {
                 py::gil_scoped_acquire gil;
                 try {
                   (*f)(done, total);
                 } catch (py::error_already_set&) {  // a failing progress hook stops nothing
                 }
               };
             }
             Release nogil;
             ThrowIfError(c.Warm(idx, cb));
           },
           py::arg("indices") = py::none(), py::arg("progress") = py::none())
      .def("loader_ranks", [](PyDataset& d) { return d.get().LoaderRanks(); },
           "For every sample, the rank whose member a warm-up in this world caches it on.")
      .def("held_here", [](PyDataset& d) { return d.get().HeldHere(); },
           "Indices of the samples whose cached copy this rank's member holds (ascending).")
      .def("pin",
           [](PyDataset& d, const std::vector<uint64_t>& indices, bool pin) {
             DatasetCache& c = d.get();
             Release nogil;
             ThrowIfError(c.Pin(indices, pin));
           },
           py::arg("indices"), py::arg("pin") = true)
      .def("refresh", [](PyDataset& d) {
        DatasetCache& c = d.get();
        Release nogil;
        ThrowIfError(c.Refresh());
      })
      .def("stats",
           [](PyDataset& d) {
             DatasetStats s = d.get().stats();
             py::dict out;
             out["hits"] = s.hits;
             out["memory_hits"] = s.memory_hits;
             out["memory_bytes"] = s.memory_bytes;
             out["misses"] = s.misses;
             out["source_reads"] = s.source_reads;
             out["source_bytes"] = s.source_bytes;
             out["source_seconds"] = s.source_seconds;
             out["waited"] = s.waited;
             out["version_changes"] = s.version_changes;
             out["refetched"] = s.refetched;
             out["uncached"] = s.uncached;
             out["not_admitted"] = s.not_admitted;
             out["evictions"] = s.evictions;
             out["disk_bytes"] = s.disk_bytes;
             out["disk_samples"] = s.disk_samples;
             out["capacity_bytes"] = s.capacity_bytes;
             out["reserve_bytes"] = s.reserve_bytes;
             return out;
           })
      .def("close", [](PyDataset& d) { d.Close(); })
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyDataset& d, py::args) { d.Close(); });
}

}  // namespace shoal::python
