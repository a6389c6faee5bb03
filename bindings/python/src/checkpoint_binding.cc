// shoal._shoal.Checkpointer: collective checkpoints (include/shoal/checkpoint.h) from Python.
// Blocking calls release the GIL. `read_into_many` fills many destinations (a state dict's
// tensors) from one blob in one batch.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bindings/python/src/buffers.h"
#include "bindings/python/src/errors.h"
#include "bindings/python/src/py_engine.h"
#include "shoal/checkpoint.h"

namespace py = pybind11;

namespace shoal::python {
namespace {

using Release = py::gil_scoped_release;

// Keeps the engine's wrapper alive and open while the checkpointer exists.
struct PyCheckpointer {
  py::object owner;  // the PyEngine
  PyEngine* pe = nullptr;
  std::unique_ptr<Checkpointer> ck;

  Checkpointer& get() {
    if (!ck) throw StatusError(Status::FailedPrecondition("the checkpointer is closed"));
    return *ck;
  }
  void Close() {
    if (!ck) return;
    std::unique_ptr<Checkpointer> c = std::move(ck);
    {
      Release nogil;
      c.reset();  // waits for an async save in flight
    }
    pe->users--;
  }
  ~PyCheckpointer() {
    if (ck) Close();
  }
};

struct PySave {
  py::object owner;  // the PyCheckpointer
  std::unique_ptr<CheckpointSave> save;

  CheckpointSave& get() {
    if (!save) throw StatusError(Status::FailedPrecondition("the checkpoint save is finished"));
    return *save;
  }
};

// Fills dsts[i] with the blob's bytes at offsets[i]: one batch, queue_depth chunk I/Os in flight,
// each chunk read once however many destinations it serves (ObjectStore::ReadBatch), bytes
// copied from the verified chunk straight into the destination's memory.
uint64_t ReadIntoMany(Checkpointer& ck, const CheckpointManifest& m, const std::string& name,
                      const std::vector<uint64_t>& offsets, std::vector<Bytes>& dsts) {
  const BlobInfo* blob = m.Find(name);
  if (blob == nullptr) {
    throw StatusError(Status::NotFound("checkpoint \"" + m.tag + "\" has no blob \"" + name + "\""));
  }
  std::vector<ReadRequest> reqs;
  for (size_t i = 0; i < dsts.size(); ++i) {
    const uint64_t end = offsets[i] + dsts[i].size();
    if (end < offsets[i] || end > blob->size) {
      throw StatusError(Status::InvalidArgument(
          "piece at offset " + std::to_string(offsets[i]) + " of " +
          std::to_string(dsts[i].size()) + " bytes passes the end of blob \"" + name + "\" (" +
          std::to_string(blob->size) + " bytes)"));
    }
    if (dsts[i].size() == 0) continue;
    ReadRequest r;
    r.offset = offsets[i];
    r.dst = dsts[i].span();
    reqs.push_back(std::move(r));
  }
  ThrowIfError(ck.ReadBatch(m, name, reqs));
  uint64_t total = 0;
  for (const ReadRequest& r : reqs) {
    ThrowIfError(r.status);
    total += r.bytes_read;
  }
  return total;
}

}  // namespace

void BindCheckpoint(py::module_& m) {
  py::class_<BlobInfo>(m, "BlobInfo")
      .def_readonly("name", &BlobInfo::name)
      .def_readonly("size", &BlobInfo::size)
      .def_readonly("crc32c", &BlobInfo::crc32c)
      .def_readonly("rank", &BlobInfo::rank)
      .def("__repr__", [](const BlobInfo& b) {
        return "BlobInfo(name='" + b.name + "', size=" + std::to_string(b.size) +
               ", rank=" + std::to_string(b.rank) + ")";
      });
  py::class_<CheckpointManifest>(m, "Manifest", "A committed checkpoint: its blobs and metadata.")
      .def_readonly("tag", &CheckpointManifest::tag)
      .def_readonly("sequence", &CheckpointManifest::sequence)
      .def_readonly("commit_time_ns", &CheckpointManifest::commit_time_ns)
      .def_readonly("world_size", &CheckpointManifest::world_size)
      .def_property_readonly("metadata",
                             [](const CheckpointManifest& mf) { return py::bytes(mf.metadata); })
      .def_readonly("blobs", &CheckpointManifest::blobs)
      .def(
          "find",
          [](const CheckpointManifest& mf, const std::string& name) -> std::optional<BlobInfo> {
            const BlobInfo* b = mf.Find(name);
            if (b == nullptr) return std::nullopt;
            return *b;
          },
          py::arg("name"));

  py::class_<SaveHandle>(m, "SaveHandle", "The outcome of a commit (async saves finish later).")
      .def("wait", [](const SaveHandle& h) { ThrowIfError(h.Wait()); }, py::call_guard<Release>(),
           "Blocks until the save and its commit finished; raises their error.")
      .def("done", &SaveHandle::done)
      .def_property_readonly("duration", [](const SaveHandle& h) {
        return std::chrono::duration<double>(h.duration()).count();
      });

  py::class_<PySave>(m, "CheckpointSave")
      .def_property_readonly("tag", [](PySave& s) { return s.get().tag(); })
      .def(
          "save",
          [](PySave& s, const std::string& name, py::handle data) {
            CheckpointSave& cs = s.get();
            Bytes b(data, false);
            Release nogil;
            ThrowIfError(cs.Save(name, b.cspan()));
          },
          py::arg("name"), py::arg("data"))
      .def(
          "save_pieces",
          [](PySave& s, const std::string& name, py::sequence pieces) {
            CheckpointSave& cs = s.get();
            std::vector<Bytes> held = BytesOf(pieces, /*writable=*/false);
            std::vector<std::span<const std::byte>> spans;
            spans.reserve(held.size());
            for (const Bytes& b : held) spans.push_back(b.cspan());
            Release nogil;
            ThrowIfError(cs.Save(name, spans));
          },
          py::arg("name"), py::arg("pieces"),
          "Saves blob `name` as the concatenation of `pieces` (bytes-like or CPU tensors), "
          "straight from their memory.")
      .def(
          "commit",
          [](PySave& s, py::bytes metadata) {
            CheckpointSave& cs = s.get();
            std::string meta = metadata;
            SaveHandle h;
            {
              Release nogil;
              h = cs.Commit(meta);
            }
            return h;
          },
          py::arg("metadata") = py::bytes())
      .def("abandon", [](PySave& s) {
        std::unique_ptr<CheckpointSave> save = std::move(s.save);
        Release nogil;
        save.reset();
      }, "Drops this rank's blobs of an uncommitted save.");

  py::class_<PyCheckpointer>(m, "Checkpointer")
      .def(py::init([](py::object engine, const std::string& root, bool async_save,
                       uint64_t staging_bytes, uint32_t keep_last, bool verify_on_load) {
             PyEngine& pe = engine.cast<PyEngine&>();
             CheckpointOptions co;
             co.root = root;
             co.async = async_save;
             co.staging_bytes = staging_bytes;
             co.keep_last = keep_last;
             co.verify_on_load = verify_on_load;
             Engine& e = pe.get();
             std::unique_ptr<Checkpointer> ck;
             {
               Release nogil;
               ck = ValueOrThrow(Checkpointer::Open(e, co));
             }
             auto p = std::make_unique<PyCheckpointer>();
             p->owner = engine;
             p->pe = &pe;
             p->ck = std::move(ck);
             pe.users++;
             return p;
           }),
           py::arg("engine"), py::arg("root") = "checkpoints", py::arg("async_save") = false,
           py::arg("staging_bytes") = uint64_t{1} << 30, py::arg("keep_last") = 0,
           py::arg("verify_on_load") = true)
      .def(
          "begin",
          [](py::object self, const std::string& tag) {
            Checkpointer& ck = self.cast<PyCheckpointer&>().get();
            std::unique_ptr<CheckpointSave> save;
            {
              Release nogil;
              save = ValueOrThrow(ck.Begin(tag));
            }
            auto s = std::make_unique<PySave>();
            s->owner = self;
            s->save = std::move(save);
            return s;
          },
          py::arg("tag"), "Collective: starts checkpoint `tag`.")
      .def("list",
           [](PyCheckpointer& p) {
             Checkpointer& ck = p.get();
             std::vector<TagInfo> tags;
             {
               Release nogil;
               tags = ValueOrThrow(ck.List());
             }
             py::list out;
             for (const TagInfo& t : tags) out.append(py::make_tuple(t.tag, t.sequence));
             return out;
           },
           "Committed tags as (tag, sequence), oldest first.")
      .def("latest",
           [](PyCheckpointer& p) -> std::optional<std::string> {
             Checkpointer& ck = p.get();
             Release nogil;
             auto r = ck.Latest();
             if (!r.ok() && r.status().IsNotFound()) return std::nullopt;
             return ValueOrThrow(std::move(r));
           },
           "The newest committed tag, or None.")
      .def(
          "manifest",
          [](PyCheckpointer& p, const std::string& tag) {
            Checkpointer& ck = p.get();
            Release nogil;
            return ValueOrThrow(ck.GetManifest(tag));
          },
          py::arg("tag"))
      .def(
          "load",
          [](PyCheckpointer& p, const CheckpointManifest& mf, const std::string& name,
             py::handle dst) {
            Checkpointer& ck = p.get();
            Bytes b(dst, true);
            Release nogil;
            ThrowIfError(ck.Load(mf, name, b.span()));
          },
          py::arg("manifest"), py::arg("name"), py::arg("dst"),
          "Loads a whole blob into `dst` (its exact size), verifying the manifest CRC32C.")
      .def(
          "read",
          [](PyCheckpointer& p, const CheckpointManifest& mf, const std::string& name,
             uint64_t offset, py::handle dst) {
            Checkpointer& ck = p.get();
            Bytes b(dst, true);
            Release nogil;
            return ValueOrThrow(ck.Read(mf, name, offset, b.span()));
          },
          py::arg("manifest"), py::arg("name"), py::arg("offset"), py::arg("dst"))
      .def(
          "read_into_many",
          [](PyCheckpointer& p, const CheckpointManifest& mf, const std::string& name,
             const std::vector<uint64_t>& offsets, py::sequence dsts) {
            Checkpointer& ck = p.get();
            if (offsets.size() != py::len(dsts)) {
              throw StatusError(Status::InvalidArgument("offsets and destinations differ in count"));
            }
            std::vector<Bytes> held = BytesOf(dsts, /*writable=*/true);
            Release nogil;
            return ReadIntoMany(ck, mf, name, offsets, held);
          },
          py::arg("manifest"), py::arg("name"), py::arg("offsets"), py::arg("dsts"),
          "Fills every destination i with the blob's bytes at offsets[i] (chunk CRCs checked).")
      .def(
          "remove",
          [](PyCheckpointer& p, const std::string& tag) {
            Checkpointer& ck = p.get();
            Release nogil;
            ThrowIfError(ck.Remove(tag));
          },
          py::arg("tag"))
      .def(
          "retain",
          [](PyCheckpointer& p, uint32_t keep_last) {
            Checkpointer& ck = p.get();
            Release nogil;
            return ValueOrThrow(ck.Retain(keep_last));
          },
          py::arg("keep_last"))
      .def("close", &PyCheckpointer::Close, "Waits for an async save in flight and closes.");
}

}  // namespace shoal::python
