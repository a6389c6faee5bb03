"""shoal.dcp: shoal as a storage backend of PyTorch distributed checkpoint (DCP).

    from shoal.dcp import ShoalWriter, ShoalReader
    dcp.save_state_dict(state_dict, storage_writer=ShoalWriter("step-100"))   # torch 1.13
    dcp.load_state_dict(state_dict, storage_reader=ShoalReader("latest"))
    # torch >= 2: dcp.save(state_dict, storage_writer=ShoalWriter("step-100")), dcp.load(...)

A DCP checkpoint is an ordinary shoal checkpoint tag (include/shoal/checkpoint.h): every rank's
items are one blob "<rank>/data" (tensor bytes straight from memory; BYTE_IO items as they are),
DCP's metadata is the blob ".metadata", and the tag is published atomically by the collective
commit once every rank's blob is durable, so it is listed by shoal.torch.tags()/latest(), kept
by retention, and never torn. Restoring with a different world size works: DCP plans which
slices every rank needs and the reader reads exactly those byte ranges from any rank's blob.

How the collective commit meets DCP's protocol: DCP calls finish() on the coordinator only.
Each rank's writer therefore runs its Checkpointer in async mode: write_data() stages the bytes
and calls commit(), which returns at once and completes in the background when rank 0 (the
coordinator) commits in finish(); finish() waits for the outcome, and DCP hands it (or its
error) to every rank.

Works with torch.distributed.checkpoint (torch >= 2) and torch 1.13's
torch.distributed._shard.checkpoint. On Python 3.11 the 1.13 module does not import (a
dataclass with a mutable default, a torch bug): this module applies the fix in
shoal/_torch_compat.py first, only where the import fails without it.
"""
import dataclasses
import io
import pickle

import torch

from . import _shoal
from . import _torch_compat
from ._launch import engine as _default_engine

try:  # torch >= 2
    from torch.distributed.checkpoint.planner import LoadItemType, WriteItemType  # type: ignore
    from torch.distributed.checkpoint.storage import (  # type: ignore
        StorageReader, StorageWriter, WriteResult)
except ImportError:  # torch 1.13
    _torch_compat.apply()
    from torch.distributed._shard.checkpoint.planner import (  # type: ignore
        LoadItemType, WriteItemType)
    from torch.distributed._shard.checkpoint.storage import (  # type: ignore
        StorageReader, StorageWriter, WriteResult)

_METADATA_BLOB = ".metadata"
_STAGING = 256 << 20


@dataclasses.dataclass(frozen=True)
class StorageInfo:
    """Where one DCP item lives: rank `rank`'s blob, `length` bytes at `offset`; tensors also
    carry dtype and shape (their bytes are raw, C-contiguous)."""
    rank: int
    offset: int
    length: int
    dtype: str = ""
    shape: tuple = ()


def _checkpointer(engine, root, async_save, staging_bytes=_STAGING):
    from .torch import checkpointer
    return checkpointer(engine=engine, root=root, async_save=async_save,
                        staging_bytes=staging_bytes)


class ShoalWriter(StorageWriter):
    """Writes a DCP checkpoint as shoal tag `tag` (collective, atomic). `staging_bytes`: the
    async staging pool of each rank (memory used while a save is in flight)."""

    def __init__(self, tag=None, *, engine=None, root="checkpoints", staging_bytes=_STAGING):
        super().__init__()
        self.tag = tag
        self.engine = engine
        self.root = root
        self.staging_bytes = staging_bytes
        self._save = None
        self._handle = None

    # torch >= 2
    def reset(self, checkpoint_id=None):
        if checkpoint_id is not None:
            self.tag = str(checkpoint_id)
        self._save = None
        self._handle = None

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id):
        return isinstance(checkpoint_id, str)

    def set_up_storage_writer(self, is_coordinator):
        self.init(is_coordinator)

    def storage_meta(self):
        return None

    # torch 1.13 (and what set_up_storage_writer does)
    def init(self, is_coordinator):
        if not self.tag:
            raise _shoal.InvalidArgumentError("ShoalWriter needs a tag (e.g. \"step-100\")")
        eng = _default_engine(self.engine)
        if is_coordinator != (eng.rank == 0):
            raise _shoal.InvalidArgumentError(
                "the DCP coordinator must be shoal rank 0 (coordinator_rank=0, the process group "
                "ranks equal to shoal's)")
        self._eng = eng
        ck = _checkpointer(eng, self.root, True, self.staging_bytes)
        self._save = ck.begin(self.tag)  # collective over shoal's own transport

    def prepare_local_plan(self, plan):
        return plan

    def prepare_global_plan(self, plans):
        return plans

    def write_data(self, plan, planner):
        rank = self._eng.rank
        pieces, results, offset = [], [], 0
        items = sorted(plan.items, key=lambda wi: wi.type == WriteItemType.BYTE_IO)
        for wi in items:
            data = planner.resolve_data(wi)
            if wi.type == WriteItemType.BYTE_IO:
                piece = data.getbuffer() if isinstance(data, io.BytesIO) else memoryview(data)
                info = StorageInfo(rank, offset, piece.nbytes)
            else:
                t = data.detach()
                if t.device.type != "cpu":
                    t = t.cpu()
                if not t.is_contiguous():
                    t = t.contiguous()
                piece = t
                info = StorageInfo(rank, offset, t.numel() * t.element_size(),
                                   str(t.dtype).replace("torch.", ""), tuple(t.shape))
            pieces.append(piece)
            offset += info.length
            results.append(WriteResult(index=wi.index, size_in_bytes=info.length,
                                       storage_data=info))
        try:
            self._save.save_pieces(f"{rank}/data", pieces)
        except BaseException:
            self._save.abandon()
            raise
        if rank != 0:
            # Completes when the coordinator commits in finish(); Checkpointer.begin of the next
            # save waits for it.
            self._handle = self._save.commit()
        fut = torch.futures.Future()
        fut.set_result(results)
        return fut

    def finish(self, metadata, results):
        storage = {}
        for rank_results in results:
            for wr in rank_results:
                storage[wr.index] = wr.storage_data
        metadata.storage_data = storage
        self._save.save(_METADATA_BLOB, pickle.dumps(metadata, protocol=pickle.HIGHEST_PROTOCOL))
        self._handle = self._save.commit(b'{"format": "shoal-dcp/1"}')
        self._handle.wait()

    def wait(self):
        """This rank's commit outcome (non-coordinators: DCP returned before it was final)."""
        if self._handle is not None:
            self._handle.wait()


class ShoalReader(StorageReader):
    """Reads DCP checkpoint `tag` ("latest": the newest shoal tag) from shoal; any world size."""

    def __init__(self, tag="latest", *, engine=None, root="checkpoints"):
        super().__init__()
        self.tag = tag
        self.engine = engine
        self.root = root
        self.storage_data = {}

    def reset(self, checkpoint_id=None):
        if checkpoint_id is not None:
            self.tag = str(checkpoint_id)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id):
        return isinstance(checkpoint_id, str)

    def _open(self):
        from .torch import _reader
        ck = _reader(self.engine, self.root)
        tag = ck.latest() if self.tag == "latest" else self.tag
        if tag is None:
            raise _shoal.NotFoundError(2, f"no committed checkpoint in \"{self.root}\"")
        return ck, ck.manifest(tag)

    def read_metadata(self):
        ck, m = self._open()
        self._ck, self._m = ck, m
        blob = m.find(_METADATA_BLOB)
        if blob is None:
            raise _shoal.InvalidArgumentError(
                f"checkpoint \"{m.tag}\" was not written through DCP (no {_METADATA_BLOB})")
        raw = bytearray(blob.size)
        ck.load(m, _METADATA_BLOB, raw)
        return pickle.loads(raw)

    def set_up_storage_reader(self, metadata, is_coordinator):
        self.init(metadata, is_coordinator)

    def init(self, metadata, is_coordinator):
        self.storage_data = metadata.storage_data
        if not hasattr(self, "_m"):
            self._ck, self._m = self._open()

    def prepare_local_plan(self, plan):
        return plan

    def prepare_global_plan(self, plans):
        return plans

    def read_data(self, plan, planner):
        # Whole stored items, grouped per blob and read in one call each (large ones straight
        # into their tensors), then narrowed to the slices DCP asked for.
        by_blob = {}
        for req in plan.items:
            info = self.storage_data[req.storage_index]
            by_blob.setdefault(f"{info.rank}/data", []).append((req, info))
        for blob, reqs in by_blob.items():
            bufs, direct = [], []
            for req, info in reqs:
                if req.type == LoadItemType.BYTE_IO:
                    bufs.append(bytearray(info.length))
                    direct.append(None)
                    continue
                dtype = getattr(torch, info.dtype)
                dst = planner.resolve_tensor(req).detach()
                whole = (all(o == 0 for o in req.storage_offsets) and
                         tuple(req.lengths) == tuple(info.shape))
                if (whole and dst.device.type == "cpu" and dst.is_contiguous() and
                        dst.dtype == dtype and tuple(dst.shape) == tuple(info.shape)):
                    bufs.append(dst)  # read straight into the destination
                    direct.append(dst)
                else:
                    bufs.append(torch.empty(info.shape, dtype=dtype))
                    direct.append(dst)
            live = [(info.offset, b) for b, (_, info) in zip(bufs, reqs) if info.length]
            if live:
                self._ck.read_into_many(self._m, blob, [o for o, _ in live], [b for _, b in live])
            for (req, info), buf, dst in zip(reqs, bufs, direct):
                if req.type == LoadItemType.BYTE_IO:
                    planner.load_bytes(req, io.BytesIO(buf))  # copies once
                    continue
                if buf is not dst:
                    src = buf
                    for dim, (off, length) in enumerate(zip(req.storage_offsets, req.lengths)):
                        src = src.narrow(dim, off, length)
                    if dst.size() != src.size():
                        raise _shoal.InvalidArgumentError(
                            f"DCP item {req.storage_index}: stored slice {list(src.size())} vs "
                            f"destination {list(dst.size())}")
                    dst.copy_(src)
                planner.commit_tensor(req, dst)
        fut = torch.futures.Future()
        fut.set_result(None)
        return fut
