"""Deterministic state dicts of mixed dtypes and shapes for the Python tests."""
import torch


def mixed_state(rank, fill=None):
    """A training-like state of `rank`: model tensors of many dtypes (0-d, empty, 3-d), a
    non-contiguous view, an optimizer-like nested structure, and plain Python values. With
    `fill`, the same structure with every tensor set to that value (an in-place target)."""
    g = torch.Generator().manual_seed(1000 + rank)

    def r(*shape, dtype=torch.float32):
        t = torch.randn(*shape, generator=g) * 100
        return t.to(dtype)

    model = {
        "w": r(64, 33),
        "b": r(33, dtype=torch.float64),
        "h": r(7, 3, 2, dtype=torch.float16),
        "bf": r(17, dtype=torch.bfloat16),
        "i8": r(9, dtype=torch.int8),
        "u8": r(9, dtype=torch.uint8),
        "i32": r(4, 4, dtype=torch.int32),
        "i64": torch.arange(5, dtype=torch.int64) * (rank + 1),
        "mask": r(11) > 0,
        "cplx": torch.complex(r(6), r(6)),
        "scalar": torch.tensor(3.25 + rank),
        "empty": torch.empty(0, 8),
        "big": r(300_000),  # > 1 MiB: read straight into place
    }
    state = {
        "model": model,
        "view": r(10, 10)[:, 3],  # non-contiguous
        "optim": {"state": {0: {"momentum": r(64, 33), "step": 12}},
                  "param_groups": [{"lr": 0.1, "params": [0]}]},
        "step": 100 + rank,
        "name": f"rank-{rank}",
        "list": [r(2), (r(3), "t")],
    }
    if fill is not None:
        _fill(state, fill)
    return state


def _fill(obj, v):
    if isinstance(obj, torch.Tensor):
        obj.fill_(v)
    elif isinstance(obj, dict):
        for x in obj.values():
            _fill(x, v)
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            _fill(x, v)


def assert_same(a, b, path="state"):
    assert type(a) is type(b) or (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)), \
        f"{path}: {type(a)} vs {type(b)}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype, f"{path}: {a.dtype} vs {b.dtype}"
        assert a.shape == b.shape, f"{path}: {a.shape} vs {b.shape}"
        assert torch.equal(a, b), f"{path}: values differ"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{path}: keys {a.keys()} vs {b.keys()}"
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: lengths"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}.{i}")
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"
