"""One member from Python: the object API, caller buffers, file-like objects with
torch.save/torch.load, the exception mapping, and that blocking calls release the GIL."""
import io
import threading
import time

import numpy as np
import pytest
import torch

import shoal


@pytest.fixture
def eng(tmp_path):
    e = shoal.init(str(tmp_path / "store-{rank}"), rank=0, world_size=1)
    yield e
    shoal.shutdown()


def test_write_read_stat_list_remove(eng):
    eng.write("d/a.bin", b"hello world")
    eng.write("d/sub/b.bin", bytes(range(256)) * 40000)  # ~10 MiB: several chunks
    assert eng.read("d/a.bin") == b"hello world"
    assert eng.read("d/a.bin", 6) == b"world"
    assert eng.read("d/a.bin", 0, 5) == b"hello"
    info = eng.stat("d/sub/b.bin")
    assert info.size == 256 * 40000 and info.num_chunks == 3
    entries = {e.name: (e.is_dir, e.size) for e in eng.list("d")}
    assert entries == {"a.bin": (False, 11), "sub": (True, 1)}
    assert [e.name for e in eng.list("d", limit=1)] == ["a.bin"]
    eng.remove("d/a.bin")
    with pytest.raises(FileNotFoundError):
        eng.stat("d/a.bin")


def test_stat_many_answers_each_name(eng):
    eng.write("m/a", b"x" * 10)
    eng.write("m/b", b"y" * 5000)
    got = eng.stat_many(["m/a", "m/missing", "m/b", "m"])
    assert [g.size if g else None for g in got] == [10, None, 5000, None]
    assert got[0].path == "m/a" and got[0].is_inline
    assert eng.stat_many([]) == []
    with pytest.raises(ValueError):
        eng.stat_many(["m/../x"])


def test_write_many_stores_a_batch_and_tells_each_outcome(eng):
    eng.write("w/taken", b"old")
    items = [(f"w/o{i}", bytes([i % 256]) * (100 + i * 37)) for i in range(300)]
    items += [("w/taken", b"new"), ("w/o3", b"twice"), ("w//bad", b"x"),
              ("w/arr", np.arange(1000, dtype=np.int32)), ("w/t", torch.arange(10))]
    got = eng.write_many(items)
    assert got[:300] == [None] * 300
    assert got[300].startswith("AlreadyExists")
    assert got[301].startswith("AlreadyExists")
    assert got[302].startswith("InvalidArgument")
    assert got[303] is None and got[304] is None
    for name, data in items[:300]:
        assert eng.read(name) == data
    assert eng.read("w/taken") == b"old"
    assert eng.read("w/arr") == np.arange(1000, dtype=np.int32).tobytes()
    assert len(eng.list("w")) == 303
    assert eng.write_many([]) == []
    with pytest.raises(ValueError):
        eng.write_many([("w/x", b"1")], replicas=17)


def test_reads_into_caller_buffers_without_copies(eng):
    data = np.arange(1 << 20, dtype=np.float32)
    eng.write("x", data)                      # numpy in
    out = bytearray(data.nbytes)
    assert eng.readinto("x", out) == data.nbytes
    assert bytes(out) == data.tobytes()
    arr = np.empty_like(data)
    eng.readinto("x", arr)
    assert np.array_equal(arr, data)
    mv = memoryview(bytearray(100))
    assert eng.readinto("x", mv[10:30], 8) == 20
    assert bytes(mv[10:30]) == data.tobytes()[8:28]
    t = torch.empty(1 << 20, dtype=torch.float32)
    eng.readinto("x", t)
    assert torch.equal(t, torch.from_numpy(data))
    bf = torch.randn(1000).to(torch.bfloat16)  # no numpy dtype: read through data_ptr
    eng.write("bf", bf)
    back = torch.empty_like(bf)
    eng.readinto("bf", back)
    assert torch.equal(back, bf)


def test_bad_buffers_are_refused_clearly(eng):
    eng.write("x", b"abc")
    with pytest.raises(TypeError, match="writable"):
        eng.readinto("x", b"xyz")
    with pytest.raises(ValueError, match="contiguous"):
        eng.readinto("x", torch.zeros(4, 4)[:, 1])
    with pytest.raises(ValueError, match="contiguous"):
        eng.write("y", np.zeros((4, 4))[:, 1])
    with pytest.raises(TypeError, match="bytes-like"):
        eng.write("y", 12345)


def test_status_codes_map_to_python_exceptions(eng):
    eng.write("x", b"abc")
    with pytest.raises(shoal.NotFoundError) as e:
        eng.read("nope")
    assert isinstance(e.value, FileNotFoundError) and e.value.code == "NotFound"
    assert e.value.errno == 2 and "nope" in str(e.value)
    with pytest.raises(FileExistsError) as e:
        eng.write("x", b"again")
    assert isinstance(e.value, shoal.AlreadyExistsError)
    with pytest.raises(ValueError) as e:
        eng.write("a/../b", b"")
    assert isinstance(e.value, shoal.InvalidArgumentError) and e.value.code == "InvalidArgument"
    with pytest.raises(ValueError):
        eng.read("x", 10)  # offset past the end
    with pytest.raises(shoal.FailedPreconditionError):
        eng.write_at("never-created", 0, b"x")
    for cls, std in [(shoal.CorruptionError, OSError), (shoal.StorageIOError, OSError),
                     (shoal.NoSpaceError, OSError), (shoal.PermissionDeniedError, PermissionError),
                     (shoal.TimeoutError, TimeoutError), (shoal.UnavailableError, ConnectionError)]:
        assert issubclass(cls, shoal.Error) and issubclass(cls, std)
    with pytest.raises(ValueError, match="store directory"):
        shoal.init(None, rank=0, world_size=1, set_default=False)


def test_second_engine_on_a_store_is_permission_denied(eng, tmp_path):
    with pytest.raises(PermissionError):
        shoal.init(str(tmp_path / "store-{rank}"), rank=0, world_size=1, set_default=False)


def test_every_option_can_be_set_by_name(tmp_path):
    store = str(tmp_path / "opts-{rank}")
    e = shoal.init(store, rank=0, world_size=1, set_default=False, inline_threshold=0,
                   repair_parallelism=4, repair_rate_mib_s=0, scrub_rate_mib_s=0,
                   request_timeout_ms=5000, window=4, segment_size=64 << 20,
                   metadata_map_size=1 << 30, serve_node_stores=False, lost_members=[])
    e.write("tiny", b"0123456789")
    assert not e.stat("tiny").is_inline  # inline_threshold=0 reached the engine
    e.close()
    e = shoal.init(store, rank=0, world_size=1, set_default=False)
    assert e.stat("tiny").size == 10 and e.read("tiny") == b"0123456789"
    e.write("tiny2", b"0123456789")
    assert e.stat("tiny2").is_inline  # the default again
    e.close()
    # Ranges are the C++ ValidateOptions'; nothing is opened when one is out of range.
    for bad, match in [({"repair_parallelism": 0}, "repair_parallelism"),
                       ({"repair_parallelism": 257}, "repair_parallelism"),
                       ({"inline_threshold": 1 << 20}, "inline_threshold"),
                       ({"window": -1}, "window"),
                       ({"lost_members": "m1"}, "lost_members"),
                       ({"no_such_option": 1}, "no option")]:
        with pytest.raises(ValueError, match=match):
            shoal.init(store, rank=0, world_size=1, set_default=False, **bad)
    with pytest.raises(FileNotFoundError):
        shoal.init(str(tmp_path / "absent-{rank}"), rank=0, world_size=1, set_default=False,
                   create_if_missing=False)
    assert not (tmp_path / "absent-0").exists()


def test_file_like_round_trip_with_torch_save_and_load(eng):
    state = {"w": torch.randn(1000, 100), "i": torch.arange(7), "s": "text", "e": torch.empty(0)}
    with shoal.open("models/m.pt", "wb") as f:
        torch.save(state, f)
    with pytest.raises(FileExistsError):
        shoal.open("models/m.pt", "wb")
    with shoal.open("models/m.pt") as f:
        back = torch.load(f)
    assert back.keys() == state.keys() and back["s"] == "text"
    assert all(torch.equal(back[k], state[k]) for k in ("w", "i", "e"))
    # read / readinto / seek / tell
    payload = bytes(range(256)) * 100
    with eng.open("raw", "wb") as f:
        f.write(payload[:1000])
        f.write(memoryview(payload)[1000:])
        assert f.tell() == len(payload)
    with shoal.open("raw") as f:
        assert f.read(10) == payload[:10]
        f.seek(-6, io.SEEK_END)
        assert f.tell() == len(payload) - 6
        assert f.read() == payload[-6:]
        f.seek(300)
        buf = bytearray(50)
        assert f.readinto(buf) == 50 and bytes(buf) == payload[300:350]
        assert f.read(0) == b""
    with pytest.raises(ValueError, match="binary"):
        shoal.open("raw", "r+")


def test_a_writer_left_by_an_exception_or_unclosed_is_never_sealed(eng):
    with pytest.raises(RuntimeError):
        with shoal.open("half", "wb") as f:
            f.write(b"x" * 100)
            raise RuntimeError("training crashed")
    with pytest.raises(FileNotFoundError):
        eng.stat("half")
    f = shoal.open("dropped", "wb")
    f.write(b"partial")
    del f
    with pytest.raises(FileNotFoundError):
        eng.stat("dropped")
    with shoal.open("dropped", "wb") as f:  # the name is free again
        f.write(b"whole")
    assert eng.read("dropped") == b"whole"


def test_blocking_calls_release_the_gil(eng):
    big = np.random.default_rng(0).integers(0, 255, 64 << 20, dtype=np.uint8)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    th = threading.Thread(target=ticker)
    th.start()
    try:
        t0 = time.perf_counter()
        for i in range(3):
            eng.write(f"big-{i}", big)
            eng.readinto(f"big-{i}", np.empty_like(big))
        t1 = time.perf_counter()
    finally:
        stop.set()
        th.join()
    during = [t for t in ticks if t0 <= t <= t1]
    # With the GIL held for the whole I/O the ticker could not run at all meanwhile.
    assert len(during) >= 10, (len(during), t1 - t0)


def test_torch_save_load_single_member(eng):
    import shoal.torch
    from state_dicts import assert_same, mixed_state
    sd = mixed_state(0)
    shoal.torch.save(sd, "step-1")
    assert_same(shoal.torch.load("step-1"), sd)
    assert shoal.torch.latest() == "step-1"
    with pytest.raises(FileNotFoundError):
        shoal.torch.load("step-9")
    with pytest.raises(ValueError):
        shoal.torch.save(sd, "bad/tag")
    with pytest.raises(ValueError, match="not supported"):
        shoal.torch.save({"s": torch.randn(3, 3).to_sparse()}, "sparse")


def test_a_forked_child_does_not_hold_the_store_after_its_parent_closes(tmp_path):
    # A DataLoader worker forked after init, still alive when the training loop closes its
    # engine and opens it again (or the next job starts): the store is not locked by the child.
    import os
    store = str(tmp_path / "forked-{rank}")
    e = shoal.init(store, rank=0, world_size=1, set_default=False)
    e.write("kept", b"before the fork")
    r, w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.close(ready_r)
        os.write(ready_w, b"1")  # running: its fork handlers closed the LOCK
        os.read(r, 1)  # until the parent is done
        os._exit(0)
    os.close(r)
    os.close(ready_w)
    # Until the child runs at all, the kernel's copy of the LOCK is its as much as ours (fork
    # has no close-on-fork flag); the test starts once it runs.
    assert os.read(ready_r, 1) == b"1"
    os.close(ready_r)
    try:
        e.close()
        again = shoal.init(store, rank=0, world_size=1, set_default=False)
        assert again.read("kept") == b"before the fork"
        again.close()
    finally:
        os.close(w)
        os.waitpid(pid, 0)


def test_a_forked_child_is_refused_at_once(eng):
    # A DataLoader worker forked after init: its calls fail at once instead of hanging.
    import os
    eng.write("fork/x", b"parent data")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            eng.read("fork/x")
        except shoal.Error as e:
            code = 0 if ("fork" in str(e) and isinstance(e, RuntimeError)) else 2
        except BaseException:
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert eng.read("fork/x") == b"parent data"


def test_option_names_are_the_cpp_table_and_wrong_types_are_refused(tmp_path):
    names = shoal.option_names()
    assert "metrics_listen" in names and "stat_cache_entries" in names and "allgather" not in names
    store = str(tmp_path / "t-{rank}")
    for bad, match in [({"serve_node_stores": 1}, "True or False"), ({"window": True}, "integer"),
                       ({"window": 2.5}, "integer"), ({"metrics_listen": 9400}, "string"),
                       ({"lost_members": ["a,b"]}, "without commas"),
                       ({"segment_size": -(1 << 30)}, "non-negative")]:
        with pytest.raises(ValueError, match=match):
            shoal.init(store, rank=0, world_size=1, set_default=False, **bad)


def test_stats_and_a_prometheus_scrape_of_the_same_counters(tmp_path):
    import urllib.error
    import urllib.request
    e = shoal.init(str(tmp_path / "m-{rank}"), rank=0, world_size=1, set_default=False,
                   metrics_listen="127.0.0.1:0", node="n-py")
    try:
        e.write("a", b"x" * 5000)
        assert e.read("a") == b"x" * 5000
        s = e.stats()
        assert s["counters"]["engine.write.ops"] == 1
        assert s["counters"]["engine.read.bytes"] == 5000
        assert s["histograms"]["engine.read.latency_ns"]["count"] >= 1
        port = e.metrics_port
        assert port > 0
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert 'shoal_engine_write_ops_total{rank="0",node="n-py"} 1\n' in text
        assert 'shoal_engine_read_bytes_total{rank="0",node="n-py"} 5000\n' in text
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
    finally:
        e.close()


def test_read_sizes_and_read_only_destinations(eng):
    eng.write("small", b"0123456789")
    # A size far past the end reads to the end, without allocating the size asked for.
    assert eng.read("small", 0, 1 << 40) == b"0123456789"
    assert eng.read("small", 4, 1 << 30) == b"456789"
    assert eng.read("small", 2, 3) == b"234"
    for bad in (-2, -(1 << 40)):
        with pytest.raises(ValueError, match="read size"):
            eng.read("small", 0, bad)
    for dst in (b"x" * 10, memoryview(b"y" * 10)):
        with pytest.raises(TypeError, match="read-only"):
            eng.readinto("small", dst)
    ro = np.zeros(10, dtype=np.uint8)
    ro.flags.writeable = False
    with pytest.raises(TypeError, match="read-only"):
        eng.readinto("small", ro)
