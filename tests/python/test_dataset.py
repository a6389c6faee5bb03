"""The dataset cache from Python on one member: a directory source and a Python source (called
from the cache's threads), one source read per sample, errors, warm-up with progress."""
import os
import threading

import pytest

import shoal


@pytest.fixture
def eng(tmp_path):
    e = shoal.init(str(tmp_path / "store-{rank}"), rank=0, world_size=1)
    yield e
    shoal.shutdown()


def content(name):
    return (name.encode() * 997)[: 1000 + len(name) * 37]


def test_directory_source_reads_through_once(eng, tmp_path):
    src = tmp_path / "src"
    names = [f"c{i % 3}/s{i:02}.bin" for i in range(20)]
    for n in names:
        (src / os.path.dirname(n)).mkdir(parents=True, exist_ok=True)
        (src / n).write_bytes(content(n))
    with shoal.DatasetCache(eng, str(src), root="datasets/dir") as ds:
        assert len(ds) == 20
        assert [ds.info(i)[0] for i in range(len(ds))] == sorted(names)
        for _ in range(2):
            for n in names:
                assert ds.read(n) == content(n)
        st = ds.stats()
        assert st["source_reads"] == 20 and st["hits"] == 20 and st["misses"] == 20
        buf = bytearray(5000)
        i = ds.find(names[3])
        assert ds.read_into(i, buf) == len(content(names[3]))
        assert bytes(buf[: len(content(names[3]))]) == content(names[3])
        with pytest.raises(shoal.InvalidArgumentError):
            ds.read_into(i, bytearray(3))
        with pytest.raises(TypeError):
            ds.read_into(i, bytes(5000))  # read-only
        with pytest.raises(shoal.NotFoundError):
            ds.read("no/such.bin")
        with pytest.raises(shoal.InvalidArgumentError):
            ds.read(len(ds))
    # The engine refuses to close while a cache is open; closed, it goes.
    ds2 = shoal.DatasetCache(eng, str(src), root="datasets/dir")
    assert len(ds2) == 20
    with pytest.raises(shoal.FailedPreconditionError):
        eng.close()
    ds2.close()
    with pytest.raises(shoal.FailedPreconditionError):
        len(ds2)


class Source:
    """A Python source: samples in a dict; counts reads; can fail one."""

    def __init__(self, samples):
        self.samples = samples
        self.reads = {}
        self.lock = threading.Lock()
        self.fail = set()

    def list(self, part, parts):
        return [(n, len(b), "v1") for i, (n, b) in enumerate(sorted(self.samples.items()))
                if i % parts == part]

    def stat(self, name):
        if name not in self.samples:
            raise KeyError(name)
        return (len(self.samples[name]), "v1")

    def read(self, name):
        with self.lock:
            self.reads[name] = self.reads.get(name, 0) + 1
        if name in self.fail:
            raise RuntimeError("the object store said no")
        return self.samples[name]


def test_python_source_warm_batches_and_errors(eng):
    src = Source({f"k{i:03}": bytes([i]) * (100 + i) for i in range(50)})
    ds = shoal.DatasetCache(eng, src, root="datasets/py", warm_threads=4)
    assert len(ds) == 50
    seen = []
    ds.warm(progress=lambda done, total: seen.append((done, total)))
    assert len(seen) == 50 and max(d for d, _ in seen) == 50 and all(t == 50 for _, t in seen)
    assert sum(src.reads.values()) == 50  # loaded by the cache's threads, once each
    for i in range(50):
        assert ds.read(i) == bytes([i]) * (100 + i)
    assert sum(src.reads.values()) == 50
    assert ds.stats()["hits"] == 50
    # A failing source: that sample's error, with the Python message; the rest unaffected.
    src2 = Source({"a": b"x" * 10, "b": b"y" * 20})
    src2.fail.add("b")
    ds2 = shoal.DatasetCache(eng, src2, root="datasets/py2")
    assert ds2.read("a") == b"x" * 10
    with pytest.raises(shoal.StorageIOError, match="the object store said no"):
        ds2.read("b")
    src2.fail.clear()
    assert ds2.read("b") == b"y" * 20
    ds.close()
    ds2.close()


def test_a_grown_sample_is_read_at_its_new_size_and_a_lying_source_is_refused(eng):
    src = Source({"a": b"12345", "b": b"xy"})
    ds = shoal.DatasetCache(eng, src, root="datasets/grown")
    src.samples["a"] = b"1234567890"  # grew before its first load: stat says so
    assert ds.read("a") == b"1234567890"
    assert ds.stats()["version_changes"] == 1
    assert ds.info("a")[1] == 10
    src.stat = lambda name: (2, "v1")  # now stat lies: read returns more than it says
    src.samples["b"] = b"much longer than two"
    with pytest.raises(shoal.InvalidArgumentError, match="more than its listed size"):
        ds.read("b")
    ds.close()


def test_capacity_evicts_pins_hold_and_stats_say_so(eng, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    names = [f"s{i:02}.bin" for i in range(30)]
    for n in names:
        (src / n).write_bytes(n.encode() * 2000)  # 14,000 bytes each: on disk, not inline
    with shoal.DatasetCache(eng, str(src), root="datasets/cap", capacity_bytes=10 * 14000) as ds:
        ds.pin([0, 1])
        for _ in range(2):
            for n in names:
                assert ds.read(n) == n.encode() * 2000
        st = ds.stats()
        assert st["capacity_bytes"] == 140000
        assert 0 < st["disk_bytes"] <= 140000
        assert st["evictions"] > 0
        assert st["source_reads"] > 30  # evicted samples read again
        assert st["disk_samples"] <= 10
    # Pinned samples 0 and 1 were read from the source once: a fresh cache on the same root
    # finds them held (and others), and trims nothing under the same capacity.
    with shoal.DatasetCache(eng, str(src), root="datasets/cap", capacity_bytes=10 * 14000) as ds:
        assert ds.stats()["disk_samples"] >= 2
