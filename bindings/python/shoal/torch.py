"""shoal.torch: collective, atomic checkpoints of PyTorch state dicts.

    import shoal, shoal.torch
    shoal.init()                                          # from torchrun's environment
    shoal.torch.save({"model": model.state_dict(),
                      "optim": opt.state_dict(), "step": step}, f"step-{step}",
                     async_save=True, keep_last=3)        # returns once tensors are copied
    state = shoal.torch.load("latest", {"model": model.state_dict(),
                                        "optim": opt.state_dict()})   # fills tensors in place

Every rank saves its own object (any picklable structure holding tensors); the tag is
published atomically once every rank's part is durable (include/shoal/checkpoint.h): a crash at
any point leaves the previous checkpoint as `latest`, never a torn one.

Storage format per rank r, as blobs of the tag: "r/tensors" holds every tensor's bytes,
concatenated, taken straight from tensor memory (no pickling of tensor data); "r/state" holds
the small pickle of everything else, with each tensor replaced by a reference (dtype, shape,
offset) — the persistent_id mechanism torch.save itself uses.

What happens to special tensors:
  * 0-d and empty tensors round-trip with their shape and dtype.
  * A non-contiguous view is saved as a contiguous copy of its values: it loads with the same
    shape, dtype and values, contiguous (its strides and its sharing of storage with the base
    tensor are not preserved). Loading in place into a non-contiguous tensor writes its values
    through the view.
  * Tensors sharing storage (tied weights) are saved once per distinct tensor object; the same
    tensor object appearing twice is saved once and loads as one object.
  * GPU tensors are copied to the CPU to save and come back on the CPU unless loaded in place
    or with map_location.
  * Sparse, quantized and other non-strided tensors are refused (ValueError).
  * nn.Parameter objects load as plain tensors with requires_grad=True; use in-place loading
    (pass the model's state dict) to keep the model's own parameters.
"""
import errno
import io
import json
import pickle

import torch as _torch

from . import _shoal
from ._launch import _checkpointer_closers
from ._launch import engine as _engine

FORMAT = "shoal-torch/1"

_checkpointers = {}  # (id(engine), root) -> (options, _shoal.Checkpointer)


def checkpointer(*, engine=None, root="checkpoints", async_save=False, keep_last=0,
                 staging_bytes=1 << 30, verify_on_load=True):
    """The shoal Checkpointer of `root` on `engine` with these options (cached: the same
    options return the same one; new options close the old one first, waiting for its save)."""
    eng = _engine(engine)
    key = (id(eng), root)
    opts = (async_save, keep_last, staging_bytes, verify_on_load)
    cur = _checkpointers.get(key)
    if cur is not None:
        if cur[0] == opts:
            return cur[1]
        cur[1].close()
    ck = _shoal.Checkpointer(eng, root=root, async_save=async_save, staging_bytes=staging_bytes,
                             keep_last=keep_last, verify_on_load=verify_on_load)
    _checkpointers[key] = (opts, ck)
    return ck


def _close_all():
    for _, ck in list(_checkpointers.values()):
        ck.close()
    _checkpointers.clear()


_checkpointer_closers.append(_close_all)


class _TensorTable:
    """Tensors found while pickling: each distinct tensor object once, with its key path."""

    def __init__(self, paths):
        self.paths = paths  # id(tensor) -> ("model.layer.weight", tensor)
        self.entries = []
        self.pieces = []
        self.keep = []  # the originals, so ids stay unique while pickling
        self.index = {}
        self.offset = 0

    def path(self, t):
        return self.paths.get(id(t), (None, None))[0]

    def add(self, t):
        i = self.index.get(id(t))
        if i is not None:
            return i
        if t.layout != _torch.strided or t.is_quantized:
            raise _shoal.InvalidArgumentError(
                f"tensor {self.path(t) or '?'}: {t.layout} / quantized tensors are not "
                "supported by shoal.torch (convert to a dense tensor)")
        src = t.detach()
        if src.device.type != "cpu":
            src = src.cpu()
        if not src.is_contiguous():
            src = src.contiguous()
        nbytes = src.numel() * src.element_size()
        i = len(self.entries)
        self.entries.append({
            "dtype": str(src.dtype).replace("torch.", ""),
            "shape": list(src.shape),
            "offset": self.offset,
            "nbytes": nbytes,
            "requires_grad": bool(t.requires_grad),
            "path": self.path(t),
        })
        self.pieces.append(src)
        self.keep.append(t)
        self.index[id(t)] = i
        self.offset += nbytes
        return i


def _tensors(obj, prefix="", out=None, seen=None):
    """id(tensor) -> (key path, tensor) of every tensor reachable through dicts, lists and
    tuples (the first path when a tensor appears twice)."""
    if out is None:
        out, seen = {}, set()
    if isinstance(obj, _torch.Tensor):
        out.setdefault(id(obj), (prefix, obj))
    elif isinstance(obj, (dict, list, tuple)):
        if id(obj) in seen:
            return out
        seen.add(id(obj))
        items = obj.items() if isinstance(obj, dict) else enumerate(obj)
        for k, v in items:
            _tensors(v, f"{prefix}.{k}" if prefix else str(k), out, seen)
    return out


class _Pickler(pickle.Pickler):
    def __init__(self, f, table):
        super().__init__(f, protocol=pickle.HIGHEST_PROTOCOL)
        self.table = table

    def persistent_id(self, obj):
        if isinstance(obj, _torch.Tensor):
            return ("shoal-tensor", self.table.add(obj))
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, tensors):
        super().__init__(f)
        self.tensors = tensors

    def persistent_load(self, pid):
        kind, i = pid
        if kind != "shoal-tensor":
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        return self.tensors[i]


def save(obj, tag, *, engine=None, root="checkpoints", async_save=False, keep_last=0,
         staging_bytes=1 << 30, metadata=None):
    """Collective: every rank saves its `obj` (a state dict or any picklable structure holding
    tensors) as its part of checkpoint `tag`, published atomically with every rank's part.

    Sync (default): returns once the tag is committed (durable on every rank). async_save=True:
    returns once the tensors are copied into the staging pool (`staging_bytes`; the caller may
    change them afterwards); the returned handle's wait() raises the outcome. The next save waits
    for the previous one. keep_last=K keeps the newest K tags. `metadata`: a JSON-able dict
    stored from rank 0 in the manifest. Returns a shoal SaveHandle.

    Errors: AlreadyExistsError (FileExistsError) when `tag` is committed; InvalidArgumentError
    (ValueError) for a bad tag or an unsupported tensor; storage errors as shoal.Error subclasses.
    """
    ck = checkpointer(engine=engine, root=root, async_save=async_save, keep_last=keep_last,
                      staging_bytes=staging_bytes)
    table = _TensorTable(_tensors(obj))
    buf = io.BytesIO()
    _Pickler(buf, table).dump(obj)
    state = pickle.dumps({"format": FORMAT, "tensors": table.entries, "object": buf.getvalue()},
                         protocol=pickle.HIGHEST_PROTOCOL)
    rank = _engine(engine).rank
    meta = {"format": FORMAT}
    if metadata is not None:
        meta["user"] = metadata
    save = ck.begin(tag)
    try:
        save.save(f"{rank}/state", state)
        save.save_pieces(f"{rank}/tensors", table.pieces)
    except BaseException:
        save.abandon()
        raise
    handle = save.commit(json.dumps(meta).encode())
    if not async_save:
        handle.wait()
    return handle


def latest(*, engine=None, root="checkpoints"):
    """The newest committed tag, or None."""
    return _reader(engine, root).latest()


def tags(*, engine=None, root="checkpoints"):
    """Committed tags, oldest first."""
    return [t for t, _ in _reader(engine, root).list()]


def _reader(engine, root):
    """A checkpointer of `root` to read with: the cached one whatever its save options (so
    reading never reopens it), else one with the defaults."""
    cur = _checkpointers.get((id(_engine(engine)), root))
    return cur[1] if cur is not None else checkpointer(engine=engine, root=root)


def _dtype(name):
    dt = getattr(_torch, name, None)
    if not isinstance(dt, _torch.dtype):
        raise _shoal.CorruptionError(errno.EIO, f"checkpoint names an unknown dtype {name!r}")
    return dt


def load(tag="latest", target=None, *, engine=None, root="checkpoints", map_location=None,
         shard=None):
    """Loads this rank's part of checkpoint `tag` ("latest": the newest) and returns it.

    target: a structure like the saved one (e.g. {"model": model.state_dict(), ...}); every
      tensor at the same key path with the same shape and dtype is filled in place (and is the
      object returned there); a mismatch raises InvalidArgumentError (ValueError) naming it.
      Tensors absent from `target` are allocated (on the CPU, or `map_location`).
    shard: which rank's part to load (default: this rank). A checkpoint saved by a different
      number of ranks needs it (or shoal.dcp for resharding).
    Errors: NotFoundError (FileNotFoundError) when there is no such committed tag;
    CorruptionError when bytes do not match their checksums.
    """
    ck = _reader(engine, root)
    eng = _engine(engine)
    if tag == "latest":
        tag = ck.latest()
        if tag is None:
            raise _shoal.NotFoundError(errno.ENOENT, f"no committed checkpoint in \"{root}\"")
    m = ck.manifest(tag)
    try:
        meta = json.loads(m.metadata or b"{}")
    except ValueError:
        meta = {}
    if meta.get("format") != FORMAT:
        raise _shoal.InvalidArgumentError(
            f"checkpoint \"{tag}\" was not written by shoal.torch.save (use shoal.dcp or the "
            "Checkpointer API)")
    if shard is None:
        if m.world_size != eng.world_size:
            raise _shoal.InvalidArgumentError(
                f"checkpoint \"{tag}\" was saved by {m.world_size} ranks and this world has "
                f"{eng.world_size}: pass shard=<rank> to load one rank's part, or save with "
                "shoal.dcp to reshard")
        shard = eng.rank
    sb = m.find(f"{shard}/state")
    if sb is None:
        raise _shoal.NotFoundError(errno.ENOENT, f"checkpoint \"{tag}\" has no part of rank {shard}")
    raw = bytearray(sb.size)
    ck.load(m, f"{shard}/state", raw)
    state = pickle.loads(raw)
    if state.get("format") != FORMAT:
        raise _shoal.CorruptionError(errno.EIO, f"checkpoint \"{tag}\" rank {shard}: unknown format")

    targets = dict(_tensors(target).values()) if target is not None else {}
    tensors, offsets, dsts, copies = [], [], [], []
    for e in state["tensors"]:
        dt = _dtype(e["dtype"])
        shape = tuple(e["shape"])
        t = targets.get(e["path"]) if e["path"] is not None else None
        if t is not None:
            if tuple(t.shape) != shape or t.dtype != dt:
                raise _shoal.InvalidArgumentError(
                    f"tensor \"{e['path']}\": checkpoint has {dt} {list(shape)}, target has "
                    f"{t.dtype} {list(t.shape)}")
            if t.device.type == "cpu" and t.is_contiguous():
                dst = t
            else:
                dst = _torch.empty(shape, dtype=dt)
                copies.append((t, dst))
        else:
            t = dst = _torch.empty(shape, dtype=dt)
            if e["requires_grad"] and (dt.is_floating_point or dt.is_complex):
                t.requires_grad_(True)
        tensors.append(t)
        if e["nbytes"]:
            offsets.append(e["offset"])
            dsts.append(dst)
    if dsts:
        ck.read_into_many(m, f"{shard}/tensors", offsets, dsts)
    with _torch.no_grad():
        for t, tmp in copies:
            t.copy_(tmp)
    if map_location is not None:
        in_place = {id(t) for t in targets.values()}
        tensors = [t if id(t) in in_place else t.to(map_location) for t in tensors]
    return _Unpickler(io.BytesIO(state["object"]), tensors).load()

