"""shoal.data: PyTorch Datasets over shoal, read by DataLoader workers through shared memory.

    import shoal, shoal.data
    shoal.init(store="/nvme/shoal/{rank}")
    ds = shoal.data.ImageFolder("/data/train", transform=to_tensor)       # collective
    sampler = shoal.data.DistributedSampler(ds, seed=0)
    loader = shoal.data.DataLoader(ds, batch_size=64, sampler=sampler, num_workers=4)
    for epoch in range(start, epochs):
        sampler.set_epoch(epoch)
        for (images, labels), mask in loader:      # mask: False for padding (see below)
            ...
            shoal.torch.save({"model": ..., "sampler": sampler.state_dict()}, f"step-{n}")

Datasets: `ShoalDataset.from_prefix` / `from_objects` (shoal objects), `from_source` (the dataset
cache over a directory or a Python source; collective), `ImageFolder` (class from the top-level
directory name). A sample is given to `transform` as bytes, a memoryview or a uint8 tensor
(`output=`); memoryviews and tensors wrap the shared pool without a copy and hold their slot
until freed.

Workers: each Dataset made in a rank's process starts (once per engine) a shared-memory ring
(`serve`) served by threads of the rank's process; a DataLoader worker, forked or spawned,
attaches to it on first use (again after a fork) and reads through it. The pool is cut into
`channels` parts, one per attached process; a part must hold what one worker keeps at once:
at least 2 x batch_size x largest sample (see docs/data.md). The rank exiting makes its workers
fail with shoal.UnavailableError.

Shuffle: `DistributedSampler` gives every sample of an epoch exactly once over the whole world;
shares of unequal length are padded to the same number of steps with flagged repeats
(`Padded`), so DDP never waits on a rank that ran out: `DataLoader` yields `(batch, mask)` and
the loss ignores masked rows. `state_dict()` (collective) records what the training loop
consumed, so a job resumes mid-epoch, also with another world size.
"""
import io
import math
import os
import threading

import numpy as np
import torch
from torch.utils.data import BatchSampler, Dataset, IterableDataset, Sampler, get_worker_info
from torch.utils.data import DataLoader as _TorchDataLoader

from . import _launch, _shoal

__all__ = [
    "serve", "ShoalDataset", "ShoalIterableDataset", "ImageFolder", "DistributedSampler",
    "DataLoader", "Padded",
]

# ---- the ring of each engine (rank process) and the readers of each process ----

_lock = threading.Lock()
_servers = {}  # id(engine) -> SharedReadServer
_caches = []   # DatasetCaches opened by from_source (closed before the engine)
_readers = {}  # (ring name, pid) -> SharedReader


def serve(engine=None, channels=32, part_bytes=64 << 20):
    """The shared-memory ring through which processes of this host read with this rank's engine
    (started once per engine; later calls return it). `channels`: processes attached at once
    (the workers of every live DataLoader of this rank, and the rank itself; 1..256);
    `part_bytes`: pool bytes per channel (at least 2 x batch x largest sample)."""
    eng = _launch.engine(engine)
    with _lock:
        s = _servers.get(id(eng))
        if s is None or s.stopped:
            token = os.environ.get("SHOAL_TOKEN", "")
            s = _shoal.SharedReadServer(eng, channels=channels, part_bytes=part_bytes, token=token)
            _servers[id(eng)] = s
        return s


def _close_all():
    with _lock:
        for s in _servers.values():
            s.stop()
        _servers.clear()
        for c in _caches:
            c.close()
        _caches.clear()
        for k in [k for k in _readers if k[1] == os.getpid()]:
            del _readers[k]  # rings of servers just stopped


_launch._checkpointer_closers.append(_close_all)


class _Ring:
    """Name and token of a ring: what a Dataset carries into worker processes."""

    def __init__(self, name, token):
        self.name = name
        self.token = token

    def reader(self):
        key = (self.name, os.getpid())
        r = _readers.get(key)
        if r is None:
            with _lock:
                r = _readers.get(key)
                if r is None:
                    # Readers inherited from a parent process are not ours: forget them.
                    for k in [k for k in _readers if k[1] != key[1]]:
                        del _readers[k]
                    r = _shoal.SharedReader.attach(self.name, self.token)
                    _readers[key] = r
                    # A multiprocessing child (a DataLoader worker) leaves through os._exit:
                    # say goodbye at its exit hooks, so its channel is freed at once (a worker
                    # killed is reclaimed by the server when its pid goes).
                    import multiprocessing.util as mpu
                    mpu.Finalize(None, _detach, args=(key,), exitpriority=1)
        return r


def _detach(key):
    r = _readers.pop(key, None)
    if r is not None:
        r.flush()


# ---- samples as the transform sees them ----

def _as_output(buf, output):
    if output == "tensor":
        if len(buf) == 0:
            return torch.empty(0, dtype=torch.uint8)
        return torch.frombuffer(buf, dtype=torch.uint8)  # holds `buf` (its slot) while alive
    if output == "memoryview":
        return memoryview(buf)
    return bytes(buf)


class Padded(int):
    """A sample index the sampler repeats to even out the ranks' shares: read like any index,
    masked out of the loss (DataLoader's mask is False for it)."""

    def __reduce__(self):
        return (Padded, (int(self),))


def _identity(batch):
    return batch


class ShoalDataset(Dataset):
    """Map-style Dataset: item i is transform(sample i). Indexing with a list of indices (what
    DataLoader passes with a BatchSampler) reads them in one batched request and returns
    `(collate_fn(samples), mask)`."""

    def __init__(self, keys, ring, *, transform=None, output="bytes", labels=None,
                 collate_fn=None, names=None, cache=None):
        if output not in ("bytes", "memoryview", "tensor"):
            raise ValueError(f"output must be 'bytes', 'memoryview' or 'tensor', not {output!r}")
        self._keys = keys            # paths, or (dataset id, index) items
        self._ring = ring
        self.transform = transform
        self.output = output
        self.labels = labels
        self.names = names if names is not None else keys
        self.collate_fn = collate_fn or torch.utils.data.default_collate
        self._cache = cache          # the DatasetCache (rank process only)

    # --- construction ---
    @classmethod
    def from_objects(cls, paths, engine=None, **kw):
        """Over the shoal objects `paths` (read whole)."""
        s = serve(engine)
        return cls(list(paths), _Ring(s.name, s.token), **kw)

    @classmethod
    def from_prefix(cls, prefix, engine=None, **kw):
        """Over every object under directory `prefix` (recursively, sorted by path)."""
        eng = _launch.engine(engine)
        paths = []
        stack = [prefix.rstrip("/")]
        while stack:
            d = stack.pop()
            for e in eng.list(d):
                p = f"{d}/{e.name}" if d else e.name
                (stack.append(p) if e.is_dir else paths.append(p))
        return cls.from_objects(sorted(paths), engine=eng, **kw)

    @classmethod
    def from_source(cls, source, root="datasets/default", engine=None, warm=False,
                    cache_options=None, **kw):
        """Over the dataset cache of `source` (a directory, or an object with list / stat / read;
        see shoal.DatasetCache), cached in shoal under `root`. Collective: every rank calls it.
        warm=True loads every sample first (collective)."""
        eng = _launch.engine(engine)
        cache = _shoal.DatasetCache(eng, source, root=root, **(cache_options or {}))
        with _lock:
            _caches.append(cache)
        if warm:
            cache.warm()
        s = serve(eng)
        ds_id = s.register(cache)
        n = len(cache)
        names = [cache.info(i)[0] for i in range(n)]
        return cls([(ds_id, i) for i in range(n)], _Ring(s.name, s.token), names=names,
                   cache=cache, **kw)

    def __getstate__(self):  # into spawned workers: everything but the rank's cache handle
        state = dict(self.__dict__)
        state["_cache"] = None
        return state

    # --- access ---
    def __len__(self):
        return len(self._keys)

    def loader_ranks(self):
        """For every sample, the rank whose member a warm-up in this world caches it on (datasets
        over the cache): what DistributedSampler(locality=True) deals by."""
        if self._cache is None:
            raise ValueError("loader_ranks needs a dataset over the cache (from_source)")
        ranks = self._cache.loader_ranks()
        return [ranks[k[1]] for k in self._keys]

    def held_here(self):
        """Indices (of this dataset) whose samples this rank's member holds (datasets over the
        cache; empty otherwise)."""
        if self._cache is None:
            return []
        held = set(self._cache.held_here())
        return [i for i, k in enumerate(self._keys) if k[1] in held]

    def _sample(self, i, buf):
        x = _as_output(buf, self.output)
        if self.transform is not None:
            x = self.transform(x)
        if self.labels is not None:
            return x, self.labels[i]
        return x

    def fetch(self, indices):
        """The samples at `indices` (ints), read in one request: a list."""
        n = len(self._keys)
        for i in indices:
            if not 0 <= i < n:
                raise IndexError(f"sample index {int(i)} is out of range (dataset of {n})")
        bufs = self._ring.reader().read_batch([self._keys[i] for i in indices])
        return [self._sample(int(i), b) for i, b in zip(indices, bufs)]

    __getitems__ = fetch  # torch >= 2.0 DataLoaders fetch batches through it

    def __getitem__(self, index):
        if isinstance(index, (list, tuple)):
            samples = self.fetch(index)
            mask = torch.tensor([not isinstance(i, Padded) for i in index], dtype=torch.bool)
            return self.collate_fn(samples), mask
        if isinstance(index, str):
            index = self.names.index(index)
        return self.fetch([index])[0]


class ImageFolder(ShoalDataset):
    """An ImageFolder-style tree (root/<class>/<file>) through the dataset cache: item i is
    (transform(PIL image), class index), classes sorted by name (as torchvision's). Collective."""

    def __init__(self, root, transform=None, target_transform=None, *, engine=None,
                 cache_root=None, warm=False, cache_options=None, loader=None):
        base = ShoalDataset.from_source(root, root=cache_root or _cache_root(root), engine=engine,
                                        warm=warm, cache_options=cache_options)
        # Files directly under root belong to no class: left out, as torchvision does.
        keep = [i for i, n in enumerate(base.names) if "/" in n]
        names = [base.names[i] for i in keep]
        self.classes = sorted({n.split("/", 1)[0] for n in names})
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        labels = [self.class_to_idx[n.split("/", 1)[0]] for n in names]
        super().__init__([base._keys[i] for i in keep], base._ring, transform=None,
                         output="memoryview", labels=None, names=names, cache=base._cache)
        self._cache_index = keep
        self.targets = labels
        self.image_transform = transform
        self.target_transform = target_transform
        self.loader = loader or _pil_loader

    def _sample(self, i, buf):
        img = self.loader(memoryview(buf))
        if self.image_transform is not None:
            img = self.image_transform(img)
        target = self.targets[i]
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


def _cache_root(directory):
    import hashlib
    return "datasets/" + hashlib.sha256(os.path.abspath(directory).encode()).hexdigest()[:16]


def _pil_loader(data):
    """As torchvision's default loader: the decoded image in RGB."""
    from PIL import Image
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


class ShoalIterableDataset(IterableDataset):
    """Iterable over a ShoalDataset: the indices of `sampler` (all, in order, when None), split
    over the DataLoader's workers, read `fetch_size` at a time."""

    def __init__(self, dataset, sampler=None, fetch_size=64):
        self.dataset = dataset
        self.sampler = sampler
        self.fetch_size = fetch_size

    def __iter__(self):
        idx = list(self.sampler) if self.sampler is not None else range(len(self.dataset))
        w = get_worker_info()
        if w is not None:
            idx = idx[w.id::w.num_workers]
        for k in range(0, len(idx), self.fetch_size):
            yield from self.dataset.fetch(idx[k:k + self.fetch_size])

    def __len__(self):
        return len(self.sampler) if self.sampler is not None else len(self.dataset)


# ---- the distributed, resumable shuffle ----

def _world(rank, world_size):
    if rank is not None and world_size is not None:
        return rank, world_size
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class DistributedSampler(Sampler):
    """Every sample of an epoch exactly once over the world, in a seeded global order.

    The epoch's order is a permutation of range(n) from (seed, epoch); the samples not consumed
    yet are dealt round-robin to the ranks (rank r gets positions r, r + W, ...), and shorter
    shares are padded with `Padded` repeats to the longest, so every rank runs the same number
    of steps. `locality=True` (datasets over the cache) deals each rank the samples its member
    holds after a warm-up in this world (`loader_ranks()`), balanced: reads stay on the rank's
    own disk and memory tier, and each rank trains on the same part every epoch, shuffled
    within it (the global batch still mixes every part); exactly-once is unchanged.

    `state_dict()` is collective when torch.distributed is initialised (every rank calls it):
    the union of what every rank's training loop consumed (counted by shoal.data.DataLoader as
    it hands batches over, not as workers prefetch). `load_state_dict` on a world of any size
    resumes the epoch with the rest, re-dealt.
    """

    def __init__(self, dataset, *, rank=None, world_size=None, seed=0, shuffle=True,
                 locality=False):
        self.n = dataset if isinstance(dataset, int) else len(dataset)
        self.rank, self.world_size = _world(rank, world_size)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in a world of {self.world_size}")
        self.seed = int(seed)
        self.shuffle = shuffle
        self._owners = None
        if locality:
            if isinstance(dataset, int) or getattr(dataset, "_cache", None) is None:
                raise ValueError("locality=True needs a dataset over the cache (from_source, "
                                 "ImageFolder)")
            self._owners = np.asarray(dataset.loader_ranks(), dtype=np.int64) % self.world_size
        self.epoch = 0
        self._done = np.zeros(self.n, dtype=bool)  # consumed before the current deal
        self._share = None
        self.position = 0                          # of the current share, handed to the loop

    def set_epoch(self, epoch):
        if epoch != self.epoch:
            self.epoch = epoch
            self._done[:] = False
            self._share = None
            self.position = 0

    def _order(self):
        if not self.shuffle:
            return np.arange(self.n)
        g = torch.Generator()
        g.manual_seed(self.seed * 1000003 + self.epoch)
        return torch.randperm(self.n, generator=g).numpy()

    def share(self):
        """This rank's share of the epoch's rest, padded (Padded entries last)."""
        if self._share is None:
            rest = self._order()
            rest = rest[~self._done[rest]]
            if self._owners is None:
                mine = rest[self.rank::self.world_size]
            else:
                mine = self._deal_to_holders(rest)
            per = math.ceil(len(rest) / self.world_size) if len(rest) else 0
            out = [int(i) for i in mine]
            if len(out) < per:
                fill = out[0] if out else int(rest[0])
                out += [Padded(fill)] * (per - len(out))
            self._share = out
        return self._share

    def _deal_to_holders(self, rest):
        """Rank r's share: the samples of `rest` its member holds, as many as a balanced share
        takes (len(rest) // W, one more for the first len(rest) % W ranks); the holders' excess
        goes to the ranks short of theirs, in the epoch's order. The same on every rank."""
        w = self.world_size
        owner = self._owners[rest]
        want = [len(rest) // w + (1 if r < len(rest) % w else 0) for r in range(w)]
        keep = np.zeros(len(rest), dtype=bool)
        for r in range(w):
            pos = np.flatnonzero(owner == r)[:want[r]]
            keep[pos] = True
        taken = [int(keep[owner == r].sum()) for r in range(w)]
        spare = np.flatnonzero(~keep)  # positions in `rest`, in the epoch's order
        mine = list(np.flatnonzero(keep & (owner == self.rank)))
        k = 0
        for r in range(w):
            short = want[r] - taken[r]
            if r == self.rank:
                mine += list(spare[k:k + short])
            k += short
        return rest[np.sort(np.asarray(mine, dtype=np.int64))]

    def __iter__(self):
        share = self.share()
        if share and self.position == len(share):  # the epoch is done everywhere: the next
            self.set_epoch(self.epoch + 1)          # (set_epoch before iterating is optional)
            share = self.share()
        return iter(share[self.position:])

    def __len__(self):
        return len(self.share()) - self.position

    def advance(self, positions):
        """Records that the training loop took `positions` more entries of this rank's share."""
        self.position = min(self.position + positions, len(self.share()))

    def consumed(self):
        """Indices this rank's loop consumed this epoch (with those before the last deal)."""
        mine = np.zeros(self.n, dtype=bool)
        taken = [i for i in self.share()[:self.position] if not isinstance(i, Padded)]
        mine[np.asarray(taken, dtype=np.int64)] = True
        return mine | self._done

    def state_dict(self):
        done = self.consumed()
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            parts = [None] * dist.get_world_size()
            dist.all_gather_object(parts, np.packbits(done).tobytes())
            for p in parts:
                done |= np.unpackbits(np.frombuffer(p, dtype=np.uint8), count=self.n).astype(bool)
        return {"n": self.n, "seed": self.seed, "epoch": self.epoch, "shuffle": self.shuffle,
                "consumed": torch.from_numpy(np.packbits(done).copy()),
                "consumed_count": int(done.sum())}

    def load_state_dict(self, state):
        if int(state["n"]) != self.n:
            raise ValueError(f"the sampler state is of {int(state['n'])} samples, this dataset "
                             f"has {self.n}")
        self.seed = int(state["seed"])
        self.shuffle = bool(state["shuffle"])
        self.epoch = int(state["epoch"])
        bits = state["consumed"]
        bits = bits.numpy() if hasattr(bits, "numpy") else np.frombuffer(bits, dtype=np.uint8)
        self._done = np.unpackbits(bits.astype(np.uint8), count=self.n).astype(bool)
        self._share = None
        self.position = 0


class DataLoader:
    """A torch DataLoader over a ShoalDataset that fetches each batch in one request (through
    the shared ring in workers) and yields `(batch, mask)`; with a DistributedSampler it counts
    what it hands to the loop (the sampler's state). Other keyword arguments go to torch's
    DataLoader (num_workers, persistent_workers, prefetch_factor, multiprocessing_context,
    pin_memory, timeout, ...).

    prefetch_remote=K (a dataset from the cache opened with a memory tier,
    cache_options={"memory_bytes": ...}): a thread of the rank's process reads the samples of
    the next K batches that this rank's member does not hold into the memory tier ahead of the
    workers, so their requests find them in memory (with locality=True the remote samples come
    last in the share, so the thread has the whole local part of the epoch to fetch them)."""

    def __init__(self, dataset, batch_size=1, sampler=None, drop_last=False, shuffle=False,
                 prefetch_remote=0, **kw):
        if sampler is None:
            sampler = (torch.utils.data.RandomSampler(dataset) if shuffle
                       else torch.utils.data.SequentialSampler(dataset))
        if prefetch_remote and (getattr(dataset, "_cache", None) is None
                                or not isinstance(sampler, DistributedSampler)):
            raise ValueError("prefetch_remote needs a dataset from the cache (from_source, "
                             "ImageFolder) and a shoal.data.DistributedSampler")
        self.dataset = dataset
        self.sampler = sampler
        self.batch_size = batch_size
        self.prefetch_remote = prefetch_remote
        self.batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self._loader = _TorchDataLoader(dataset, sampler=self.batch_sampler, batch_size=None,
                                        collate_fn=_identity, **kw)

    def __len__(self):
        return len(self._loader)

    def __iter__(self):
        counted = isinstance(self.sampler, DistributedSampler)
        it = iter(self._loader)  # workers forked before the prefetch thread starts
        ahead = _RemotePrefetch(self) if self.prefetch_remote else None
        try:
            for batch, mask in it:
                if counted:
                    self.sampler.advance(len(mask))
                if ahead is not None:
                    ahead.moved()
                yield batch, mask
        finally:
            if ahead is not None:
                ahead.stop()


class _RemotePrefetch:
    """Reads the next batches' samples this member does not hold into the cache's memory tier."""

    def __init__(self, loader):
        ds, s = loader.dataset, loader.sampler
        self.cache = ds._cache
        held = np.zeros(len(ds), dtype=bool)
        h = np.asarray(ds.held_here(), dtype=np.int64)
        held[h] = True
        # torch's DataLoader has num_workers x prefetch_factor batches requested ahead of the
        # loop: the read-ahead starts past them and stays prefetch_remote batches further.
        kw = loader._loader
        inflight = kw.num_workers * (kw.prefetch_factor or 2) if kw.num_workers else 0
        start = s.position + inflight * loader.batch_size
        share = s.share()
        # (position in the share, cache index) of every remote sample from there on.
        self.todo = [(p, ds._keys[int(i)][1]) for p, i in enumerate(share) if p >= start
                     and not isinstance(i, Padded) and not held[int(i)]]
        self.window = (inflight + loader.prefetch_remote) * loader.batch_size
        self.sampler = s
        self.cv = threading.Condition()
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def moved(self):
        with self.cv:
            self.cv.notify()

    def stop(self):
        with self.cv:
            self.done = True
            self.cv.notify()
        self.thread.join()

    def _run(self):
        k = 0
        while k < len(self.todo):
            with self.cv:
                while not self.done and self.todo[k][0] >= self.sampler.position + self.window:
                    self.cv.wait(0.5)
                if self.done:
                    return
                limit = self.sampler.position + self.window
            j = k
            while j < len(self.todo) and j - k < 256 and self.todo[j][0] < limit:
                j += 1
            try:
                self.cache.read_batch([i for _, i in self.todo[k:j]])
            except Exception:  # noqa: BLE001  (a prefetch failure only costs the read later)
                pass
            k = j
