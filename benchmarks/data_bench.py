"""DataLoader samples/s through shoal.data against an ImageFolder-style Dataset reading the same
files from local ext4, in the same run (issue 15).

    python3 benchmarks/data_bench.py --ranks 2 --sample-size 16K --samples 20000

starts a torchrun world of --ranks on this machine (the bench itself, in rank mode). Every rank
runs DataLoaders of --workers workers (default 4) and batches of --batch (64) over its share of
one epoch (torch's DistributedSampler for the files, shoal.data.DistributedSampler for shoal),
each sample a uint8 tensor, collated by torch's default_collate:

  files-cold / files-warm   a Dataset that reads each sample's file (np.fromfile) from a tree
                            on local ext4: page cache dropped before the epoch / left warm
  objects-cold              ShoalDataset.from_prefix over the same bytes stored as shoal objects
                            (O_DIRECT: never in the page cache; cold and warm are the same)
  cache-cold                ShoalDataset.from_source over the tree, after a warm-up: every
                            sample read from the rank's member (page cache dropped)
  cache-warm                the same with the dataset cache's memory tier holding the samples
  cache-local-cold          cache-cold with DistributedSampler(locality=True): each rank is
                            dealt the samples its member holds (balanced)
  cache-local-warm          cache-warm with locality=True
  cache-local-prefetch-cold locality=True and DataLoader(prefetch_remote=8): the next 8
                            batches' remote samples read ahead into a 64 MiB memory tier

Each row: the median over --repeat epochs of samples/s over the world (samples / the slowest
rank's epoch time), its ratio to the files row of the same temperature, and the machine's
CPU-seconds per 1,000 samples (all processes, from /proc/stat). Needs root to drop the page cache.
--json prints one JSON object at the end.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.distributed as dist


def parse_size(s):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(s[:-1]) * units[s[-1].upper()]) if s[-1].upper() in units else int(s)


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def machine_cpu_seconds():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")  # user nice sys irq soft


class Files(torch.utils.data.Dataset):
    """ImageFolder-style: a list of files, each read whole."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return torch.from_numpy(np.fromfile(self.paths[i], dtype=np.uint8))


def epoch(loader, sampler, e, cold, masked):
    dist.barrier()
    if cold and dist.get_rank() == 0:
        drop_caches()
    dist.barrier()
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(e)
    cpu0 = machine_cpu_seconds()
    t0 = time.perf_counter()
    n = 0
    for b in loader:
        n += int(b[1].sum()) if masked else len(b)
    t = torch.tensor([time.perf_counter() - t0, n], dtype=torch.float64)
    dist.all_reduce(t[1:2])
    dist.all_reduce(t[0:1], op=dist.ReduceOp.MAX)
    cpu = machine_cpu_seconds() - cpu0
    return t[1].item() / t[0].item(), cpu / t[1].item() * 1000


def rank_main(a):
    import shoal
    import shoal.data as sd
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    shoal.init(os.path.join(a.dir, "store-{rank}"), node=f"node-{rank}")
    eng = shoal.engine()
    names = sorted(os.path.relpath(os.path.join(r, f), a.tree)
                   for r, _, fs in os.walk(a.tree) for f in fs)
    paths = [os.path.join(a.tree, n) for n in names]
    # The same bytes as shoal objects (each rank stores its part).
    mine = [n for i, n in enumerate(names) if i % dist.get_world_size() == rank]
    for k in range(0, len(mine), 2048):
        part = mine[k:k + 2048]
        errs = eng.write_many([(f"bench/{n}", open(os.path.join(a.tree, n), "rb").read())
                               for n in part], local_first=True)
        assert all(e is None for e in errs), errs
    eng.barrier()
    kw = dict(num_workers=a.workers, persistent_workers=a.workers > 0)
    rows = {}

    def run(name, loader, sampler, cold, masked):
        rates, cpus = [], []
        epoch(loader, sampler, 100, cold, masked)  # workers started, first touches
        for e in range(a.repeat):
            r, c = epoch(loader, sampler, e, cold, masked)
            rates.append(r)
            cpus.append(c)
        rows[name] = (statistics.median(rates), statistics.median(cpus))

    files = Files(paths)
    fs = torch.utils.data.distributed.DistributedSampler(files, seed=0)
    fl = torch.utils.data.DataLoader(files, batch_size=a.batch, sampler=fs, **kw)
    run("files-cold", fl, fs, True, False)
    run("files-warm", fl, fs, False, False)
    del fl

    def shoal_row(name, ds, cold, locality=False, prefetch_remote=0):
        # A seed per row: no row reads the epochs an earlier row left in a memory tier.
        s = sd.DistributedSampler(ds, seed=len(rows) + 1, locality=locality)
        loader = sd.DataLoader(ds, batch_size=a.batch, sampler=s, prefetch_remote=prefetch_remote,
                               **kw)
        run(name, loader, s, cold, True)

    def cache(memory=0, warm=False, reopen=True):
        # A fresh engine each time (its memory tier empty), the cache over the kept index.
        if reopen:
            shoal.shutdown()
            dist.barrier()
            shoal.init(os.path.join(a.dir, "store-{rank}"), node=f"node-{rank}")
        return sd.ShoalDataset.from_source(a.tree, root="datasets/bench", output="tensor",
                                           warm=warm,
                                           cache_options={"memory_bytes": memory} if memory else None)

    shoal_row("objects-cold", sd.ShoalDataset.from_prefix("bench", output="tensor"), True)
    # A memory tier that holds the rank's share twice: warm epochs are memcpys.
    ds = cache((a.samples * a.sample_size) // dist.get_world_size() * 2 + (64 << 20), warm=True,
               reopen=False)
    shoal_row("cache-warm", ds, False)
    assert ds._cache.stats()["memory_hits"] > 0
    shoal_row("cache-local-warm", ds, False, locality=True)
    ds = cache()  # no memory tier: every read from a member's disk
    shoal_row("cache-cold", ds, True)
    shoal_row("cache-local-cold", ds, True, locality=True)
    # Locality plus the remote samples of the next 8 batches read ahead into a memory tier too
    # small to keep an epoch (64 MiB).
    shoal_row("cache-local-prefetch-cold", cache(64 << 20), True, locality=True, prefetch_remote=8)
    shoal.shutdown()
    if rank == 0:
        print("ROWS " + json.dumps(rows), flush=True)
    dist.destroy_process_group()


def make_tree(tree, n, size):
    done = tree + ".complete"  # beside the tree: every file in it is a sample
    if os.path.exists(done) and open(done).read() == f"{n} {size}":
        return
    shutil.rmtree(tree, ignore_errors=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        d = os.path.join(tree, f"c{i % 10}")
        os.makedirs(d, exist_ok=True)
        rng.integers(0, 255, size, dtype=np.uint8).tofile(os.path.join(d, f"{i:06}.bin"))
    open(done, "w").write(f"{n} {size}")
    os.sync()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--sample-size", default="16K")
    ap.add_argument("--samples", type=int, default=0, help="default: 320 MiB of samples")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default="/var/tmp/shoal-data-bench")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rank-mode", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tree", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.sample_size = parse_size(a.sample_size) if isinstance(a.sample_size, str) else a.sample_size
    if not a.samples:
        a.samples = (320 << 20) // a.sample_size
    if a.rank_mode:
        rank_main(a)
        return
    a.tree = os.path.join(a.dir, f"tree-{a.samples}x{a.sample_size}")
    make_tree(a.tree, a.samples, a.sample_size)
    for d in os.listdir(a.dir):
        if d.startswith("store-"):
            shutil.rmtree(os.path.join(a.dir, d))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", SHOAL_LOG=os.environ.get("SHOAL_LOG", "warn"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--redirects=2",
           "--tee=2", f"--nproc_per_node={a.ranks}", "--rdzv_backend=c10d",
           f"--rdzv_endpoint=127.0.0.1:{port}", "--max_restarts=0", os.path.abspath(__file__),
           "--rank-mode", "--tree", a.tree, "--dir", a.dir, "--samples", str(a.samples),
           "--sample-size", str(a.sample_size), "--workers", str(a.workers),
           "--batch", str(a.batch), "--repeat", str(a.repeat)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    line = [l for l in p.stdout.splitlines() if "ROWS " in l]
    if p.returncode != 0 or not line:
        sys.stderr.write(p.stdout[-8000:])
        sys.exit(1)
    rows = json.loads(line[-1].split("ROWS ", 1)[1])
    out = {"ranks": a.ranks, "sample_size": a.sample_size, "samples": a.samples,
           "workers": a.workers, "batch": a.batch, "repeat": a.repeat, "rows": []}
    print(f"# {a.ranks} ranks x {a.workers} workers, {a.samples} samples of {a.sample_size} B, "
          f"batch {a.batch}, median of {a.repeat} epochs")
    print(f"{'row':18} {'samples/s':>10} {'x files':>8} {'cpu-s/1k':>9}")
    for name, (rate, cpu) in rows.items():
        base = rows["files-warm" if "warm" in name else "files-cold"][0]
        ratio = rate / base
        out["rows"].append({"row": name, "samples_per_s": round(rate, 1),
                            "ratio_vs_files": round(ratio, 3), "cpu_s_per_1k": round(cpu, 3)})
        print(f"{name:18} {rate:10.0f} {ratio:8.3f} {cpu:9.3f}")
    if a.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
