"""Checkpoint save/load of a PyTorch state dict across the ranks of one torchrun world, in one
run: shoal.torch against torch.save/torch.load to per-rank files on local disk (with fsync),
and against DCP's FileSystemWriter/Reader.

    python3 -m torch.distributed.run --nproc_per_node=4 --redirects=2 --tee=2 \
        benchmarks/torch_bench.py --total 1G --repeat 3

Each rank holds total/ranks bytes of float32 tensors (64 large tensors, plus 200 small ones and
a few Python values, like a model + optimizer state). Every figure is the median over
--repeat of the wall time from a barrier to the moment the slowest rank finished, converted to
MB/s of the whole state. Before every load the page cache is dropped (when running as root),
so every system reads from the disk: shoal uses O_DIRECT and never hits the page cache anyway.
shoal runs with --replicas (default 1: one copy on the writer's disk, the same durability as
the per-rank files; 2 adds a copy on another rank).

Rows: shoal-save (sync: durable and committed on return), shoal-async (time the caller is
blocked; total until the commit), torch-save+fsync, dcp-save (FileSystemWriter, sync_files);
shoal-load (into the existing tensors), torch-load, dcp-load. Ratios are against torch.save /
torch.load measured in the same run. --json prints one JSON object at the end.
"""
import argparse
import json
import os
import shutil
import statistics
import time

import torch
import torch.distributed as dist


def parse_size(s):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(s[:-1]) * units[s[-1].upper()]) if s[-1].upper() in units else int(s)


def make_state(nbytes, rank):
    g = torch.Generator().manual_seed(rank)
    small = [torch.randn(256, generator=g) for _ in range(200)]
    big_bytes = nbytes - sum(t.numel() * 4 for t in small)
    n = big_bytes // 4 // 64
    big = {f"layer{i}.weight": torch.randn(n, generator=g) for i in range(64)}
    return {"model": big, "optim": {"small": small, "lr": 0.1, "step": 1000}}


def zero_like(state):
    return {"model": {k: torch.empty_like(v) for k, v in state["model"].items()},
            "optim": {"small": [torch.empty_like(t) for t in state["optim"]["small"]],
                      "lr": 0.0, "step": 0}}


def drop_caches():
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def timed(fn, before=None):
    """Wall time from a barrier until the slowest rank finished `fn` (seconds)."""
    if before:
        before()
    dist.barrier()
    t0 = time.perf_counter()
    fn()
    dist.barrier()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--total", default="1G", help="state size of all ranks together")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    base = args.dir
    if base is None:
        box = [None]
        if rank == 0:
            import tempfile
            box[0] = tempfile.mkdtemp(prefix="shoal-torch-bench-", dir="/var/tmp")
        dist.broadcast_object_list(box)
        base = box[0]
    import shoal
    import shoal.dcp  # first: it makes torch 1.13's DCP import on Python 3.11
    import shoal.torch
    import torch.distributed._shard.checkpoint as dcp

    shoal.init(os.path.join(base, "store-{rank}"), node=f"node-{rank}", replicas=args.replicas)
    total = parse_size(args.total)
    state = make_state(total // world, rank)
    nbytes = sum(t.numel() * t.element_size()
                 for t in [*state["model"].values(), *state["optim"]["small"]])
    all_bytes = nbytes * world
    target = zero_like(state)
    files = os.path.join(base, "files")
    os.makedirs(files, exist_ok=True)
    can_drop = drop_caches() if rank == 0 else None  # reported: were loads cold?
    dropper = (lambda: drop_caches() if rank == 0 else None)
    pool = nbytes + (64 << 20)  # the async staging pool holds one whole save

    rows = {k: [] for k in ("shoal-save", "shoal-async", "shoal-async-total", "torch-save",
                            "dcp-save", "shoal-load", "torch-load", "dcp-load")}
    for i in range(args.repeat):
        tag = f"bench-{i}"
        rows["shoal-save"].append(timed(lambda: shoal.torch.save(state, tag, keep_last=1)))
        handles = []

        def async_save():
            handles.append(shoal.torch.save(state, tag, root="ckpt-async", async_save=True,
                                            keep_last=1, staging_bytes=pool))
        blocked = timed(async_save)
        t0 = time.perf_counter()
        handles[0].wait()
        waited = time.perf_counter() - t0
        rows["shoal-async"].append(blocked)
        waits = [None] * world
        dist.all_gather_object(waits, waited)
        rows["shoal-async-total"].append(blocked + max(waits))
        path = os.path.join(files, f"rank-{rank}-{i}.pt")

        def torch_save():
            with open(path, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
        rows["torch-save"].append(timed(torch_save))
        dpath = os.path.join(base, f"dcp-{i}")
        # Every rank's share under its own keys, written by every rank (see _every_rank_planner).
        dstate = {f"r{rank}.{k}": v for k, v in state["model"].items()}
        dstate.update({f"r{rank}.small.{j}": t for j, t in enumerate(state["optim"]["small"])})
        rows["dcp-save"].append(timed(lambda: dcp.save_state_dict(
            dstate, storage_writer=dcp.FileSystemWriter(dpath), planner=_every_rank_planner())))

        rows["shoal-load"].append(timed(lambda: shoal.torch.load("latest", target),
                                        before=dropper))
        for k, v in state["model"].items():
            assert torch.equal(target["model"][k], v)
        rows["torch-load"].append(timed(lambda: torch.load(path), before=dropper))
        dtarget = {k: torch.empty_like(v) for k, v in dstate.items()}
        rows["dcp-load"].append(timed(lambda: dcp.load_state_dict(
            dtarget, storage_reader=dcp.FileSystemReader(dpath)), before=dropper))
        dist.barrier()
        os.remove(path)
        if rank == 0:
            shutil.rmtree(dpath, ignore_errors=True)
        dist.barrier()

    med = {k: statistics.median(v) for k, v in rows.items()}
    mbps = {k: all_bytes / 1e6 / v for k, v in med.items()}
    result = {
        "ranks": world, "state_bytes": all_bytes, "repeat": args.repeat,
        "replicas": args.replicas, "page_cache_dropped": can_drop,
        "seconds": med, "mbps": mbps,
        "save_vs_torch": med["torch-save"] / med["shoal-save"],
        "async_blocked_vs_torch": med["torch-save"] / med["shoal-async"],
        "save_vs_dcp": med["dcp-save"] / med["shoal-save"],
        "load_vs_torch": med["torch-load"] / med["shoal-load"],
        "load_vs_dcp": med["dcp-load"] / med["shoal-load"],
    }
    if rank == 0:
        print(f"state dict: {all_bytes / (1 << 30):.2f} GiB over {world} ranks "
              f"({nbytes / (1 << 20):.0f} MiB each), median of {args.repeat}, shoal replicas "
              f"{args.replicas}")
        print(f"{'row':<20}{'seconds':>10}{'MB/s':>10}")
        for k in rows:
            print(f"{k:<20}{med[k]:>10.3f}{mbps[k]:>10.1f}")
        print(f"save: shoal {result['save_vs_torch']:.2f}x torch.save+fsync, "
              f"{result['save_vs_dcp']:.2f}x DCP; async blocked "
              f"{result['async_blocked_vs_torch']:.2f}x shorter than torch.save+fsync")
        print(f"load: shoal {result['load_vs_torch']:.2f}x torch.load, "
              f"{result['load_vs_dcp']:.2f}x DCP")
        if args.json:
            print(json.dumps(result))
    shoal.shutdown()
    if rank == 0 and args.dir is None:
        shutil.rmtree(base, ignore_errors=True)
    dist.destroy_process_group()


def _every_rank_planner():
    """torch 1.13's DefaultSavePlanner writes plain tensors from the coordinator only (it assumes
    they are replicated); here every rank holds its own share under its own keys, so every rank
    writes its items, as it does with shoal and torch.save."""
    from torch.distributed._shard.checkpoint.default_planner import (
        DefaultSavePlanner, create_default_local_save_plan)

    class EveryRankWrites(DefaultSavePlanner):
        def create_local_plan(self):
            self.plan = create_default_local_save_plan(self.state_dict, True)
            return self.plan
    return EveryRankWrites()


if __name__ == "__main__":
    main()
