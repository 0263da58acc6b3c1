"""Whole files on the local file system: a file is published whole or not at all, and read whole
with as few system calls as its size allows. :class:`~zarrcore.storage.local.LocalStore` maps keys
to paths and errors; this module holds the system calls."""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from enum import Enum

__all__ = ["RELEASE_MIN", "TMP_PREFIX", "UNNAMED_FILES", "Taken", "Unnamed", "pread_all", "pread_into", "put_named",
           "put_unnamed", "read_all", "remove_file"]

#: Temporary files carry this prefix; listings skip them.
TMP_PREFIX = ".zarrcore-tmp-"

CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NAMED_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | CLOEXEC
_TMPFILE_FLAGS = getattr(os, "O_TMPFILE", 0) | os.O_WRONLY | CLOEXEC
#: Unnamed files need O_TMPFILE (Linux 3.11+) and /proc to name them by their descriptor.
UNNAMED_FILES = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
#: How open(O_TMPFILE) says that the file system (or kernel) has no unnamed files.
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL}


class Taken(Exception):
    """A create-only write found a file already at the path."""


class Unnamed(Enum):
    """What :func:`put_unnamed` did."""

    PUBLISHED = "published"
    #: Not written this time (the folder went away meanwhile): write it as a named file.
    RETRY_NAMED = "retry-named"
    #: This file system or kernel has no unnamed files: write named files from now on.
    UNSUPPORTED = "unsupported"


def read_all(fd: int, hint: int) -> bytes:
    """The whole file open at ``fd``: one ``read`` of ``hint`` bytes, which a file smaller than the
    hint answers whole (a regular file reads short only at its end), so most reads need no ``fstat``;
    a larger file reads the rest by its size."""
    data = os.read(fd, hint)
    if len(data) < hint:
        return data
    parts = [data]
    remaining = os.fstat(fd).st_size - len(data)
    while remaining > 0 and (chunk := os.read(fd, remaining)):  # the rest, by the size
        parts.append(chunk)
        remaining -= len(chunk)
    while chunk := os.read(fd, 1 << 24):  # then to the end (a file that grew, or a short read)
        parts.append(chunk)
    return b"".join(parts)


def pread_all(fd: int, start: int, stop: int) -> bytes:
    """Bytes ``[start, stop)`` of the file open at ``fd`` (fewer at its end)."""
    parts = []
    while start < stop and (piece := os.pread(fd, stop - start, start)):
        parts.append(piece)
        start += len(piece)
    return b"".join(parts)


def pread_into(fd: int, buf: memoryview, start: int) -> int:
    """Fill ``buf`` from offset ``start`` of the file open at ``fd``; the bytes read (fewer at its end)."""
    done = 0
    while done < len(buf) and (n := os.preadv(fd, [buf[done:]], start + done)):
        done += n
    return done


@contextlib.contextmanager
def _removed_on_error(tmp: str) -> Iterator[None]:
    """Remove the temporary file ``tmp`` if the block fails (it was not published)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


#: At most this many buffers go to one ``writev`` (the kernel's limit, IOV_MAX, is 1,024 on Linux).
_IOV_MAX = min(os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16, 1024)


def _fill(fd: int, views: Sequence[memoryview], fsync: bool) -> None:
    """Write ``views`` (byte-format memoryviews) one after another: one ``writev`` per ``_IOV_MAX``
    of them, continued where the kernel stopped when it writes less."""
    pending = [v for v in views if v.nbytes]
    while pending:
        batch = pending[:_IOV_MAX]
        done = os.writev(fd, batch) if len(batch) > 1 else os.write(fd, batch[0])
        for n, view in enumerate(batch):
            if done < view.nbytes:
                pending = [view[done:], *pending[n + 1 :]]
                break
            done -= view.nbytes
        else:
            pending = pending[len(batch) :]
    if fsync:
        os.fsync(fd)


def _new_temp(folder: str, make: Callable[[str], None]) -> str:
    """``make`` a fresh temporary name in ``folder`` (retried on the rare name clash); returns it."""
    for _ in range(100):
        tmp = os.path.join(folder, TMP_PREFIX + secrets.token_hex(8))
        try:
            make(tmp)
            return tmp
        except FileExistsError:
            continue
    raise OSError(errno.EAGAIN, f"no free temporary name in {folder}")


def _publish_temp(tmp: str, path: str, nbytes: int) -> None:
    """Rename ``tmp`` over ``path``; a large file replaced is freed off this thread (:func:`_released`)."""
    with _released(_hold(path) if nbytes >= RELEASE_MIN else None), _removed_on_error(tmp):
        os.replace(tmp, path)


def remove_file(path: str) -> None:
    """Unlink ``path`` (``FileNotFoundError`` if it is not there); a large file is freed off this thread."""
    with _released(_hold(path, sized=True)):
        os.unlink(path)


# -- the last close of a replaced or removed file, off the writer's thread --------------------------------
#: The last close of a file that was replaced or removed frees its blocks, and first waits for any writeback of
#: them still under way: on ext4 a file renamed over another has its writeback started at once, so a shard
#: rewritten soon after it was written waits ~5 ms (3 MiB, this machine) in that close. Files of at least
#: this size are held open across the rename or unlink and closed on a thread of their own.
RELEASE_MIN = 1 << 20
#: At most this many such files wait to be closed; beyond, the writer closes its own.
RELEASE_MAX = 64
_release_lock = threading.Lock()
_release_queue: queue.Queue[int] | None = None


def _hold(path: str, *, sized: bool = False) -> int | None:
    """``path`` open for reading, so that its last close is ours (``None``: not there, or with
    ``sized`` smaller than :data:`RELEASE_MIN`, so not worth a thread's handoff)."""
    try:
        fd = os.open(path, os.O_RDONLY | CLOEXEC)
    except OSError:
        return None
    if sized and os.fstat(fd).st_size < RELEASE_MIN:
        os.close(fd)  # still linked: closing it frees nothing
        return None
    return fd


def _closer(pending: queue.Queue[int]) -> None:
    while True:
        fd = pending.get()
        with contextlib.suppress(OSError):
            os.close(fd)


@contextlib.contextmanager
def _released(fd: int | None) -> Iterator[None]:
    """Around the rename or unlink of the file held at ``fd``: closed on the closer thread once the
    block succeeds, at once if it fails (the file is still linked: that close frees nothing)."""
    try:
        yield
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    _release(fd)


def _release(fd: int | None) -> None:
    """Close ``fd`` on the closer thread (in this call when :data:`RELEASE_MAX` are already waiting)."""
    global _release_queue
    if fd is None:
        return
    with _release_lock:
        if _release_queue is None:
            _release_queue = queue.Queue(RELEASE_MAX)
            threading.Thread(target=_closer, args=(_release_queue,), name="zarrcore-release", daemon=True).start()
        pending = _release_queue
    try:
        pending.put_nowait(fd)
    except queue.Full:
        os.close(fd)


def _after_fork_in_child() -> None:
    """A forked child has no closer thread: it closes what was waiting and starts its own when needed."""
    global _release_queue, _release_lock
    _release_lock = threading.Lock()
    waiting, _release_queue = _release_queue, None
    # the queue's own lock may have been held by the parent's closer at the fork: read its items
    # directly (no other thread runs in the child)
    for fd in list(waiting.queue) if waiting is not None else []:
        with contextlib.suppress(OSError):
            os.close(fd)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def put_unnamed(path: str, views: Sequence[memoryview], *, create: bool, fsync: bool) -> Unnamed:
    """Write ``views``, one after another, as an unnamed file in the target's folder (``O_TMPFILE``),
    then give it its name with one ``link``. The inode is allocated without the folder's lock, which
    other writers in that folder need; a killed writer leaves nothing behind. ``create`` refuses an
    existing file (:class:`Taken`)."""
    folder = os.path.dirname(path)
    try:
        fd = os.open(folder, _TMPFILE_FLAGS, 0o666)
    except FileNotFoundError:  # the folder is made on first use only: one syscall less per put
        os.makedirs(folder, exist_ok=True)
        fd = os.open(folder, _TMPFILE_FLAGS, 0o666)
    except OSError as exc:
        if exc.errno not in _NO_TMPFILE:
            raise
        return Unnamed.UNSUPPORTED
    try:
        _fill(fd, views, fsync)
        # linkat(AT_SYMLINK_FOLLOW) on the /proc link names the open file (os.link only passes that
        # flag when given a dir fd; an absolute source path makes the kernel ignore it).
        source = f"/proc/self/fd/{fd}"
        try:
            os.link(source, path, src_dir_fd=fd)
            return Unnamed.PUBLISHED
        except FileExistsError:
            if create:
                raise Taken(path) from None
        except OSError as exc:  # no link to an open file here, or the folder just went away
            if exc.errno != errno.ENOENT or os.path.isdir(folder):  # ENOENT, folder there: no /proc
                return Unnamed.UNSUPPORTED
            return Unnamed.RETRY_NAMED  # the named path writes the object again (this file vanishes)
        # Replacing a file: a temporary name, then a rename over the old file.
        tmp = _new_temp(folder, lambda name: os.link(source, name, src_dir_fd=fd))
        _publish_temp(tmp, path, sum(v.nbytes for v in views))
        return Unnamed.PUBLISHED
    finally:
        os.close(fd)


def put_named(path: str, views: Sequence[memoryview], *, create: bool, fsync: bool) -> None:
    """Write ``views``, one after another, to a named temporary file beside ``path``, then link
    (``create``: :class:`Taken` if a file is there) or rename (overwrite) it into place."""
    folder = os.path.dirname(path)
    fds: list[int] = []

    def make(name: str) -> None:
        fds.append(os.open(name, _NAMED_FLAGS, 0o666))

    try:
        tmp = _new_temp(folder, make)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        tmp = _new_temp(folder, make)
    with _removed_on_error(tmp):
        try:
            _fill(fds[0], views, fsync)
        finally:
            os.close(fds[0])
        if create:
            # link() refuses an existing target: the check and the publish are one syscall.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise Taken(path) from None
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        else:
            _publish_temp(tmp, path, sum(v.nbytes for v in views))
