"""One rank of the multi-process Python tests (started by torch.distributed.run from
test_world.py). Usage: world_worker.py SCENARIO DIR. Asserts; a failure exits non-zero."""
import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal  # noqa: E402
import shoal.torch  # noqa: E402
from state_dicts import assert_same, mixed_state  # noqa: E402


def roundtrip(d):
    rank, world = dist.get_rank(), dist.get_world_size()
    eng = shoal.init(os.path.join(d, "store-{rank}"), node=f"node-{dist.get_rank()}")
    assert eng.rank == rank and eng.world_size == world
    sd = mixed_state(rank)
    shoal.torch.save(sd, "sync-1", metadata={"step": 1})
    # Fresh load: new tensors, same values, shapes, dtypes.
    assert_same(shoal.torch.load("sync-1"), sd)
    # In place: the caller's tensors are filled and returned, including a non-contiguous one.
    target = mixed_state(rank, fill=0)
    out = shoal.torch.load("latest", target)
    assert out["model"]["w"] is target["model"]["w"]
    assert out["view"] is target["view"]
    assert_same(out, sd)
    # Async: returns after the copy; the caller may change its tensors at once.
    handle = shoal.torch.save(sd, "async-2", async_save=True, keep_last=2)
    expect = mixed_state(rank)
    for t in sd["model"].values():
        if t.dtype.is_floating_point:
            t.add_(1000)
    handle.wait()
    assert_same(shoal.torch.load("async-2"), expect)
    # Retention: keep_last=2 after a third save.
    shoal.torch.save(expect, "async-3", async_save=True, keep_last=2).wait()
    assert shoal.torch.tags() == ["async-2", "async-3"], shoal.torch.tags()
    # Every rank's part is readable from any rank.
    other = (rank + 1) % world
    assert_same(shoal.torch.load("async-3", shard=other), mixed_state(other))
    # A committed tag cannot be saved again: FileExistsError on every rank.
    try:
        shoal.torch.save(sd, "async-3")
        raise AssertionError("saving a committed tag succeeded")
    except FileExistsError as e:
        assert isinstance(e, shoal.AlreadyExistsError), type(e)
    # Shape mismatch when loading in place is refused, naming the tensor.
    bad = mixed_state(rank)
    bad["model"]["w"] = torch.zeros(3)
    try:
        shoal.torch.load("async-3", bad)
        raise AssertionError("a mismatched target was accepted")
    except ValueError as e:
        assert "model.w" in str(e), e
    # local_first: a replica of every chunk on this rank's own member (members are in rank
    # order here, one store per rank); without it chunks rotate over the members, so with 2
    # replicas over 3 members some chunks hold none here.
    for i in range(4):
        with shoal.open(f"lf/{rank}/{i}", "wb", chunk_size=64 << 10, local_first=True) as f:
            f.write(bytes([rank]) * (256 << 10))
        assert all(rank in holders for holders in eng.locate(f"lf/{rank}/{i}"))
    eng.create(f"rot/{rank}", chunk_size=64 << 10)
    eng.write_at(f"rot/{rank}", 0, b"r" * (64 << 10) * 3 * world)
    eng.seal(f"rot/{rank}")
    assert any(rank not in h for h in eng.locate(f"rot/{rank}"))
    # all_gather: every rank's bytes in rank order; repair from one rank finds nothing lost.
    got = eng.all_gather(f"hello from {rank}".encode())
    assert got == [f"hello from {r}".encode() for r in range(world)], got
    if rank == 0:
        rep = eng.repair()
        assert rep["lost"] == [] and rep["objects"] >= 4 * world and rep["chunks_copied"] == 0, rep
    eng.barrier()
    assert eng.wait_for_repair(5)["lost"] == []
    shoal.shutdown()
    print(f"rank {rank}: roundtrip ok", flush=True)


def reload_other_world(d):
    """A later world with a different size: shoal.torch.load needs shard=."""
    rank = dist.get_rank()
    shoal.init(os.path.join(d, "store-{rank}"), node=f"node-{dist.get_rank()}")
    try:
        shoal.torch.load("async-3")
        raise AssertionError("a different world size loaded without shard=")
    except ValueError as e:
        assert "saved by" in str(e), e
    assert_same(shoal.torch.load("async-3", shard=rank), mixed_state(rank))
    shoal.shutdown()
    print(f"rank {rank}: reload ok", flush=True)


def _sharded(world, rows, cols):
    from torch.distributed._shard import sharded_tensor
    from torch.distributed._shard.sharding_spec import ChunkShardingSpec
    spec = ChunkShardingSpec(dim=0, placements=[f"rank:{r}/cpu" for r in range(world)])
    return sharded_tensor.zeros(spec, rows, cols, dtype=torch.float64)


def _full(rows, cols):
    return torch.arange(rows * cols, dtype=torch.float64).reshape(rows, cols) * 0.5 - 7


def dcp(d, mode):
    from shoal.dcp import ShoalReader, ShoalWriter  # first: it makes torch 1.13's DCP import
    import torch.distributed._shard.checkpoint as dcp_api
    rank, world = dist.get_rank(), dist.get_world_size()
    shoal.init(os.path.join(d, "store-{rank}"), node=f"node-{dist.get_rank()}")
    rows, cols = 13, 5
    full = _full(rows, cols)
    st = _sharded(world, rows, cols)
    for shard in st.local_shards():
        o = shard.metadata.shard_offsets[0]
        n = shard.metadata.shard_sizes[0]
        if mode == "save":
            shard.tensor.copy_(full[o:o + n])
    plain = torch.arange(10, dtype=torch.int32) if mode == "save" else torch.zeros(10, dtype=torch.int32)
    sd = {"sharded": st, "plain": plain, "view": (torch.arange(30.).reshape(5, 6)[:, 2]
                                                   if mode == "save" else torch.zeros(5)),
          "empty": torch.empty(0, 4)}
    if mode == "save":
        w = ShoalWriter("dcp-1")
        dcp_api.save_state_dict(sd, storage_writer=w)
        w.wait()
        assert shoal.torch.latest() == "dcp-1"
    else:
        dcp_api.load_state_dict(sd, storage_reader=ShoalReader("latest"))
        for shard in st.local_shards():
            o = shard.metadata.shard_offsets[0]
            n = shard.metadata.shard_sizes[0]
            assert torch.equal(shard.tensor, full[o:o + n]), (rank, o, n)
        assert torch.equal(sd["plain"], torch.arange(10, dtype=torch.int32))
        assert torch.equal(sd["view"], torch.arange(30.).reshape(5, 6)[:, 2])
    shoal.shutdown()
    print(f"rank {rank}/{world}: dcp {mode} ok", flush=True)


if __name__ == "__main__":
    scenario, d = sys.argv[1], sys.argv[2]
    dist.init_process_group("gloo")
    if scenario == "roundtrip":
        roundtrip(d)
    elif scenario == "reload":
        reload_other_world(d)
    elif scenario in ("dcp-save", "dcp-load"):
        dcp(d, scenario[4:])
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    dist.destroy_process_group()
