"""shoal: the storage engine every rank of a training job links in.

    import shoal
    engine = shoal.init(store="/nvme/shoal/{rank}")   # torchrun's environment, or explicit
    engine.write("data/a.bin", b"...")
    buf = bytearray(engine.stat("data/a.bin").size)
    engine.readinto("data/a.bin", buf)                # into caller memory, no extra copy
    with shoal.open("ckpt/model.pt", "wb") as f:      # file-like: torch.save / torch.load
        torch.save(model.state_dict(), f)

    import shoal.torch
    shoal.torch.save(state_dict, "step-100")          # collective, atomic
    shoal.torch.load("latest", state_dict)            # in place

Errors are subclasses of shoal.Error and of the standard class that fits (FileNotFoundError,
FileExistsError, ValueError, OSError, ...); see docs/python.md.
"""
from . import _shoal
from ._shoal import (  # noqa: F401  (re-exported API)
    AlreadyExistsError,
    BlobInfo,
    CorruptionError,
    DatasetCache,
    DirEntry,
    Engine,
    Error,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    Manifest,
    NoSpaceError,
    NotFoundError,
    ObjectInfo,
    PermissionDeniedError,
    StorageIOError,
    TimeoutError,
    UnavailableError,
)
from ._shoal import option_names  # noqa: F401
from ._file import ObjectReader, ObjectWriter, open  # noqa: F401
from ._launch import engine, init, shutdown  # noqa: F401

# Engine.open(path, mode) as a method too.
Engine.open = lambda self, path, mode="rb", **kw: open(path, mode, engine=self, **kw)

__all__ = [
    "init", "engine", "shutdown", "open", "Engine", "DatasetCache", "ObjectReader", "ObjectWriter",
    "Error",
    "NotFoundError", "AlreadyExistsError", "InvalidArgumentError", "CorruptionError",
    "StorageIOError", "NoSpaceError", "UnavailableError", "TimeoutError",
    "PermissionDeniedError", "FailedPreconditionError", "InternalError",
]
