// shoal._shoal.Engine: the object API. Every call that may block (disk, network, collectives)
// releases the GIL; buffers are pinned (Bytes) before and released after, with the GIL held.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bindings/python/src/buffers.h"
#include "bindings/python/src/errors.h"
#include "bindings/python/src/py_engine.h"

namespace py = pybind11;

namespace shoal::python {
namespace {

using Release = py::gil_scoped_release;

py::dict ReportDict(const RepairReport& r) {
  py::dict d;
  d["objects"] = r.objects;
  d["chunks_copied"] = r.chunks_copied;
  d["bytes_copied"] = r.bytes_copied;
  d["metadata_copied"] = r.metadata_copied;
  py::list lost;
  for (const std::string& l : r.lost) lost.append(l);
  d["lost"] = lost;
  return d;
}

// The caller's all-gather (e.g. over torch.distributed) as the engine's bootstrap. Called from
// Engine::Open with the GIL released; takes it for the Python call. The function object is
// destroyed with the GIL held, whichever thread drops the last copy.
AllGatherFn WrapAllGather(py::function fn) {
  std::shared_ptr<py::function> f(new py::function(std::move(fn)), [](py::function* p) {
    py::gil_scoped_acquire gil;
    delete p;
  });
  return [f](const std::vector<std::byte>& mine) -> Result<std::vector<std::vector<std::byte>>> {
    py::gil_scoped_acquire gil;
    try {
      py::object out = (*f)(py::bytes(reinterpret_cast<const char*>(mine.data()), mine.size()));
      std::vector<std::vector<std::byte>> all;
      for (py::handle item : out) {
        std::string b = py::bytes(py::reinterpret_borrow<py::object>(item));
        all.emplace_back(reinterpret_cast<const std::byte*>(b.data()),
                         reinterpret_cast<const std::byte*>(b.data()) + b.size());
      }
      return all;
    } catch (py::error_already_set& e) {
      return Status::Unavailable(std::string("the all-gather given to shoal failed: ") + e.what());
    }
  };
}

// The Options without an argument of their own, set by field name (shoal.init's **options)
// through the one table of Options fields (shoal::SetOption). Ranges are ValidateOptions'
// (Engine::Open): this only converts, refusing a value of the wrong Python type.
void ApplySettings(const py::dict& settings, Options* o) {
  const std::vector<OptionField> fields = OptionFields();
  for (auto [key, value] : settings) {
    const std::string name = py::str(key);
    auto f = std::find_if(fields.begin(), fields.end(),
                          [&](const OptionField& x) { return name == x.name; });
    if (f == fields.end()) ThrowIfError(SetOption(o, name, ""));  // the unknown-name error
    auto wrong = [&](const char* want) {
      return StatusError(Status::InvalidArgument(
          "option " + name + "=" + std::string(py::repr(value)) + ": expected " + want));
    };
    std::string text;
    switch (f->kind) {
      case OptionKind::kBool:
        if (!py::isinstance<py::bool_>(value)) throw wrong("True or False");
        text = value.cast<bool>() ? "true" : "false";
        break;
      case OptionKind::kUint32:
      case OptionKind::kUint64:
        if (py::isinstance<py::bool_>(value) || !py::isinstance<py::int_>(value)) {
          throw wrong("an integer");
        }
        text = py::str(value);
        if (!text.empty() && text[0] == '-') throw wrong("a non-negative integer");
        break;
      case OptionKind::kString:
      case OptionKind::kIoBackend:
        if (!py::isinstance<py::str>(value)) throw wrong("a string");
        text = value.cast<std::string>();
        break;
      case OptionKind::kStringList:
        if (py::isinstance<py::str>(value)) throw wrong("a list of strings, not one string");
        for (py::handle item : value) {
          if (!py::isinstance<py::str>(item)) throw wrong("a list of strings");
          const std::string one = item.cast<std::string>();
          if (one.find(',') != std::string::npos) throw wrong("strings without commas");
          text += (text.empty() ? "" : ",") + one;
        }
        break;
    }
    ThrowIfError(SetOption(o, name, text));
  }
}

std::unique_ptr<PyEngine> Open(const std::string& store_dir, int64_t rank, int64_t world_size,
                               const std::string& node, const std::string& token,
                               const std::string& rendezvous, uint32_t replicas,
                               uint32_t chunk_size, const std::string& io_backend, bool direct_io,
                               uint32_t queue_depth, uint32_t join_timeout_ms,
                               std::optional<py::function> allgather, const py::dict& settings) {
  Options o;
  o.store_dir = store_dir;
  if (rank < -1 || world_size < 0) {
    throw StatusError(Status::InvalidArgument("rank and world_size must not be negative"));
  }
  if (rank >= 0) o.rank = static_cast<uint32_t>(rank);
  if (world_size > 0) o.world_size = static_cast<uint32_t>(world_size);
  o.node = node;
  o.token = token;
  o.rendezvous = rendezvous;
  if (replicas != 0) o.replicas = replicas;
  if (chunk_size != 0) o.chunk_size = chunk_size;
  ThrowIfError(SetOption(&o, "io_backend", io_backend));
  o.direct_io = direct_io;
  if (queue_depth != 0) o.queue_depth = queue_depth;
  if (join_timeout_ms != 0) o.join_timeout_ms = join_timeout_ms;
  if (allgather) o.allgather = WrapAllGather(std::move(*allgather));
  ApplySettings(settings, &o);
  auto pe = std::make_unique<PyEngine>();
  {
    Release nogil;
    // A failure destroys `o` (and the wrapped Python function) as the exception leaves; the
    // function's deleter takes the GIL itself.
    auto e = Engine::Open(o);
    ThrowIfError(e.status());
    pe->engine = std::move(e).value();
  }
  return pe;
}

// Reads up to this size allocate their size at once; larger ones ask the object's size first.
constexpr uint64_t kUnboundedReadBytes = 1u << 20;

py::bytes ReadBytes(PyEngine& pe, const std::string& path, uint64_t offset, int64_t size) {
  Engine& e = pe.get();
  if (size < -1) {
    throw StatusError(Status::InvalidArgument(
        "read size " + std::to_string(size) + ": give a byte count >= 0, or -1 for the rest"));
  }
  uint64_t n = static_cast<uint64_t>(size);
  // To the end, or a size above what a short read may waste: the object's size bounds the
  // allocation (a read of 1 TiB from a 10-byte object allocates 10 bytes). An offset past the
  // end is refused by Read below.
  if (size == -1 || n > kUnboundedReadBytes) {
    uint64_t object_size;
    {
      Release nogil;
      object_size = ValueOrThrow(e.Stat(path)).size;
    }
    const uint64_t rest = offset < object_size ? object_size - offset : 0;
    n = size == -1 ? rest : std::min(n, rest);
  }
  PyObject* raw = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(n));
  if (raw == nullptr) throw py::error_already_set();
  py::object out = py::reinterpret_steal<py::object>(raw);
  std::span<std::byte> dst(reinterpret_cast<std::byte*>(PyBytes_AS_STRING(raw)), n);
  uint64_t got;
  {
    Release nogil;
    got = ValueOrThrow(e.Read(path, offset, dst));
  }
  if (got < n) {  // the object ended early
    PyObject* p = out.release().ptr();
    if (_PyBytes_Resize(&p, static_cast<Py_ssize_t>(got)) != 0) throw py::error_already_set();
    out = py::reinterpret_steal<py::object>(p);
  }
  return py::reinterpret_steal<py::bytes>(out.release());
}

std::vector<DirEntry> ListAll(PyEngine& pe, const std::string& dir, const std::string& start_after,
                              uint32_t limit) {
  Engine& e = pe.get();
  Release nogil;
  std::vector<DirEntry> all;
  ListOptions lo;
  lo.start_after = start_after;
  if (limit != 0) lo.limit = limit;
  for (;;) {
    ListPage page = ValueOrThrow(e.List(dir, lo));
    for (DirEntry& d : page.entries) all.push_back(std::move(d));
    if (!page.truncated || limit != 0) break;
    lo.start_after = page.next_start_after;
  }
  return all;
}

}  // namespace

void BindEngine(py::module_& m) {
  m.def(
      "option_names",
      [] {
        std::vector<std::string> names;
        for (const OptionField& f : OptionFields()) names.emplace_back(f.name);
        return names;
      },
      "Every field of shoal::Options settable by name (shoal.init's **options), in the order "
      "of include/shoal/options.h.");
  py::class_<ObjectInfo>(m, "ObjectInfo", "Metadata of a sealed object (Engine.stat).")
      .def_readonly("path", &ObjectInfo::path)
      .def_readonly("size", &ObjectInfo::size)
      .def_readonly("chunk_size", &ObjectInfo::chunk_size)
      .def_readonly("num_chunks", &ObjectInfo::num_chunks)
      .def_readonly("is_inline", &ObjectInfo::is_inline)
      .def_readonly("seal_time_ns", &ObjectInfo::seal_time_ns)
      .def_readonly("replicas", &ObjectInfo::replicas)
      .def("__repr__", [](const ObjectInfo& i) {
        return "ObjectInfo(path='" + i.path + "', size=" + std::to_string(i.size) + ")";
      });
  py::class_<DirEntry>(m, "DirEntry", "One entry of a directory listing (Engine.list).")
      .def_readonly("name", &DirEntry::name)
      .def_readonly("is_dir", &DirEntry::is_dir)
      .def_readonly("size", &DirEntry::size, "bytes of an object; entries of a directory")
      .def("__repr__", [](const DirEntry& d) {
        return "DirEntry(name='" + d.name + "', is_dir=" + (d.is_dir ? "True" : "False") +
               ", size=" + std::to_string(d.size) + ")";
      });

  py::class_<PyEngine>(m, "Engine", "A shoal member; see shoal.init.")
      .def_static("_open_store", &Open, py::arg("store_dir"), py::arg("rank") = -1,
                  py::arg("world_size") = 0, py::arg("node") = "", py::arg("token") = "",
                  py::arg("rendezvous") = "", py::arg("replicas") = 0, py::arg("chunk_size") = 0,
                  py::arg("io_backend") = "auto", py::arg("direct_io") = true,
                  py::arg("queue_depth") = 0, py::arg("join_timeout_ms") = 0,
                  py::arg("allgather") = py::none(), py::arg("settings") = py::dict())
      .def_property_readonly("rank", [](PyEngine& pe) { return pe.get().rank(); })
      .def_property_readonly("world_size", [](PyEngine& pe) { return pe.get().world_size(); })
      .def_property_readonly("io_backend",
                             [](PyEngine& pe) { return std::string(pe.get().io_backend()); })
      .def_property_readonly("closed", [](PyEngine& pe) { return !pe.engine; })
      .def(
          "write",
          [](PyEngine& pe, const std::string& path, py::handle data, uint32_t chunk_size,
             bool local_first) {
            Engine& e = pe.get();
            Bytes b(data, /*writable=*/false);
            CreateOptions co;
            co.chunk_size = chunk_size;
            co.local_first = local_first;
            Release nogil;
            ThrowIfError(e.Put(path, b.cspan(), co));
          },
          py::arg("path"), py::arg("data"), py::arg("chunk_size") = 0,
          py::arg("local_first") = false,
          "Stores `data` (bytes-like or CPU tensor) as the sealed object `path`.")
      .def(
          "write_many",
          [](PyEngine& pe, const std::vector<std::pair<std::string, py::object>>& items,
             uint32_t chunk_size, bool local_first, uint32_t replicas) {
            Engine& e = pe.get();
            std::vector<Bytes> data;
            data.reserve(items.size());
            std::vector<PutRequest> reqs(items.size());
            for (size_t i = 0; i < items.size(); ++i) {
              data.emplace_back(items[i].second, /*writable=*/false);
              reqs[i].path = items[i].first;
              reqs[i].data = data.back().cspan();
            }
            CreateOptions co;
            co.chunk_size = chunk_size;
            co.local_first = local_first;
            co.replicas = replicas;
            {
              Release nogil;
              ThrowIfError(e.PutBatch(reqs, co));
            }
            py::list out;
            for (const PutRequest& r : reqs) {
              if (r.status.ok()) out.append(py::none());
              else out.append(r.status.ToString());
            }
            return out;
          },
          py::arg("items"), py::arg("chunk_size") = 0, py::arg("local_first") = false,
          py::arg("replicas") = 0,
          "Stores many (path, bytes-like) objects at once (Engine::PutBatch: each member's part "
          "in one transaction): a list with None where an object was stored, else its error as "
          "\"Code: message\" (the others are stored). The whole call raises only when it could "
          "not run (more than 65,536 objects, bad options).")
      .def(
          "create",
          [](PyEngine& pe, const std::string& path, std::optional<uint64_t> size,
             uint32_t chunk_size, bool local_first, uint32_t replicas) {
            Engine& e = pe.get();
            CreateOptions co;
            if (size) co.size = *size;
            co.chunk_size = chunk_size;
            co.local_first = local_first;
            co.replicas = replicas;
            Release nogil;
            ThrowIfError(e.Create(path, co));
          },
          py::arg("path"), py::arg("size") = py::none(), py::arg("chunk_size") = 0,
          py::arg("local_first") = false, py::arg("replicas") = 0,
          "Starts object `path` (CreateOptions: size when known, chunk_size, local_first: the "
          "first replica of every chunk on this rank's member, replicas: 0 = the world's).")
      .def(
          "write_at",
          [](PyEngine& pe, const std::string& path, uint64_t offset, py::handle data) {
            Engine& e = pe.get();
            Bytes b(data, false);
            Release nogil;
            ThrowIfError(e.Write(path, offset, b.cspan()));
          },
          py::arg("path"), py::arg("offset"), py::arg("data"))
      .def(
          "seal", [](PyEngine& pe, const std::string& path) { ThrowIfError(pe.get().Seal(path)); },
          py::arg("path"), py::call_guard<Release>())
      .def(
          "abort", [](PyEngine& pe, const std::string& path) { ThrowIfError(pe.get().Abort(path)); },
          py::arg("path"), py::call_guard<Release>())
      .def("read", &ReadBytes, py::arg("path"), py::arg("offset") = 0, py::arg("size") = -1,
           "Bytes of `path` from `offset`: `size` of them, or up to the end when -1.")
      .def(
          "read_batch",
          [](PyEngine& pe, py::sequence items) {
            Engine& e = pe.get();
            std::vector<ReadRequest> reqs(py::len(items));
            std::vector<int64_t> sizes(reqs.size(), -1);
            size_t k = 0;
            for (py::handle h : items) {
              if (py::isinstance<py::str>(h)) {
                reqs[k].path = h.cast<std::string>();
              } else {
                py::tuple t = h.cast<py::tuple>();
                if (t.size() != 3) {
                  throw StatusError(Status::InvalidArgument("read_batch items are paths or (path, offset, size)"));
                }
                reqs[k].path = t[0].cast<std::string>();
                const int64_t off = t[1].cast<int64_t>();
                sizes[k] = t[2].cast<int64_t>();
                if (off < 0 || sizes[k] < 0) {
                  throw StatusError(Status::InvalidArgument("read_batch: a negative offset or size"));
                }
                reqs[k].offset = static_cast<uint64_t>(off);
              }
              ++k;
            }
            // Whole objects: their sizes in one StatBatch.
            std::vector<StatRequest> stats;
            std::vector<size_t> stat_of;
            for (size_t i = 0; i < reqs.size(); ++i) {
              if (sizes[i] >= 0) continue;
              stats.emplace_back();
              stats.back().path = reqs[i].path;
              stat_of.push_back(i);
            }
            if (!stats.empty()) {
              {
                Release nogil;
                ThrowIfError(e.StatBatch(stats));
              }
              for (size_t j = 0; j < stats.size(); ++j) {
                if (!stats[j].status.ok()) {
                  ThrowIfError(Status(stats[j].status.code(), "\"" + stats[j].path + "\": " +
                                                                   std::string(stats[j].status.message())));
                }
                sizes[stat_of[j]] = static_cast<int64_t>(stats[j].info.size);
              }
            }
            std::vector<py::object> outs;
            outs.reserve(reqs.size());
            for (size_t i = 0; i < reqs.size(); ++i) {
              PyObject* raw = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(sizes[i]));
              if (raw == nullptr) throw py::error_already_set();
              outs.push_back(py::reinterpret_steal<py::object>(raw));
              reqs[i].dst = {reinterpret_cast<std::byte*>(PyBytes_AS_STRING(raw)),
                             static_cast<size_t>(sizes[i])};
            }
            {
              Release nogil;
              ThrowIfError(e.ReadBatch(reqs));
            }
            py::list out;
            for (size_t i = 0; i < reqs.size(); ++i) {
              if (!reqs[i].status.ok()) {
                ThrowIfError(Status(reqs[i].status.code(), "\"" + reqs[i].path + "\": " +
                                                               std::string(reqs[i].status.message())));
              }
              if (reqs[i].bytes_read < reqs[i].dst.size()) {  // the object ended early
                PyObject* p = outs[i].release().ptr();
                if (_PyBytes_Resize(&p, static_cast<Py_ssize_t>(reqs[i].bytes_read)) != 0) {
                  throw py::error_already_set();
                }
                outs[i] = py::reinterpret_steal<py::object>(p);
              }
              out.append(outs[i]);
            }
            return out;
          },
          py::arg("items"),
          "Many reads at once (Engine::ReadBatch; sizes of whole objects in one StatBatch): "
          "items are paths (whole objects) or (path, offset, size); a list of bytes in order. "
          "Raises the first item's error.")
      .def(
          "readinto",
          [](PyEngine& pe, const std::string& path, py::handle buffer, uint64_t offset) {
            Engine& e = pe.get();
            Bytes b(buffer, /*writable=*/true);
            Release nogil;
            return ValueOrThrow(e.Read(path, offset, b.span()));
          },
          py::arg("path"), py::arg("buffer"), py::arg("offset") = 0,
          "Reads into the caller's writable buffer (bytearray, memoryview, numpy array, CPU "
          "tensor) with no intermediate copy; returns the byte count.")
      .def(
          "stat", [](PyEngine& pe, const std::string& path) { return ValueOrThrow(pe.get().Stat(path)); },
          py::arg("path"), py::call_guard<Release>())
      .def(
          "stat_many",
          [](PyEngine& pe, const std::vector<std::string>& paths) {
            std::vector<StatRequest> reqs(paths.size());
            for (size_t i = 0; i < paths.size(); ++i) reqs[i].path = paths[i];
            {
              py::gil_scoped_release release;
              ThrowIfError(pe.get().StatBatch(reqs));
            }
            py::list out;
            for (StatRequest& r : reqs) {
              if (r.status.ok()) {
                out.append(py::cast(std::move(r.info)));
              } else if (r.status.code() == Code::kNotFound) {
                out.append(py::none());
              } else {
                ThrowIfError(r.status);
              }
            }
            return out;
          },
          py::arg("paths"),
          "Stat of many names (Engine::StatBatch: one call per metadata owner in a world): a "
          "list of ObjectInfo, None where a name is not a sealed object; other errors raise.")
      .def("list", &ListAll, py::arg("dir") = "", py::arg("start_after") = "",
           py::arg("limit") = 0,
           "Entries of `dir` with sizes, sorted by name: every page, or one page of `limit`.")
      .def(
          "remove",
          [](PyEngine& pe, const std::string& path) { ThrowIfError(pe.get().Remove(path)); },
          py::arg("path"), py::call_guard<Release>())
      .def(
          "locate",
          [](PyEngine& pe, const std::string& path) { return ValueOrThrow(pe.get().Locate(path)); },
          py::arg("path"), py::call_guard<Release>())
      .def(
          "repair",
          [](PyEngine& pe, const std::string& dir) {
            Result<RepairReport> r = [&] {
              Release nogil;
              return pe.get().Repair(dir);
            }();
            return ReportDict(ValueOrThrow(std::move(r)));
          },
          py::arg("dir") = "",
          "Restores the replica count of every object below dir (Engine::Repair; call it from "
          "one rank): {'objects', 'chunks_copied', 'bytes_copied', 'metadata_copied', 'lost': "
          "[paths no live member can read]}.")
      .def(
          "wait_for_repair",
          [](PyEngine& pe, double timeout_s) {
            if (!(timeout_s >= 0) || timeout_s > 4e6) {  // milliseconds in a uint32
              throw StatusError(Status::InvalidArgument("timeout_s must be 0 .. 4e6 seconds"));
            }
            Result<RepairReport> r = [&] {
              Release nogil;
              return pe.get().WaitForRepair(static_cast<uint32_t>(timeout_s * 1000));
            }();
            return ReportDict(ValueOrThrow(std::move(r)));
          },
          py::arg("timeout_s") = 600.0,
          "Waits for the background repair an Open whose membership changed started "
          "(Engine::WaitForRepair): its report, as repair() gives it.")
      .def(
          "all_gather",
          [](PyEngine& pe, py::bytes mine) {
            std::string_view v = mine;
            const auto* p = reinterpret_cast<const std::byte*>(v.data());
            std::vector<std::byte> copy(p, p + v.size());
            Result<std::vector<std::vector<std::byte>>> all = [&] {
              Release nogil;
              return pe.get().AllGather(copy);
            }();
            py::list out;
            for (const auto& b : ValueOrThrow(std::move(all))) {
              out.append(py::bytes(reinterpret_cast<const char*>(b.data()), b.size()));
            }
            return out;
          },
          py::arg("mine"),
          "Every rank's bytes, in rank order (Engine::AllGather: a collective every rank calls; "
          "at most 1 MiB each).")
      .def(
          "stats",
          [](PyEngine& pe) {
            Stats st = pe.get().GetStats();
            py::dict counters, histograms;
            for (const auto& [name, v] : st.counters) counters[py::str(name)] = v;
            for (const auto& [name, h] : st.histograms) {
              py::dict d;
              d["count"] = h.count;
              d["sum"] = h.sum;
              d["p50"] = h.p50;
              d["p90"] = h.p90;
              d["p99"] = h.p99;
              d["max_bucket"] = h.max_bucket;
              histograms[py::str(name)] = d;
            }
            py::dict out;
            out["counters"] = counters;
            out["histograms"] = histograms;
            return out;
          },
          "This member's counters and latency histograms since open (Engine::GetStats; "
          "docs/metrics.md): {'counters': {name: int}, 'histograms': {name: {'count', 'sum', "
          "'p50', 'p90', 'p99', 'max_bucket'}}}, latencies in ns.")
      .def_property_readonly(
          "metrics_port", [](PyEngine& pe) { return pe.get().metrics_port(); },
          "The port of this rank's Prometheus endpoint (metrics_listen), 0 when none.")
      .def("barrier", [](PyEngine& pe) { ThrowIfError(pe.get().Barrier()); },
           py::call_guard<Release>())
      .def("close",
           [](PyEngine& pe) {
             if (pe.users > 0) {
               throw StatusError(Status::FailedPrecondition(
                   "the shoal engine still has open checkpointers, dataset caches or shared "
                   "read servers (shoal.data): close them first, or call shoal.shutdown()"));
             }
             std::unique_ptr<Engine> e = std::move(pe.engine);
             Release nogil;
             e.reset();
           },
           "Closes the engine (idempotent). Call barrier() first in a world.");
}

}  // namespace shoal::python
