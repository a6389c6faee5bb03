"""Module-level functions for shoal.data tests (picklable into spawned DataLoader workers)."""
import os
import signal

import shoal.data


def content(name):
    """Deterministic content of sample `name`: 0 .. ~40 KiB."""
    n = (sum(name.encode()) * 131) % 40000 + (len(name) % 2)
    return bytes((i * 7 + len(name)) & 0xFF for i in range(n))


def write_tree(root, count, classes=3):
    names = []
    for i in range(count):
        n = f"c{i % classes}/s{i:05}.bin"
        os.makedirs(os.path.join(root, os.path.dirname(n)), exist_ok=True)
        with open(os.path.join(root, n), "wb") as f:
            f.write(content(n))
        names.append(n)
    return sorted(names)


def in_pool(t):
    """(tensor's bytes, whether they lie in this process's mapping of the shared pool, pid)."""
    lo, size = next(iter(r for k, r in shoal.data._readers.items() if k[1] == os.getpid())).pool_range
    ptr = t.data_ptr() if t.numel() else lo
    return bytes(t.numpy().tobytes()), lo <= ptr < lo + size, os.getpid()


def as_list(batch):
    return batch


def kill_once(t, marker):
    """Kills this worker (SIGKILL, its batch's buffers leased) the first time it runs while
    `marker` exists."""
    try:
        os.unlink(marker)
    except FileNotFoundError:
        return bytes(t.numpy().tobytes())
    os.kill(os.getpid(), signal.SIGKILL)
    return b""


class KillOnce:
    def __init__(self, marker):
        self.marker = marker

    def __call__(self, t):
        return kill_once(t, self.marker)
