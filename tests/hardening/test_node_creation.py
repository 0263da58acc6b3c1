"""Creating a node is exclusive and resumable, with real processes on a real local store: a process
killed after any metadata PUT leaves no half node that readers see, and a plain rerun finishes it;
two processes creating different nodes at one path (any kinds, any formats) give exactly one winner
and a typed error for the other."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zarr

import zarrcore
from tests.fixtures.paths import REPO
from zarrcore.nodes import intent_key

CREATE = """
import json, os, sys
import zarrcore
from zarrcore.storage import LocalStore

root, spec, limit = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
puts = 0

class DyingStore(LocalStore):
    '''A real local store whose process dies (SIGKILL-like, no cleanup) before its put number `limit`.'''
    def put(self, key, data, *, mode="overwrite"):
        global puts
        if puts == limit:
            os._exit(9)
        puts += 1
        super().put(key, data, mode=mode)

store = DyingStore(root)
if spec["kind"] == "array":
    zarrcore.create(store, path=spec["path"], shape=(4, 6), chunks=(2, 3), dtype="i4", zarr_format=spec["format"],
                    attributes={"units": "m", "long_name": "depth"})
else:
    zarrcore.create_group(store, path=spec["path"], zarr_format=spec["format"], attributes={"title": "t"})
print(puts)
"""

KINDS = [
    {"kind": "array", "format": 2, "path": "a"},
    {"kind": "group", "format": 2, "path": "g"},
    {"kind": "array", "format": 3, "path": "a"},
    {"kind": "array", "format": 2, "path": "g/sub/a"},  # its parent groups are created too
]


def create(root: Path, spec: dict[str, Any], limit: int = -1) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CREATE, str(root), json.dumps(spec), str(limit)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(REPO)})  # fmt: skip


def seen_by_zarr_python(root: Path, spec: dict[str, Any]) -> dict[str, Any] | None:
    """The node's attributes as zarr-python reads them, or None when it sees no node there."""
    try:
        node = zarr.open(str(root), mode="r", path=spec["path"], zarr_format=spec["format"])
    except (FileNotFoundError, KeyError, ValueError, zarr.errors.NodeTypeValidationError):
        return None
    return dict(node.attrs)


@pytest.mark.parametrize("spec", KINDS, ids=lambda s: f"v{s['format']}-{s['kind']}-{s['path'].replace('/', '.')}")
def test_a_creation_killed_after_any_put_is_invisible_then_finished_by_a_rerun(
    tmp_path: Path, spec: dict[str, Any]
) -> None:
    whole = create(tmp_path / "whole", spec)
    assert whole.returncode == 0, whole.stderr
    total = int(whole.stdout)
    wanted = seen_by_zarr_python(tmp_path / "whole", spec)
    assert wanted, "the complete node has attributes"
    assert not (tmp_path / "whole" / intent_key(spec["path"])).exists()  # no intent left once created
    for limit in range(total):
        root = tmp_path / f"cut-{limit}"
        died = create(root, spec, limit)
        assert died.returncode == 9, died.stderr
        assert seen_by_zarr_python(root, spec) in (None, wanted), f"a half node is visible after {limit} puts"
        rerun = create(root, spec)
        assert rerun.returncode == 0, f"after {limit} puts the rerun failed: {rerun.stderr[-2000:]}"
        assert seen_by_zarr_python(root, spec) == wanted
        assert not (root / intent_key(spec["path"])).exists()


RACER = """
import json, sys
import zarrcore
from zarrcore.errors import ZarrcoreError

store = zarrcore.open_store(sys.argv[1])
spec = json.loads(sys.argv[2])
print("ready", flush=True)
for line in sys.stdin:
    path = line.strip()
    try:
        if spec["kind"] == "array":
            zarrcore.create(store, path=path, shape=(4,), chunks=(2,), dtype="i4", zarr_format=spec["format"])
        else:
            zarrcore.create_group(store, path=path, zarr_format=spec["format"])
        print(json.dumps({"won": path}), flush=True)
    except ZarrcoreError as exc:
        print(json.dumps({"lost": type(exc).__name__, "message": str(exc)}), flush=True)
    except Exception as exc:
        print(json.dumps({"untyped": repr(exc)}), flush=True)
"""


@pytest.fixture
def racers(tmp_path: Path) -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def start(spec: dict[str, Any]) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path / "store"), json.dumps(spec)], cwd=REPO,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={"PYTHONPATH": str(REPO)})  # fmt: skip
        started.append(proc)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()  # type: ignore[union-attr]
        return proc

    yield start
    for proc in started:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(30)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "first,second",
    [({"kind": "array", "format": 2}, {"kind": "group", "format": 2}),
     ({"kind": "array", "format": 2}, {"kind": "array", "format": 3}),
     ({"kind": "group", "format": 2}, {"kind": "group", "format": 3})],
    ids=["v2-array-v2-group", "v2-array-v3-array", "v2-group-v3-group"],
)  # fmt: skip
def test_racing_creators_of_different_nodes_give_exactly_one_winner(tmp_path: Path, racers: Any,
                                                                    first: dict, second: dict) -> None:  # fmt: skip
    a, b = racers(first), racers(second)
    wins = {"first": 0, "second": 0}
    for n in range(30):
        path = f"n{n}"
        for proc in (a, b):
            proc.stdin.write(path + "\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
        results = [json.loads(proc.stdout.readline()) for proc in (a, b)]  # type: ignore[union-attr]
        won = [r for r in results if "won" in r]
        assert len(won) == 1, (path, results)
        loser = next(r for r in results if "won" not in r)
        assert loser.get("lost") == "MetadataConflictError", (path, results)
        winner, spec = ("first", first) if "won" in results[0] else ("second", second)
        wins[winner] += 1
        node = zarrcore.open(str(tmp_path / "store"), path=path)
        assert node.zarr_format == spec["format"] and isinstance(node, zarrcore.Array) == (spec["kind"] == "array")
    assert sum(wins.values()) == 30
