"""A store on the local file system: one file per key, written atomically."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from zarrcore.errors import (
    AccessDenied,
    AlreadyExists,
    InvalidKey,
    InvalidURL,
    NotFound,
    PreconditionFailed,
    ReadOnlyError,
    StoreError,
)
from zarrcore.storage.base import (
    ByteRange,
    OffsetRequest,
    PutMode,
    RangeRequest,
    Store,
    SuffixRequest,
    folder_prefix,
    range_bounds,
    validate_key,
    validate_prefix,
)
from zarrcore.storage.files import (
    CLOEXEC,
    TMP_PREFIX,
    UNNAMED_FILES,
    Taken,
    Unnamed,
    pread_all,
    pread_into,
    put_named,
    put_unnamed,
    read_all,
    remove_file,
)
from zarrcore.storage.ranges import coalesce, split_run
from zarrcore.storage.urls import parse_url

__all__ = ["TMP_PREFIX", "UNNAMED_FILES", "LocalStore"]


#: A whole-file read first asks for the largest size read so far plus one, but at most this much.
_MAX_READ_HINT = (16 << 20) + 1
#: Reads open the file itself, never a symlink in its place (a link is resolved and checked first).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: Whether a key's '/' is already the path separator (then a path is the root, '/' and the key).
_SLASH_PATHS = os.sep == "/" and os.altsep is None


class LocalStore(Store):
    """Keys map to files below ``root``. Every write is atomic: the bytes go to a file with no name
    (Linux ``O_TMPFILE``) or a temporary name first, and the whole file is then linked or renamed
    into place, so a reader sees the old or the new object, never part of one.

    ``fsync=True`` also flushes each file to disk before it is published (durable across power
    loss, slower); without it a killed process still never leaves a torn object.

    Symlinks below ``root`` are followed only while they resolve inside the root: a key whose
    folder or file is a link leading outside raises :class:`~zarrcore.errors.InvalidKey`, and
    listings skip such links (see docs/hardening.md).
    """

    #: Only ranges that touch share a read: a ``pread`` costs less than copying the bytes between ranges.
    range_gap = 0

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = False, read_only: bool = False) -> None:
        self.root = Path(root).expanduser().absolute()
        self._root = str(self.root)
        self._root_slash = self._root.rstrip("/") + "/"
        self._real_root = os.path.realpath(self._root)
        #: Folders known to resolve inside the root (a set lookup per key, not a path walk).
        self._inside: set[str] = set()
        self.fsync = fsync
        self.read_only = read_only
        self.io_kind = "latency" if fsync else "cpu"  # a flush waits on the disk; a page-cache write does not
        #: Whether puts write an unnamed file (O_TMPFILE) and link it, rather than a named temporary.
        self._unnamed = UNNAMED_FILES
        #: How many bytes a whole-object get reads first: the largest object read so far, plus one.
        self._read_hint = (64 << 10) + 1

    @classmethod
    def from_url(cls, url: str, **options: object) -> LocalStore:
        """``file:///abs/path``, ``file://relative`` or a plain path."""
        parsed = parse_url(url)
        if parsed.scheme != "file":
            raise InvalidURL(f"expected a file:// URL or a path, not a {parsed.scheme}:// URL", part="scheme")
        return cls(parsed.path, **options)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def _path(self, key: str) -> str:
        # Plain strings: pathlib costs more than a small object's I/O.
        if _SLASH_PATHS:
            path = self._root_slash + validate_key(key)
        else:
            path = os.path.join(self._root, *validate_key(key).split("/"))
        folder = os.path.dirname(path)
        if folder not in self._inside:
            self._check_inside(folder, key)
        return path

    def _resolves_inside(self, path: str) -> bool:
        real = os.path.realpath(path)
        return real == self._real_root or real.startswith(self._real_root.rstrip(os.sep) + os.sep)

    def _check_inside(self, folder: str, key: str) -> None:
        """Refuse a key whose folder is (or passes through) a symlink leading outside the root."""
        if not self._resolves_inside(folder):
            raise self._outside(key)
        if os.path.isdir(folder):  # a folder not made yet is checked again once it exists
            self._inside.add(folder)

    def _outside(self, key: str) -> InvalidKey:
        return InvalidKey(f"key {key!r} in {self.url} leads through a symlink outside the store root", key=key,
                          store=self.url)  # fmt: skip

    def _open_read(self, path: str, key: str) -> int:
        """A descriptor of the file at ``path``; a symlink there is followed only into the root."""
        try:
            return os.open(path, os.O_RDONLY | CLOEXEC | _NOFOLLOW)
        except OSError as exc:
            if exc.errno != errno.ELOOP or not _NOFOLLOW:
                raise
        if not self._resolves_inside(path):
            raise self._outside(key)
        return os.open(path, os.O_RDONLY | CLOEXEC)

    def _error(self, exc: OSError, key: str) -> StoreError:
        if isinstance(exc, PermissionError):
            return AccessDenied(f"permission denied for key {key!r} in {self.url}: {exc}", key=key, store=self.url)
        return StoreError(f"I/O error for key {key!r} in {self.url}: {exc}", key=key, store=self.url)

    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        path = self._path(key)
        try:
            if byte_range is None:
                fd = self._open_read(path, key)
                try:
                    data = read_all(fd, self._read_hint)
                finally:
                    os.close(fd)
                if len(data) >= self._read_hint and self._read_hint < _MAX_READ_HINT:
                    self._read_hint = min(len(data) + 1, _MAX_READ_HINT)
                return data
            with open(self._open_read(path, key), "rb") as f:
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
    def _reading(self, key: str, version: str | None) -> Iterator[tuple[int, int, str]]:
        """The file at ``key`` open for reading, its size and version (its identity: inode, change
        times, size; every put makes a new file); ``PreconditionFailed`` unless it is ``version``."""
        path = self._path(key)
        try:
            fd = self._open_read(path, key)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no object at key {key!r} in {self.url}", key=key, store=self.url) from None
        except OSError as exc:
            raise self._error(exc, key) from exc
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise NotFound(f"no object at key {key!r} in {self.url}", key=key, store=self.url)
            current = f"{st.st_dev:x}-{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_ctime_ns:x}-{st.st_size:x}"
            if version is not None and version != current:
                raise PreconditionFailed(
                    f"key {key!r} in {self.url} changed since it was read", key=key, store=self.url
                )
            yield fd, st.st_size, current
        except OSError as exc:
            raise self._error(exc, key) from exc
        finally:
            os.close(fd)

    def get_versioned(
        self, key: str, byte_range: ByteRange | None = None, *, version: str | None = None
    ) -> tuple[bytes, str | None]:
        """The version is the file's identity (inode, change times, size): every put makes a new file."""
        with self._reading(key, version) as (fd, size, current):
            return pread_all(fd, *range_bounds(byte_range, size)), current

    def get_ranges(
        self, key: str, ranges: Sequence[RangeRequest], *, version: str | None = None, into: memoryview | None = None
    ) -> list[bytes | memoryview]:
        """One open file; ranges that touch (:attr:`range_gap`) read with one ``pread``, one after
        another (from the page cache a read costs its copy, so threads would add only hand-offs, and
        the bytes between ranges are not worth reading), into ``into`` when it is large enough."""
        runs = coalesce(ranges, gap=self.range_gap)
        buf = into if into is not None and len(into) >= sum(r.stop - r.start for r in runs) else None
        out: list[bytes | memoryview] = [b""] * len(ranges)
        with self._reading(key, version) as (fd, size, _):
            offset = 0
            for run in runs:
                start, stop = min(run.start, size), min(run.stop, size)
                if buf is None:
                    data: bytes | memoryview = pread_all(fd, start, stop)
                else:
                    data = buf[offset : offset + stop - start]
                    data = data[: pread_into(fd, data, start)]
                    offset += stop - start
                split_run(run, data, ranges, out)
        return out

    def _writable(self, key: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"store {self.url} is read-only; cannot write {key!r}", key=key, store=self.url)

    def put(self, key: str, data: bytes | bytearray | memoryview, *, mode: PutMode = "overwrite") -> None:
        self._put_views(key, [memoryview(data).cast("B")], mode)

    def put_parts(self, key: str, parts: Sequence[bytes | bytearray | memoryview], *,
                  mode: PutMode = "overwrite") -> None:  # fmt: skip
        """Write the concatenation of ``parts`` as one file, with ``writev``: the parts are not joined."""
        self._put_views(key, [memoryview(p).cast("B") for p in parts], mode)

    def _put_views(self, key: str, views: list[memoryview], mode: PutMode) -> None:
        path = self._path(key)
        self._writable(key)
        create = mode == "create"
        try:
            if self._unnamed:
                done = put_unnamed(path, views, create=create, fsync=self.fsync)
                if done is Unnamed.PUBLISHED:
                    return
                if done is Unnamed.UNSUPPORTED:
                    self._unnamed = False
            put_named(path, views, create=create, fsync=self.fsync)
        except Taken:
            raise AlreadyExists(f"key {key!r} already exists in {self.url}", key=key, store=self.url) from None
        except OSError as exc:
            raise self._error(exc, key) from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        self._writable(key)
        try:
            remove_file(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            raise self._error(exc, key) from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)
        # Walk only the deepest folder the prefix names, then filter by the full prefix.
        folder, _, _ = prefix.rpartition("/")
        start = os.path.join(self._root, *folder.split("/")) if folder else self._root
        if not os.path.isdir(start) or not self._resolves_inside(start):
            return iter(())
        return self._walk(start, prefix)

    def _walk(self, start: str, prefix: str) -> Iterator[str]:
        """Keys below the folder ``start`` that begin with ``prefix``; symlinked folders are not
        walked (as :func:`os.walk` does), symlinked files are keys only if they resolve inside."""
        root_len = len(self._root_slash)
        stack = [start]
        while stack:
            dirpath = stack.pop()
            rel_dir = dirpath[root_len:].replace(os.sep, "/") if len(dirpath) >= root_len else ""
            try:
                entries = list(os.scandir(dirpath))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.name.startswith(TMP_PREFIX):
                    continue
                if entry.is_symlink():
                    if entry.is_dir() or not entry.is_file() or not self._resolves_inside(entry.path):
                        continue
                elif entry.is_dir():
                    stack.append(entry.path)
                    continue
                key = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if key.startswith(prefix):
                    yield key

    def list_dir(self, prefix: str = "") -> tuple[list[str], list[str]]:
        prefix = folder_prefix(prefix).rstrip("/")
        folder = os.path.join(self._root, *prefix.split("/")) if prefix else self._root
        keys: list[str] = []
        dirs: list[str] = []
        if not self._resolves_inside(folder):
            return keys, dirs
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    if entry.name.startswith(TMP_PREFIX):
                        continue
                    if entry.is_symlink() and not self._resolves_inside(entry.path):
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
        path = self._path(key)
        try:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                if not self._resolves_inside(path):
                    raise self._outside(key)
                st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):  # a folder is not an object
            raise NotFound(f"no object at key {key!r} in {self.url}", key=key, store=self.url)
        return st.st_size

    def exists(self, key: str) -> bool:
        path = self._path(key)
        if os.path.islink(path) and not self._resolves_inside(path):
            raise self._outside(key)
        return os.path.isfile(path)
