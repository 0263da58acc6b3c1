"""A writer killed with SIGKILL at random moments never leaves a torn chunk or metadata document.

A long-lived helper process imports zarrcore once and forks one writer per round, so there are many
kills in a few seconds. Each writer rewrites every chunk of a LocalStore array with successive
versions (some all-fill, which deletes the chunk) and rewrites the attributes, until the test kills
it. After every kill each stored chunk must decode to one complete version.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import zarrcore
from zarrcore.storage.local import TMP_PREFIX

SHAPE, CHUNKS = (512, 2048), (256, 512)  # 8 chunks of 1 MiB each
KILLS = 60
VERSIONS_PER_ROUND = 10_000  # round r writes versions r * 10_000 + 1, + 2, ...


def version_data(lin: int, version: int, chunks: tuple[int, ...] = CHUNKS) -> np.ndarray:
    """Version ``version`` of chunk number ``lin``; every fifth version is all fill (a deleted chunk)."""
    if version % 5 == lin % 5:
        return np.zeros(chunks, dtype="int64")
    n = int(np.prod(chunks))
    return (np.arange(n, dtype="int64") * 31 + version * 1_000_003 + lin * 7919 + 1).reshape(chunks)


def version_of(lin: int, chunk: np.ndarray) -> int:
    return (int(chunk.flat[0]) - lin * 7919 - 1) // 1_000_003


WRITER = textwrap.dedent(
    """
    import os, sys, time
    import zarrcore
    from tests.core.test_torn_chunks import version_data

    def write_forever(root, version):
        a = zarrcore.open_array(root, mode="r+")
        deadline = time.monotonic() + 20  # a writer nobody kills still ends
        while time.monotonic() < deadline:
            for lin, index in enumerate(a.chunk_indices()):
                data = version_data(lin, version)
                if version % 2:
                    a.write_chunk(index, data)
                else:  # the slicing path
                    a[tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, a.chunks))] = data
            a.attrs["version"] = version
            version += 1

    for line in sys.stdin:  # "<first version>" forks a writer, prints its pid, then its wait status
        pid = os.fork()
        if pid == 0:
            try:
                write_forever(sys.argv[1], int(line))
            finally:
                os._exit(0)
        print(pid, flush=True)
        print(os.waitpid(pid, 0)[1], flush=True)
    """
)


@pytest.fixture
def writer_host(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """The array, and the helper process that forks writers for it."""
    root = tmp_path / "a.zarr"
    raw = [{"name": "bytes", "configuration": {"endian": "little"}}]
    zarrcore.create(str(root), shape=SHAPE, chunks=CHUNKS, dtype="int64", codecs=raw)
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    ) as proc:
        try:
            yield proc, root
        finally:
            assert proc.stdin
            proc.stdin.close()  # the helper's loop ends with its input
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def check_every_chunk_is_complete(root: Path) -> set[int]:
    """Every stored chunk decodes to one complete version; returns the versions seen."""
    a = zarrcore.open_array(str(root))  # the metadata document must parse too
    versions = set()
    for lin, index in enumerate(a.chunk_indices()):
        raw = a.read_chunk_bytes(index)
        if raw is None:
            continue
        chunk = a.decode_chunk(index, raw)  # a ChunkError here is a torn chunk
        version = version_of(lin, chunk)
        np.testing.assert_array_equal(chunk, version_data(lin, version), err_msg=f"chunk {index} is not one version")
        versions.add(version)
    assert isinstance(a.attrs.get("version", 0), int)
    return versions


def test_sigkilled_writers_never_leave_torn_chunks(writer_host: tuple[subprocess.Popen[str], Path]) -> None:
    proc, root = writer_host
    assert proc.stdin and proc.stdout
    rng = random.Random(7)
    versions_seen: set[int] = set()
    for round_ in range(KILLS):
        proc.stdin.write(f"{round_ * VERSIONS_PER_ROUND + 1}\n")
        proc.stdin.flush()
        pid = int(proc.stdout.readline())
        # Most kills land during the first writes, some after a few full passes.
        time.sleep(rng.uniform(0.0, 0.02) if rng.random() < 0.6 else rng.uniform(0.02, 0.15))
        os.kill(pid, signal.SIGKILL)
        status = int(proc.stdout.readline())
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, "the writer ended before the kill"
        versions_seen |= check_every_chunk_is_complete(root)
    assert len({v // VERSIONS_PER_ROUND for v in versions_seen}) > KILLS // 10, "too few kills came after a write"
    # Killed writes may leave temporary files behind; they are never listed as keys.
    keys = set(zarrcore.open_array(str(root)).store.list())
    assert keys and not any(TMP_PREFIX in key for key in keys)
