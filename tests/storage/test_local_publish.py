"""How LocalStore publishes a file: an unnamed file (O_TMPFILE) linked into place where the file
system has them, else a named temporary renamed into place. Both give the same files, the same
errors, and leave no temporary file behind."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import zarrcore
from tests.fixtures.flowkit import wait_until
from zarrcore.errors import AlreadyExists, StoreError
from zarrcore.storage import files
from zarrcore.storage.base import RangeRequest
from zarrcore.storage.local import TMP_PREFIX, UNNAMED_FILES, LocalStore

WAYS = [pytest.param(True, id="unnamed"), pytest.param(False, id="named")]


def store_for(root: Path, unnamed: bool, **options: bool) -> LocalStore:
    if unnamed and not UNNAMED_FILES:
        pytest.skip("no O_TMPFILE or /proc here")
    store = LocalStore(root, **options)
    store._unnamed = unnamed
    return store


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below ``root``: its bytes and permission bits."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def scenario(store: LocalStore) -> None:
    store.put("zarr.json", b"{}", mode="create")
    store.put("c/0/0", b"first")
    store.put("c/0/0", memoryview(b"second, longer"))  # replaces
    store.put("c/0/1", bytearray(b"x" * 100_000))
    store.put("c/1/0", b"", mode="create")
    store.put("deep/er/still/key", np.arange(1000, dtype="int32").data)
    store.put("c/1/0", b"replaced an empty one")


@pytest.mark.parametrize("fsync", [False, True])
def test_both_ways_make_the_same_files(tmp_path: Path, fsync: bool) -> None:
    if not UNNAMED_FILES:
        pytest.skip("no O_TMPFILE or /proc here")
    results = []
    for unnamed in (True, False):
        root = tmp_path / str(unnamed)
        scenario(store_for(root, unnamed, fsync=fsync))
        results.append(snapshot(root))
    assert results[0] == results[1]
    assert sorted(results[0]) == ["c/0/0", "c/0/1", "c/1/0", "deep/er/still/key", "zarr.json"]
    assert results[0]["c/0/0"][0] == b"second, longer"
    umask = os.umask(0)
    os.umask(umask)
    assert {mode for _, mode in results[0].values()} == {0o666 & ~umask}  # like any file the user makes


@pytest.mark.parametrize("unnamed", WAYS)
def test_parts_written_by_a_kernel_that_writes_short_still_land_whole(
    tmp_path: Path, unnamed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each write or writev may store fewer bytes than asked (here at most 7,777 a call, cut inside parts):
    the rest follows where it stopped, and the file holds every part once, in order."""
    real_write, real_writev = os.write, os.writev
    calls = []

    def short(views: list[memoryview]) -> list[memoryview]:
        kept, room = [], 7_777
        for v in views:
            if room <= 0:
                break
            kept.append(memoryview(v)[:room])
            room -= len(kept[-1])
        return kept

    def write(fd: int, data: bytes | memoryview) -> int:
        calls.append("write")
        return real_write(fd, short([memoryview(data)])[0])

    def writev(fd: int, buffers: list[memoryview]) -> int:
        calls.append("writev")
        return real_writev(fd, short(list(buffers)))

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "writev", writev)
    store = store_for(tmp_path / "s", unnamed)
    parts = [np.arange(n * 1000, dtype="int32").data for n in range(12)] + [b"", b"end"]
    store.put_parts("c/0/0", parts)
    store.put("c/0/1", bytearray(b"y" * 50_000))
    monkeypatch.undo()
    assert store.get("c/0/0") == b"".join(bytes(p) for p in parts)
    assert store.get("c/0/1") == b"y" * 50_000
    assert calls.count("writev") > 1 and calls.count("write") > 1  # the cut happened, and was continued


def test_ranges_read_into_the_buffer_one_read_per_run_of_touching_ranges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On local disk ``get_ranges`` reads only the bytes asked: ranges that touch share one read, the
    others each have their own (the bytes between are not read), and given a buffer the answers are
    views of it. A kernel that reads at most 7,777 bytes a call is continued where it stopped."""
    data = np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    store = LocalStore(tmp_path)
    store.put("s/0", data)
    real = os.preadv
    reads: list[tuple[int, int]] = []

    def preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
        n = real(fd, [memoryview(buffers[0])[:7_777]], offset)
        reads.append((offset, n))
        return n

    monkeypatch.setattr(os, "preadv", preadv)
    ranges = [RangeRequest(150_000, 160_000), RangeRequest(0, 10_000), RangeRequest(10_000, 30_000),
              RangeRequest(199_000, 201_000)]  # fmt: skip
    buffer = memoryview(bytearray(100_000))
    got = store.get_ranges("s/0", ranges, into=buffer)
    monkeypatch.undo()
    assert [bytes(g) for g in got] == [data[r.start : r.end] for r in ranges]
    assert all(np.shares_memory(np.frombuffer(g, np.uint8), np.frombuffer(buffer, np.uint8)) for g in got)
    assert sum(n for _, n in reads) == 10_000 + 30_000 + 1_000  # only the bytes asked, once each
    assert {offset for offset, _ in reads} >= {0, 150_000, 199_000} and max(n for _, n in reads) == 7_777
    assert store.get_ranges("s/0", ranges[:1]) == [memoryview(data)[150_000:160_000]]  # no buffer: its own bytes


@pytest.mark.parametrize("unnamed", WAYS)
def test_create_mode_refuses_an_existing_key_and_keeps_it(tmp_path: Path, unnamed: bool) -> None:
    store = store_for(tmp_path, unnamed)
    store.put("a/k", b"first", mode="create")
    with pytest.raises(AlreadyExists, match="'a/k'"):
        store.put("a/k", b"second", mode="create")
    assert snapshot(tmp_path).keys() == {"a/k"}
    assert store.get("a/k") == b"first"


@pytest.mark.parametrize("unnamed", WAYS)
def test_failed_puts_raise_store_errors_and_leave_nothing(tmp_path: Path, unnamed: bool) -> None:
    store = store_for(tmp_path, unnamed)
    store.put("dir/key", b"x")
    with pytest.raises(StoreError, match="'dir'"):
        store.put("dir", b"over a folder")
    with pytest.raises(StoreError, match="'dir/key/below'"):
        store.put("dir/key/below", b"under a file")
    with pytest.raises(AlreadyExists):
        store.put("dir", b"over a folder", mode="create")
    assert snapshot(tmp_path) == {"dir/key": (b"x", snapshot(tmp_path)["dir/key"][1])}
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(TMP_PREFIX)]


@pytest.mark.parametrize("unnamed", WAYS)
def test_concurrent_writers_of_one_key_and_of_new_keys(tmp_path: Path, unnamed: bool) -> None:
    store = store_for(tmp_path, unnamed)
    versions = [bytes([i]) * 50_000 for i in range(6)]

    def writer(i: int) -> None:
        for n in range(20):
            store.put("same", versions[i])
            store.put(f"new/{i}/{n}", versions[i])

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(len(versions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("same") in versions
    assert all(store.get(f"new/{i}/{n}") == versions[i] for i in range(6) for n in range(20))
    assert len(snapshot(tmp_path)) == 1 + 6 * 20


@pytest.mark.parametrize("unnamed", WAYS)
def test_arrays_written_either_way_read_back_in_zarr_python(tmp_path: Path, unnamed: bool) -> None:
    zarr = pytest.importorskip("zarr")
    store = store_for(tmp_path / "a.zarr", unnamed)
    data = np.arange(64 * 48, dtype="float32").reshape(64, 48)
    a = zarrcore.create(store, shape=data.shape, chunks=(16, 16), dtype="float32", fill_value=0)
    a[...] = data
    a[...] = data + 1  # every chunk replaced
    assert np.array_equal(zarr.open_array(str(tmp_path / "a.zarr"), mode="r")[...], data + 1)
    assert not [p for p in (tmp_path / "a.zarr").rglob("*") if p.name.startswith(TMP_PREFIX)]


def test_whole_reads_of_every_size_around_the_read_hint(tmp_path: Path) -> None:
    """A get reads as many bytes as the largest object so far plus one, then by the file's size:
    every size around those bounds comes back whole, and so does a file that grows after a read."""
    store = LocalStore(tmp_path)
    sizes = [0, 1, 65535, 65536, 65537, 65538, 300_000, 100, 0, (16 << 20) + 5, 3, (17 << 20) + 1, 65536]
    for n in sizes:
        value = os.urandom(n)
        store.put("k", value)
        assert store.get("k") == value
    (tmp_path / "grown").write_bytes(b"a" * 10)
    assert store.get("grown") == b"a" * 10
    (tmp_path / "grown").write_bytes(b"b" * 20_000_000)
    assert store.get("grown") == b"b" * 20_000_000


def open_files_under(root: Path) -> list[str]:
    """What this process's open descriptors name under ``root`` (a file removed shows "... (deleted)")."""
    names = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(root)):
                names.append(target)
    return names


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
@pytest.mark.parametrize("unnamed", WAYS)
def test_large_files_replaced_or_removed_are_closed_off_the_writers_thread(tmp_path: Path, unnamed: bool) -> None:
    """A file of RELEASE_MIN bytes or more that a put replaces, or a delete removes, is held open across
    the rename or unlink and closed by the release thread: the key reads the new bytes at once, the
    folder shows no old file at once, and no descriptor is left open once the thread is done."""
    store = store_for(tmp_path, unnamed)
    big = files.RELEASE_MIN
    control = os.open(tmp_path, os.O_RDONLY)  # a positive control: the check sees an open descriptor
    assert open_files_under(tmp_path) == [str(tmp_path)]
    os.close(control)
    for n in range(12):
        store.put("a/k", bytes([n]) * (big + n))
        assert store.get("a/k") == bytes([n]) * (big + n)
        assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["k"]
    store.put("a/small", b"s" * 100)
    store.put("a/small", b"t" * 100)  # a small file is freed in the put itself
    store.delete("a/k")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["small"]
    wait_until(lambda: open_files_under(tmp_path) == [], timeout=30, what="the replaced files to be closed")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_failed_replace_of_a_large_file_leaves_nothing_open(tmp_path: Path) -> None:
    """A put whose rename fails (its key is a folder that holds a file) raises and leaves no
    descriptor open on what it held."""
    (tmp_path / "a" / "k").mkdir(parents=True)
    (tmp_path / "a" / "k" / "inner").write_bytes(b"x")
    with pytest.raises(OSError):
        files.put_named(str(tmp_path / "a" / "k"), [memoryview(b"y" * files.RELEASE_MIN)], create=False, fsync=False)
    assert open_files_under(tmp_path) == []
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["k"]  # no temporary left


def test_the_release_thread_closes_what_it_is_given() -> None:
    """A descriptor handed to the release thread is closed by it (here a pipe's write end: the read end
    then sees its end), and the thread takes many at once without losing one."""
    pipes = [os.pipe() for _ in range(3 * files.RELEASE_MAX)]  # more than it queues: the rest closed at once
    for _, write_end in pipes:
        files._release(write_end)
    for read_end, _ in pipes:
        ready, _, _ = select.select([read_end], [], [], 30)
        assert ready and os.read(read_end, 1) == b""  # end of file: the write end was closed
        os.close(read_end)


HIDE_PROC = """
import ctypes, json, os, sys
from zarrcore.errors import AlreadyExists
from zarrcore.storage.local import UNNAMED_FILES, LocalStore

store = LocalStore(sys.argv[1])
store.put("a/before", b"unnamed")  # /proc is there: an unnamed file, linked through /proc/self/fd
decided = store._unnamed
if ctypes.CDLL(None, use_errno=True).mount(b"none", b"/proc", b"tmpfs", 0, None) != 0:
    sys.exit(77)  # this kernel refuses the mount in a user namespace
store.put("a/k", b"first", mode="create")  # the /proc link is gone: written again through a named file
store.put("a/k", b"second, longer")
store.put("b/new/folder", b"x" * 100_000)
try:
    store.put("a/k", b"third", mode="create")
    refused = False
except AlreadyExists:
    refused = True
print(json.dumps({"at_import": UNNAMED_FILES, "before": decided, "after": store._unnamed, "refused": refused}))
"""


def test_a_process_that_loses_proc_falls_back_to_named_files(tmp_path: Path) -> None:
    """/proc hidden after the store chose unnamed files (a user and mount namespace, a real kernel):
    the put whose link fails writes the object again through a named file, later puts go there at
    once, and every object is whole with no temporary file left."""
    if not UNNAMED_FILES:
        pytest.skip("no O_TMPFILE or /proc here")
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare(1)")
    root = tmp_path / "store"
    run = subprocess.run([unshare, "--user", "--map-root-user", "--mount", sys.executable, "-c", HIDE_PROC, str(root)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    if run.returncode == 77 or "unshare failed" in run.stderr:
        pytest.skip(f"no user and mount namespaces here: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"at_import": True, "before": True, "after": False, "refused": True}
    files = snapshot(root)
    assert {k: v[0] for k, v in files.items()} == {"a/before": b"unnamed", "a/k": b"second, longer",
                                                   "b/new/folder": b"x" * 100_000}  # fmt: skip
    assert not [p for p in root.rglob("*") if p.name.startswith(TMP_PREFIX)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_replaces_large_files_with_a_release_thread_of_its_own(tmp_path: Path) -> None:
    """A child forked while the parent's release thread runs starts its own thread and never blocks on
    the parent's (whose locks it inherits in whatever state they were)."""
    store = LocalStore(tmp_path)
    big = files.RELEASE_MIN
    for n in range(4):
        store.put("k", bytes([n]) * big)  # the parent's release thread is running
    pid = os.fork()
    if pid == 0:  # the child: replace again, then report through its exit status
        try:
            for n in range(4):
                store.put("k", bytes([10 + n]) * big)
            ok = store.get("k") == bytes([13]) * big and files._release_queue is not None
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)

    def child_ended() -> tuple[int, int] | None:
        done = os.waitpid(pid, os.WNOHANG)
        return done if done[0] == pid else None

    try:
        _, status = wait_until(child_ended, timeout=60, what="the forked child to end")
    except AssertionError:
        os.kill(pid, 9)  # our own child, by its PID
        os.waitpid(pid, 0)
        raise
    assert os.waitstatus_to_exitcode(status) == 0, status
    assert store.get("k") == bytes([13]) * big
