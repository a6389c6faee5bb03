"""pytest setup for shoal's Python tests: the built package comes from PYTHONPATH (ctest sets it
to <build>/python); multi-rank worlds are started with python3 -m torch.distributed.run."""
import os
import socket
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(nproc, script, *args, timeout=300, check=True, env=None):
    """Runs `script` on `nproc` ranks of one torchrun world on this machine; returns the
    CompletedProcess. Every rank's output is in stdout."""
    # --redirects/--tee 2: torch 1.13's launcher fails on Python 3.11 with its default "0"
    # (Std.from_str("0") finds no flag member); 2 keeps stdout on the console and tees stderr.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--redirects=2",
           "--tee=2",
           f"--nproc_per_node={nproc}", "--rdzv_backend=c10d",
           f"--rdzv_endpoint=127.0.0.1:{free_port()}", "--max_restarts=0",
           os.path.join(HERE, script), *map(str, args)]
    e = dict(os.environ)
    e.setdefault("SHOAL_LOG", "warn")
    e["OMP_NUM_THREADS"] = "1"
    if env:
        e.update(env)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, env=e)
    if check and p.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout[-6000:]}")
    return p


@pytest.fixture
def run_world():
    return torchrun
