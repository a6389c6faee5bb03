"""Python at the C++ speed (issue 13): the Python module against shoal-bench moving the same
bytes in the same run, alternating, --repeat times; medians and the median of the per-pair
ratios (Python / C++ rate, >= 0.9 wanted).

    # one member: shoal.open write and read of one object against `shoal-bench write` / `read`
    /usr/bin/python3 benchmarks/python_bench.py io --size 2G --repeat 3

    # a world: shoal.torch.save / load of the torch bench's state (--total over all ranks)
    # against `shoal-bench ckpt --ranks N` with the same bytes per rank (run by rank 0 while
    # the others wait; its own world of N processes)
    /usr/bin/python3 -m torch.distributed.run --nproc_per_node=4 --redirects=2 --tee=2 \\
        benchmarks/python_bench.py torch --total 1G --repeat 3

Both sides use the engine's defaults (4 MiB chunks, queue depth 16, replicas 1, no scrub),
stores in the same file system (--dir, default a temporary directory under /var/tmp), and the
same calls: io writes 4 MiB per call from one buffer, a stamp in every 4 KiB block, then seals
(shoal-bench write: the same), reads 256 MiB per call (shoal-bench read: --read-call 256M); in
io mode each run of either side is a process of its own (engine open, one write or read, close).
Every run starts after a sync and a --settle pause. Environment: SHOAL_BENCH (the shoal-bench binary;
default build/benchmarks/shoal-bench); PYTHONPATH must find the module (build/python).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_size(s):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(s[:-1]) * units[s[-1].upper()]) if s[-1].upper() in units else int(s)


def bench_binary():
    return os.environ.get("SHOAL_BENCH", os.path.join(HERE, "..", "build", "benchmarks",
                                                      "shoal-bench"))


def cpp_rows(args):
    """Runs shoal-bench with `args` (+ --json) and returns its rows by mode."""
    # Without the launcher's variables: under torchrun they would make it one rank of ours.
    launch = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK",
              "MASTER_ADDR", "MASTER_PORT", "SHOAL_RANK", "SHOAL_WORLD_SIZE")
    env = {k: v for k, v in os.environ.items()
           if k not in launch and not k.startswith(("OMPI_", "PMIX_", "TORCHELASTIC_"))}
    env["SHOAL_LOG"] = "error"
    p = subprocess.run([bench_binary(), *args, "--json"], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"shoal-bench {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    out = p.stdout
    return {r["mode"]: r for r in (json.loads(line) for line in out.splitlines()
                                   if line.startswith("{"))}


def summary(name, py, cpp):
    ratios = [p / c for p, c in zip(py, cpp)]
    return {"row": name, "python_mbps": statistics.median(py), "cpp_mbps": statistics.median(cpp),
            "ratio": statistics.median(ratios), "ratios": ratios, "python_runs": py,
            "cpp_runs": cpp}


def print_rows(rows, header):
    print(header)
    print(f"{'row':<14}{'python MB/s':>13}{'C++ MB/s':>11}{'ratio':>8}   per run")
    for r in rows:
        runs = " ".join(f"{x:.3f}" for x in r["ratios"])
        print(f"{r['row']:<14}{r['python_mbps']:>13.1f}{r['cpp_mbps']:>11.1f}{r['ratio']:>8.3f}"
              f"   {runs}")


def io_op(a):
    """One Python run in a process of its own, as each shoal-bench run is: open the engine,
    write (or read) the object once, print MB/s."""
    import shoal
    size = parse_size(a.size)
    piece, call = 4 << 20, min(256 << 20, size)
    eng = shoal.init(a.store, rank=0, world_size=1, node="py", scrub_rate_mib_s=0)
    path = "bench/py.bin"
    if a.op == "write":
        buf = bytearray(os.urandom(piece))
        mv = memoryview(buf)
        words = mv.cast("Q")
        try:
            eng.remove(path)  # as shoal-bench write removes its object before timing
        except FileNotFoundError:
            pass
        t0 = time.perf_counter()
        with shoal.open(path, "wb", size=size) as f:
            for off in range(0, size, piece):
                # A stamp in every 4 KiB block, as shoal-bench's StampBlocks: no two blocks
                # written are equal (with one stamp per 4 MiB piece this VM's disk wrote 8-15%
                # slower).
                for w in range(0, len(words), 512):
                    words[w] = off + w
                f.write(mv[:min(piece, size - off)])
    else:
        dst = bytearray(call)
        t0 = time.perf_counter()
        with shoal.open(path, "rb") as f:
            got = 0
            while got < size:
                n = f.readinto(dst)
                if not n:
                    raise RuntimeError("short read")
                got += n
    print(json.dumps({"mbps": size / 1e6 / (time.perf_counter() - t0)}))
    shoal.shutdown(barrier=False)


def run_io(a):
    size = parse_size(a.size)
    base = a.dir or tempfile.mkdtemp(prefix="shoal-py-bench-", dir="/var/tmp")
    py_w, py_r, cpp_w, cpp_r = [], [], [], []
    # Both sides alike: a process per run (engine open, one write or read of the object, close),
    # the C++ one the engine alone (no raw baseline in the same process), after the same pause.
    common = ["--size", a.size, "--repeat", "1", "--raw-shape", "none", "--scrub-mib-s", "0",
              "--dir", os.path.join(base, "cpp")]

    def settle():
        os.sync()  # this VM's disk is slower in the seconds after a burst of writes: without
        time.sleep(a.settle)  # a pause, whichever side went second looked 15-30% faster

    def py(op):
        settle()
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "io-op", op, "--size",
                            a.size, "--store", os.path.join(base, "py-store")],
                           capture_output=True, text=True,
                           env={**os.environ, "SHOAL_LOG": "error"})
        if p.returncode != 0:
            raise RuntimeError(f"python {op} failed: {p.stderr}")
        return json.loads(p.stdout.strip().splitlines()[-1])["mbps"]

    def cpp(op):
        settle()
        return cpp_rows([op, *common])[op]["mbps"]

    for i in range(a.repeat):  # alternate which side goes first
        first, second = (py, cpp) if i % 2 == 0 else (cpp, py)
        for op, pys, cpps in (("write", py_w, cpp_w), ("read", py_r, cpp_r)):
            x = first(op)
            y = second(op)
            pys.append(x if first is py else y)
            cpps.append(y if first is py else x)
    rows = [summary("write", py_w, cpp_w), summary("read", py_r, cpp_r)]
    if a.dir is None:
        shutil.rmtree(base, ignore_errors=True)
    print_rows(rows, f"shoal.open vs shoal-bench, one member, {size / (1 << 30):.2f} GiB object, "
                     f"{a.repeat} alternations")
    if a.json:
        print(json.dumps({"mode": "io", "bytes": size, "rows": rows}))
    return rows


def run_torch(a):
    import torch.distributed as dist
    sys.path.insert(0, HERE)
    from torch_bench import make_state, zero_like  # the torch bench's state
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    box = [a.dir]
    if rank == 0 and a.dir is None:
        box[0] = tempfile.mkdtemp(prefix="shoal-py-bench-", dir="/var/tmp")
    dist.broadcast_object_list(box)
    base = box[0]
    import shoal
    import shoal.torch
    shoal.init(os.path.join(base, "store-{rank}"), node=f"node-{rank}", replicas=1,
               scrub_rate_mib_s=0)
    state = make_state(parse_size(a.total) // world, rank)
    per = sum(t.numel() * t.element_size()
              for t in [*state["model"].values(), *state["optim"]["small"]])
    target = zero_like(state)
    for t in [*target["model"].values(), *target["optim"]["small"]]:
        t.zero_()  # existing tensors, as a training loop's (their pages already there)

    def timed(fn):
        os.sync()
        time.sleep(a.settle)
        dist.barrier()
        t0 = time.perf_counter()
        fn()
        took = [None] * world
        dist.all_gather_object(took, time.perf_counter() - t0)
        return max(took)  # the slowest rank, as shoal-bench's world rows

    py_s, py_l, cpp_s, cpp_l = [], [], [], []
    cpp = None

    def cpp_run():
        box = [None]
        if rank == 0:  # its own world of `world` processes; the others wait here
            # Fresh stores each time, as shoal-bench's own temporary directory: over the last
            # run's stores its keep_last=1 save would remove that run's tag inside the timing.
            shutil.rmtree(os.path.join(base, "cpp"), ignore_errors=True)
            os.sync()
            time.sleep(a.settle)
            rows = cpp_rows(["ckpt", "--ranks", str(world), "--size", str(per // 4096 * 4096),
                             "--repeat", "1", "--raw-shape", "engine",
                             "--dir", os.path.join(base, "cpp")])
            box[0] = (rows["ckpt-save"]["mbps"], rows["ckpt-restore"]["mbps"])
        dist.broadcast_object_list(box)
        return box[0]

    # One round untimed: the first save and load of a process set up what every later one
    # reuses (the tensor table, the checkpointer). The C++ side's pre-faults its memory.
    shoal.torch.save(state, "warm-up")
    shoal.torch.load("latest", target)
    for i in range(a.repeat):
        if i % 2 == 1:
            cpp = cpp_run()
        secs = timed(lambda: shoal.torch.save(state, f"py-{i}"))
        py_s.append(per * world / 1e6 / secs)
        secs = timed(lambda: shoal.torch.load("latest", target))
        py_l.append(per * world / 1e6 / secs)
        # The previous tag goes outside the timed calls (keep_last would remove it inside the
        # next save, which shoal-bench ckpt's one save per world never pays).
        if rank == 0:
            shoal.torch.checkpointer().remove(f"py-{i - 1}" if i else "warm-up")
        dist.barrier()
        if i % 2 == 0:
            cpp = cpp_run()
        cpp_s.append(cpp[0])
        cpp_l.append(cpp[1])
    for k, v in state["model"].items():
        assert target["model"][k].equal(v), k
    rows = [summary("torch-save", py_s, cpp_s), summary("torch-load", py_l, cpp_l)]
    shoal.shutdown()
    if rank == 0:
        print_rows(rows, f"shoal.torch save/load vs shoal-bench ckpt, {world} ranks, "
                         f"{per * world / (1 << 30):.2f} GiB state ({per >> 20} MiB per rank), "
                         f"{a.repeat} alternations")
        if a.json:
            print(json.dumps({"mode": "torch", "bytes": per * world, "rows": rows}))
        if a.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    io_p = sub.add_parser("io")
    io_p.add_argument("--size", default="2G")
    op_p = sub.add_parser("io-op", help="one Python run of the io mode (internal)")
    op_p.add_argument("op", choices=["write", "read"])
    op_p.add_argument("--size", default="2G")
    op_p.add_argument("--store", required=True)
    t_p = sub.add_parser("torch")
    t_p.add_argument("--total", default="1G", help="state size of all ranks together")
    for p in (io_p, t_p):
        p.add_argument("--repeat", type=int, default=4,
                       help="alternations (even: each side goes first equally often)")
        p.add_argument("--settle", type=float, default=3.0,
                       help="seconds of pause (after a sync) before every measured run")
        p.add_argument("--dir", default=None)
        p.add_argument("--json", action="store_true")
    a = ap.parse_args()
    {"io": run_io, "io-op": io_op, "torch": run_torch}[a.mode](a)


if __name__ == "__main__":
    main()
