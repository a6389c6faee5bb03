"""Binary file-like objects over shoal objects, so torch.save(obj, f) / torch.load(f) (and
anything else that takes a binary file) work on shoal.

    with shoal.open("models/final.pt", "wb") as f:   # created on open, sealed on close
        torch.save(model.state_dict(), f)
    with shoal.open("models/final.pt") as f:         # "rb": read/readinto/seek/tell
        sd = torch.load(f)

Objects are immutable: "wb" on an existing name raises FileExistsError (shoal.AlreadyExistsError);
nothing is visible to readers until close() seals the object, and leaving a `with` block by an
exception (or dropping an unclosed writer) aborts it, so a half-written object is never sealed.
"""
import io
import os

from . import _shoal
from ._launch import engine as _default_engine

_WRITE_BUFFER = 4 << 20


class ObjectReader(io.RawIOBase):
    """Reads a sealed object; seekable. Wrapped in an io.BufferedReader by shoal.open."""

    def __init__(self, eng, path):
        super().__init__()
        self._engine = eng
        self._path = path
        self._size = eng.stat(path).size
        self._pos = 0

    @property
    def name(self):
        return self._path

    def readable(self):
        return True

    def seekable(self):
        return True

    def readinto(self, b):
        self._check_closed()
        if self._pos >= self._size:
            return 0
        n = self._engine.readinto(self._path, b, self._pos)
        self._pos += n
        return n

    def readall(self):
        self._check_closed()
        if self._pos >= self._size:
            return b""
        data = self._engine.read(self._path, self._pos, self._size - self._pos)
        self._pos += len(data)
        return data

    def seek(self, offset, whence=os.SEEK_SET):
        self._check_closed()
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def tell(self):
        self._check_closed()
        return self._pos

    def _check_closed(self):
        if self.closed:
            raise ValueError("I/O operation on closed file")


class ObjectWriter(io.RawIOBase):
    """Writes a new object front to back; close() seals it (durable, then visible). Small writes
    are gathered into 4 MiB pieces; large ones go to the engine straight from the caller's
    memory (the engine copies them into its staging buffers, so the caller may reuse it)."""

    def __init__(self, eng, path, size=None, chunk_size=0, local_first=False, replicas=0):
        super().__init__()
        self._engine = eng
        self._path = path
        self._pos = 0
        self._pending = bytearray()
        self._done = False
        eng.create(path, size=size, chunk_size=chunk_size, local_first=local_first,
                   replicas=replicas)

    @property
    def name(self):
        return self._path

    def writable(self):
        return True

    def write(self, b):
        if self.closed or self._done:
            raise ValueError("I/O operation on closed file")
        mv = memoryview(b).cast("B")
        n = mv.nbytes
        if n >= _WRITE_BUFFER:
            self._flush_pending()
            self._engine.write_at(self._path, self._pos, mv)
            self._pos += n
            return n
        self._pending += mv
        if len(self._pending) >= _WRITE_BUFFER:
            self._flush_pending()
        return n

    def tell(self):
        return self._pos + len(self._pending)

    def seek(self, offset, whence=os.SEEK_SET):
        # Only "where am I" seeks: objects are written front to back.
        target = {os.SEEK_SET: offset, os.SEEK_CUR: self.tell() + offset}.get(whence)
        if target != self.tell():
            raise io.UnsupportedOperation("shoal objects are written front to back")
        return target

    def _flush_pending(self):
        if self._pending:
            self._engine.write_at(self._path, self._pos, self._pending)
            self._pos += len(self._pending)
            self._pending = bytearray()

    def close(self):
        """Seals the object. On error it is aborted and the error raised."""
        if self.closed:
            return
        try:
            if not self._done:
                self._flush_pending()
                self._engine.seal(self._path)
                self._done = True
        except BaseException:
            self.abort()
            raise
        finally:
            super().close()

    def abort(self):
        """Discards the object (nothing of it becomes visible)."""
        if not self._done:
            self._done = True
            try:
                self._engine.abort(self._path)
            except _shoal.Error:
                pass  # already gone (e.g. the engine closed)
        if not self.closed:
            super().close()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        else:
            self.close()
        return False

    def __del__(self):
        # Never seal a writer nobody closed: it may be half written.
        if not self._done:
            try:
                self.abort()
            except Exception:  # noqa: BLE001
                pass


def open(path, mode="rb", *, engine=None, size=None, chunk_size=0, local_first=False, replicas=0,
         buffer_size=4 << 20):
    """Opens shoal object `path` as a binary file: "rb" (seekable reader, buffered) or "wb"
    (a new object; `size` may be declared in advance; local_first keeps the first replica of
    every chunk on this rank's member, for data this rank reads back; replicas: 0 = the
    world's). Text modes are refused."""
    eng = _default_engine(engine)
    if mode in ("rb", "r"):
        return io.BufferedReader(ObjectReader(eng, path), buffer_size=buffer_size)
    if mode in ("wb", "w", "xb", "x"):
        return ObjectWriter(eng, path, size=size, chunk_size=chunk_size, local_first=local_first,
                            replicas=replicas)
    raise ValueError(f"mode {mode!r}: shoal objects open as 'rb' or 'wb' (binary; immutable "
                     "once sealed, so no append or update)")
