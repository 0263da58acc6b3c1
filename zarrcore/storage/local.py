"""A store on the local file system: one file per key, written atomically."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from zarrcore.errors import AccessDenied, AlreadyExists, NotFound, ReadOnlyError, StoreError
from zarrcore.storage.base import (
    ByteRange,
    OffsetRequest,
    PutMode,
    RangeRequest,
    Store,
    SuffixRequest,
    validate_key,
)

__all__ = ["LocalStore"]


def _read_all(path: str) -> bytes:
    """A whole file in one read when its size is known (``f.read()`` reads once more to find EOF)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size) if size else b""
        if len(data) < size:  # short read (the file shrank, or a huge object): fall back to a loop
            parts = [data]
            while chunk := os.read(fd, 1 << 24):
                parts.append(chunk)
            data = b"".join(parts)
        return data
    finally:
        os.close(fd)


#: Temporary files carry this prefix; listings skip them.
TMP_PREFIX = ".zarrcore-tmp-"


class LocalStore(Store):
    """Keys map to files below ``root``. Every write goes through :meth:`_atomic_write`.

    ``fsync=True`` also flushes each file to disk before it is renamed into place (durable across
    power loss, slower); without it a killed process still never leaves a torn object.
    """

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = False, read_only: bool = False) -> None:
        self.root = Path(root).expanduser().absolute()
        self._root = str(self.root)
        self.fsync = fsync
        self.read_only = read_only

    @classmethod
    def from_url(cls, url: str, **options: object) -> LocalStore:
        """``file:///abs/path``, ``file://relative`` or a plain path."""
        if url.startswith("file://"):
            parsed = urlparse(url)
            path = unquote((parsed.netloc or "") + parsed.path)
        else:
            path = url
        return cls(path, **options)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def _path(self, key: str) -> str:
        # Plain strings: pathlib costs more than a small object's I/O.
        return os.path.join(self._root, *validate_key(key).split("/"))

    def _error(self, exc: OSError, key: str) -> StoreError:
        if isinstance(exc, PermissionError):
            return AccessDenied(f"permission denied for key {key!r} in {self.url}: {exc}", key=key, store=self.url)
        return StoreError(f"I/O error for key {key!r} in {self.url}: {exc}", key=key, store=self.url)

    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        path = self._path(key)
        try:
            if byte_range is None:
                return _read_all(path)
            with open(path, "rb") as f:
                if isinstance(byte_range, RangeRequest):
                    f.seek(byte_range.start)
                    return f.read(max(0, byte_range.end - byte_range.start))
                if isinstance(byte_range, OffsetRequest):
                    f.seek(byte_range.offset)
                    return f.read()
                if isinstance(byte_range, SuffixRequest):
                    size = os.fstat(f.fileno()).st_size
                    f.seek(max(0, size - byte_range.suffix))
                    return f.read()
                raise TypeError(f"unknown byte range {byte_range!r}")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(f"no object at key {key!r} in {self.url}", key=key, store=self.url) from None
        except OSError as exc:
            raise self._error(exc, key) from exc

    @contextlib.contextmanager
    def _atomic_write(self, path: str) -> Iterator[tuple[int, str]]:
        """Yield ``(fd, temp_path)`` of a temp file beside ``path``; the caller publishes it (renames
        it away); whatever is left of it afterwards is removed."""
        folder = os.path.dirname(path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=folder)
        except FileNotFoundError:  # the folder is made on first use only: one syscall less per put
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=folder)
        try:
            yield fd, tmp
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
            if os.path.lexists(tmp):  # still there after an error, or after link() in create mode
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def _writable(self, key: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"store {self.url} is read-only; cannot write {key!r}", key=key, store=self.url)

    def put(self, key: str, data: bytes | bytearray | memoryview, *, mode: PutMode = "overwrite") -> None:
        path = self._path(key)
        self._writable(key)
        try:
            with self._atomic_write(path) as (fd, tmp):
                view = memoryview(data).cast("B")
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                if self.fsync:
                    os.fsync(fd)
                if mode == "create":
                    # link() refuses an existing target: the check and the publish are one syscall.
                    try:
                        os.link(tmp, path)
                    except FileExistsError:
                        raise AlreadyExists(
                            f"key {key!r} already exists in {self.url}", key=key, store=self.url
                        ) from None
                else:
                    os.replace(tmp, path)
        except AlreadyExists:
            raise
        except OSError as exc:
            raise self._error(exc, key) from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        self._writable(key)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            raise self._error(exc, key) from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        # Walk only the deepest folder the prefix names, then filter by the full prefix.
        folder, _, _ = prefix.rpartition("/")
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        if not start.is_dir():
            return
        root_len = len(str(self.root)) + 1
        for dirpath, _dirnames, filenames in os.walk(start):
            rel_dir = dirpath[root_len:].replace(os.sep, "/") if len(dirpath) >= root_len else ""
            for name in filenames:
                if name.startswith(TMP_PREFIX):
                    continue
                key = f"{rel_dir}/{name}" if rel_dir else name
                if key.startswith(prefix):
                    yield key

    def list_dir(self, prefix: str = "") -> tuple[list[str], list[str]]:
        prefix = prefix.strip("/")
        folder = self.root.joinpath(*prefix.split("/")) if prefix else self.root
        keys: list[str] = []
        dirs: list[str] = []
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    if entry.name.startswith(TMP_PREFIX):
                        continue
                    if not entry.is_dir():
                        keys.append(entry.name)
                    elif self._holds_keys(entry.path):  # like an object store: no keys, no prefix
                        dirs.append(entry.name)
        except (FileNotFoundError, NotADirectoryError):
            pass
        return sorted(keys), sorted(dirs)

    @staticmethod
    def _holds_keys(folder: str) -> bool:
        """Whether a folder holds a key anywhere below it (folders emptied by deletes do not)."""
        return any(not name.startswith(TMP_PREFIX) for _, _, names in os.walk(folder) for name in names)

    def size(self, key: str) -> int:
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):  # a folder is not an object
            raise NotFound(f"no object at key {key!r} in {self.url}", key=key, store=self.url)
        return st.st_size

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))
