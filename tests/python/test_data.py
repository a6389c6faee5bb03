"""shoal.data on one rank: Datasets over objects and the cache, DataLoader workers (forked and
spawned) reading through the shared ring bit-exact and without copies, a worker killed
mid-epoch, errors raised in workers, the serving rank gone, ImageFolder against torchvision's,
and the sampler's exactly-once shuffle and its resumes on other world sizes. Worlds of ranks:
test_data_world.py."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import shoal
import shoal.data as sd
from data_helpers import KillOnce, as_list, content, in_pool, write_tree


@pytest.fixture
def eng(tmp_path):
    e = shoal.init(str(tmp_path / "store-{rank}"), rank=0, world_size=1)
    yield e
    shoal.shutdown()


@pytest.mark.parametrize("workers,ctx", [(0, None), (1, "fork"), (2, "fork"), (4, "fork"),
                                         (16, "fork"), (2, "spawn"), (4, "spawn")])
def test_workers_read_every_sample_bit_exact_from_the_pool(eng, tmp_path, workers, ctx):
    names = write_tree(str(tmp_path / "src"), 150)
    ds = sd.ShoalDataset.from_source(str(tmp_path / "src"), root="datasets/t", output="tensor",
                                     transform=in_pool, collate_fn=as_list)
    assert ds.names == names
    sampler = sd.DistributedSampler(ds, rank=0, world_size=1, seed=3)
    kw = {}
    if workers:
        kw = dict(num_workers=workers, multiprocessing_context=ctx, persistent_workers=True,
                  prefetch_factor=3)
    loader = sd.DataLoader(ds, batch_size=16, sampler=sampler, **kw)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        got, pids = [], set()
        for batch, mask in loader:
            assert bool(mask.all())
            for data, pooled, pid in batch:
                assert pooled, "a sample was copied out of the shared pool"
                got.append(data)
                pids.add(pid)
        assert sorted(got) == sorted(content(n) for n in names)
        if workers:
            assert os.getpid() not in pids and len(pids) >= min(workers, 2)
    assert sampler.position == len(sampler.share())


def test_objects_by_prefix_and_list_outputs(eng):
    for i in range(5):
        eng.write(f"p/a/{i}", bytes([i]) * (i * 100))
    eng.write("p/b/x", b"xyz")
    eng.write("q/other", b"no")
    ds = sd.ShoalDataset.from_prefix("p")
    assert ds.names == ["p/a/0", "p/a/1", "p/a/2", "p/a/3", "p/a/4", "p/b/x"]
    assert ds[4] == bytes([4]) * 400 and ds["p/b/x"] == b"xyz" and ds[0] == b""
    t = sd.ShoalDataset.from_objects(["p/b/x"], output="tensor")[0]
    assert t.dtype == torch.uint8 and bytes(t.numpy()) == b"xyz"
    mv = sd.ShoalDataset.from_objects(["p/b/x"], output="memoryview")[0]
    assert isinstance(mv, memoryview) and mv.tobytes() == b"xyz"
    with pytest.raises(IndexError):
        ds[6]
    with pytest.raises(ValueError):
        sd.ShoalDataset.from_objects(["p/b/x"], output="numpy")
    # Iterable, split over workers, every object once.
    it = sd.ShoalIterableDataset(ds, fetch_size=2)
    out = list(torch.utils.data.DataLoader(it, batch_size=None, num_workers=2))
    assert sorted(out) == sorted(eng.read(n) for n in ds.names)


def test_a_missing_object_raises_its_error_from_a_worker(eng):
    eng.write("d/ok", b"1")
    ds = sd.ShoalDataset.from_objects(["d/ok", "d/gone"])
    loader = sd.DataLoader(ds, batch_size=2, num_workers=2)
    with pytest.raises(shoal.NotFoundError, match="d/gone"):
        list(loader)


def test_a_worker_killed_mid_epoch_leaks_no_buffer(eng, tmp_path):
    write_tree(str(tmp_path / "src"), 64)
    marker = tmp_path / "kill"
    marker.write_text("")
    ds = sd.ShoalDataset.from_source(str(tmp_path / "src"), root="datasets/k", output="tensor",
                                     transform=KillOnce(str(marker)), collate_fn=as_list)
    server = sd.serve()
    loader = sd.DataLoader(ds, batch_size=8, num_workers=2)
    with pytest.raises(RuntimeError, match="exited unexpectedly"):
        list(loader)
    deadline = time.time() + 10
    while time.time() < deadline:
        c = server.counters()
        if c["reclaimed_readers"] >= 1 and c["leased_bytes"] == 0 and c["attached"] == 0:
            break
        time.sleep(0.05)
    c = server.counters()
    assert c["reclaimed_readers"] >= 1 and c["reclaimed_bytes"] > 0, c
    assert c["leased_bytes"] == 0 and c["attached"] == 0, c
    # The next loader reads everything.
    got = [x for batch, _ in sd.DataLoader(ds, batch_size=8, num_workers=2) for x in batch]
    assert len(got) == 64 and all(isinstance(x, bytes) for x in got)


def test_the_serving_rank_gone_fails_readers_clearly(tmp_path):
    script = (
        "import shoal, shoal.data as sd, sys, time\n"
        f"e = shoal.init({str(tmp_path / 'store-{rank}')!r}, rank=0, world_size=1)\n"
        "e.write('x', b'abc')\n"
        "s = sd.serve()\n"
        "print(s.name, s.token, flush=True)\n"
        "time.sleep(600)\n")
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        name, token = p.stdout.readline().split()
        with pytest.raises(shoal.PermissionDeniedError, match="token"):
            shoal._shoal.SharedReader.attach(name, "wrong")
        r = shoal._shoal.SharedReader.attach(name, token)
        assert bytes(r.read_batch(["x"])[0]) == b"abc"
        p.send_signal(signal.SIGKILL)
        p.wait()
        with pytest.raises(shoal.UnavailableError, match="exited"):
            r.read_batch(["x"])
    finally:
        p.kill()
        p.wait()


def test_image_folder_matches_torchvision(eng, tmp_path):
    from PIL import Image
    import torchvision
    root = tmp_path / "img"
    rng = np.random.default_rng(0)
    for c in ["bag", "coat", "shirt"]:
        (root / c).mkdir(parents=True)
        for i in range(7):
            Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(root / c / f"{i}.png")
    (root / "README").write_text("not a sample")
    to_tensor = torchvision.transforms.PILToTensor()
    ours = sd.ImageFolder(str(root), transform=to_tensor)
    ref = torchvision.datasets.ImageFolder(str(root), transform=to_tensor)
    assert ours.classes == ref.classes and ours.targets == ref.targets
    for i in range(len(ref)):
        x, y = ours[i]
        rx, ry = ref[i]
        assert y == ry and torch.equal(x, rx)
    batches = list(sd.DataLoader(ours, batch_size=5, num_workers=2))
    assert sum(len(m) for _, m in batches) == 21


# ---- the sampler (ranks simulated in one process) ----

def deal(n, world, seed=0, epoch=0, state=None, take=None, locality=None):
    """Samplers of every rank of a world; each takes `take` positions (all when None)."""
    out = []
    for r in range(world):
        s = sd.DistributedSampler(n, rank=r, world_size=world, seed=seed)
        if state is not None:
            s.load_state_dict(state)
        else:
            s.set_epoch(epoch)
        out.append(s)
    for s in out:
        s.advance(len(s.share()) if take is None else take)
    return out


def merged_state(samplers):
    st = samplers[0].state_dict()
    done = np.zeros(samplers[0].n, dtype=bool)
    for s in samplers:
        done |= s.consumed()
    st["consumed"] = torch.from_numpy(np.packbits(done))
    return st


def taken(samplers):
    return [int(i) for s in samplers for i in s.share()[:s.position] if not isinstance(i, sd.Padded)]


def test_sampler_is_seeded_exactly_once_and_padded_evenly():
    a = deal(1001, 3, seed=7)
    b = deal(1001, 3, seed=7)
    assert [s.share() for s in a] == [s.share() for s in b]
    assert [s.share() for s in deal(1001, 3, seed=8)] != [s.share() for s in a]
    assert [s.share() for s in deal(1001, 3, seed=7, epoch=1)] != [s.share() for s in a]
    assert sorted(taken(a)) == list(range(1001))
    assert {len(s.share()) for s in a} == {334}  # 1001 = 334 + 334 + 333 (+ 1 padded)
    assert sum(isinstance(i, sd.Padded) for s in a for i in s.share()) == 1


@pytest.mark.parametrize("sizes", [(3, 3), (4, 3), (3, 5), (4, 3, 5), (2, 1, 7)])
def test_resume_mid_epoch_on_other_world_sizes_keeps_exactly_once(sizes):
    n = 997
    seen = []
    state = None
    for k, w in enumerate(sizes):
        last = k == len(sizes) - 1
        ss = deal(n, w, seed=11, epoch=2, state=state, take=None if last else 37 + k * 11)
        seen += taken(ss)
        state = merged_state(ss)
        assert state["epoch"] == 2
    assert sorted(seen) == list(range(n)), "a sample repeated or skipped across the resumes"


def test_a_dataloader_counts_what_the_loop_took_not_what_workers_prefetched(eng, tmp_path):
    for i in range(64):
        eng.write(f"s/{i:02}", bytes([i]))
    ds = sd.ShoalDataset.from_prefix("s", collate_fn=as_list)
    sampler = sd.DistributedSampler(ds, rank=0, world_size=1)
    loader = sd.DataLoader(ds, batch_size=4, sampler=sampler, num_workers=2, prefetch_factor=4)
    it = iter(loader)
    first = [next(it) for _ in range(3)]
    time.sleep(0.5)  # workers have prefetched well past 12 samples by now
    assert sampler.position == 12
    state = sampler.state_dict()
    assert state["consumed_count"] == 12
    del it
    rest = sd.DistributedSampler(ds, rank=0, world_size=1)
    rest.load_state_dict(state)
    later = [x for b, _ in sd.DataLoader(ds, batch_size=4, sampler=rest) for x in b]
    before = [x for b, _ in first for x in b]
    assert sorted(before + later) == sorted(bytes([i]) for i in range(64))


def test_locality_puts_held_samples_first(eng, tmp_path):
    write_tree(str(tmp_path / "src"), 40)
    ds = sd.ShoalDataset.from_source(str(tmp_path / "src"), root="datasets/l", warm=True)
    assert sorted(ds.held_here()) == list(range(40)), "a warm-up on one member holds every sample"
    assert ds.loader_ranks() == [0] * 40
    s = sd.DistributedSampler(ds, rank=0, world_size=1, locality=True)
    assert sorted(s.share()) == list(range(40))
    with pytest.raises(ValueError):
        sd.DistributedSampler(10, locality=True)


class Owned:
    """A dataset whose samples' holders are given (what loader_ranks() says of a world)."""
    _cache = object()

    def __init__(self, owners):
        self.owners = owners

    def __len__(self):
        return len(self.owners)

    def loader_ranks(self):
        return self.owners


def locality_deal(owners, world, state=None, take=None):
    out = []
    for r in range(world):
        s = sd.DistributedSampler(Owned(owners), rank=r, world_size=world, seed=4, locality=True)
        if state is not None:
            s.load_state_dict(state)
        out.append(s)
    for s in out:
        s.advance(len(s.share()) if take is None else take)
    return out


def test_locality_deals_each_rank_what_its_member_holds_balanced_and_exactly_once():
    rng = np.random.default_rng(2)
    owners = list(rng.choice(4, size=1001, p=[0.4, 0.3, 0.2, 0.1]))
    ss = locality_deal(owners, 4)
    shares = [[i for i in s.share() if not isinstance(i, sd.Padded)] for s in ss]
    assert sorted(i for sh in shares for i in sh) == list(range(1001))
    assert {len(s.share()) for s in ss} == {251}
    assert sorted(len(sh) for sh in shares) == [250, 250, 250, 251]
    counts = [owners.count(r) for r in range(4)]
    for r, sh in enumerate(shares):
        local = sum(owners[i] == r for i in sh)
        assert local == min(counts[r], len(sh)), (r, local, counts[r])
        # The rank's share keeps the epoch's shuffled order.
        order = list(ss[r]._order())
        pos = [order.index(i) for i in sh]
        assert pos == sorted(pos)


def test_locality_resumes_exactly_once_on_another_world_size():
    owners4 = [i % 4 for i in range(500)]
    first = locality_deal(owners4, 4, take=40)
    seen = taken(first)
    owners3 = [(i * 7) % 3 for i in range(500)]  # the holders a world of 3 would report
    rest = locality_deal(owners3, 3, state=merged_state(first))
    seen += taken(rest)
    assert sorted(seen) == list(range(500))
