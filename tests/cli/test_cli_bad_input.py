"""Every bad input gives one line on stderr naming the culprit: exit 2 when ``zarrflow`` refuses it before
any flow run exists (these run in this process and never start a Prefect server), exit 1 when a run, or
``info``, fails; ``-v`` adds the traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import zarrcore
from flows.cli import main as zarrflow

SYNTH = "synthetic:64x64:float32:1"

#: (id, arguments, exit status, what the one line must say). ``{d}`` is a fresh folder.
REFUSED = [
    ("missing-source", ["ingest", "{d}/missing.npy", "{d}/out.zarr"], "source '{d}/missing.npy': no such file"),
    ("chunks-zero", ["ingest", SYNTH, "{d}/out.zarr", "--chunks", "0,128"], "layout.chunks.0: Input should be greater"),
    ("chunks-abc", ["ingest", SYNTH, "{d}/out.zarr", "--chunks", "abc"], "--chunks expects integers"),
    ("chunks-negative", ["ingest", SYNTH, "{d}/out.zarr", "--chunks", "-5,128"], "layout.chunks.0: Input should be"),
    ("synthetic-shape", ["ingest", "synthetic:abc", "{d}/out.zarr"], "the shape 'abc' is not integers"),
    ("synthetic-seed", ["ingest", "synthetic:8x8:float32:x", "{d}/out.zarr"], "the seed 'x' is not an integer"),
    ("npz-without-key", ["ingest", "{d}/a.npz", "{d}/out.zarr"], "needs --key NAME"),
    ("memory-destination", ["ingest", SYNTH, "memory://x"], "destination 'memory://x': a memory:// store vanishes"),
    ("unknown-scheme", ["ingest", SYNTH, "bogus://b/x"], "destination 'bogus://b/x': unknown URL scheme"),
    ("credentials-in-url", ["ingest", SYNTH, "s3://AKIA:hunter2@b/x"], "destination (not shown: it may hold a secret)"),
    ("unknown-option", ["ingest", SYNTH, "{d}/out.zarr", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    ("missing-value", ["ingest", SYNTH, "{d}/out.zarr", "--chunks"], "argument --chunks: expected one argument"),
    ("fill-value", ["ingest", SYNTH, "{d}/out.zarr", "--fill-value", "nan"], "argument --fill-value: expected a JSON"),
    ("attributes", ["ingest", SYNTH, "{d}/out.zarr", "--attributes", "[1]"], "--attributes expects a JSON object"),
    ("option", ["ingest", SYNTH, "{d}/out.zarr", "--option", "region"], "--option expects NAME=VALUE, got 'region'"),
    ("workers-zero", ["ingest", SYNTH, "{d}/out.zarr", "--workers", "0"], "execution.max_workers: Input should be"),
    ("append-chunks", ["append", "{d}/*.nc", "{d}/ds.zarr", "--chunks", "time=abc"], "--chunks expects DIM=N"),
    ("append-region", ["append", "{d}/*.nc", "{d}/ds.zarr", "--region", "a,b"], "--region expects START,STOP,STEP"),
    ("info-memory", ["info", "memory://x"], "url 'memory://x': a memory:// store vanishes"),
    ("info-scheme", ["info", "bogus://x"], "url 'bogus://x': unknown URL scheme"),
    ("no-command", [], "the following arguments are required: command"),
]
#: ``info`` that finds nothing readable: exit 1.
INFO_FAILS = [
    ("info-missing-array", ["info", "{d}/a.zarr", "--path", "nope"], "NotFound: no Zarr array or group at"),
    ("info-bad-path", ["info", "{d}/a.zarr", "--path", "../x"], "InvalidKey: invalid key '../x/zarr.json'"),
    ("info-no-store", ["info", "{d}/nothing.zarr"], "NotFound: no Zarr array or group at file://{d}/nothing.zarr"),
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    np.savez(tmp_path / "a.npz", x=np.zeros(3))
    zarrcore.create(str(tmp_path / "a.zarr"), shape=(4,), chunks=(2,), dtype="int8")
    return tmp_path


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert not out and len(lines) == 1 and lines[0].startswith("error: "), f"stdout {out!r}, stderr {err!r}"
    return lines[0]


@pytest.mark.parametrize(("args", "says"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_before_any_run_with_one_line_and_status_2(folder: Path, args: list[str], says: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    argv = [a.format(d=folder) for a in args]
    assert zarrflow(argv) == 2
    line = _one_error_line(capsys)
    assert says.format(d=folder) in line, line
    assert "hunter2" not in line and "Traceback" not in line
    if "unknown URL scheme" in line:
        assert "s3://" in line and "memory" not in line  # the schemes offered: never memory://


@pytest.mark.parametrize(("args", "says"), [c[1:] for c in INFO_FAILS], ids=[c[0] for c in INFO_FAILS])
def test_info_on_nothing_readable_is_one_line_and_status_1(folder: Path, args: list[str], says: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    argv = [a.format(d=folder) for a in args]
    assert zarrflow(argv) == 1
    assert says.format(d=folder) in _one_error_line(capsys)
    assert zarrflow(["-v", *argv]) == 1  # -v: the traceback, then the same line
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and err.splitlines()[-1].startswith("error: ")


def test_verbose_refusal_shows_the_traceback(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert zarrflow(["ingest", "synthetic:abc", str(folder / "o.zarr"), "-v"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "UsageError" in err and err.splitlines()[-1].startswith("error: source")


def test_local_paths_are_absolute_in_the_parameters(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.cli_input import parse_source, store_url

    monkeypatch.chdir(folder)
    np.save(folder / "x.npy", np.zeros(2))
    assert parse_source("x.npy") == {"kind": "npy", "path": str(folder / "x.npy")}
    assert parse_source("a.zarr")["url"] == str(folder / "a.zarr")
    assert parse_source('{"kind": "npy", "path": "x.npy"}')["path"] == str(folder / "x.npy")
    assert store_url("out/d.zarr", "destination") == str(folder / "out" / "d.zarr")
    assert store_url("file://rel.zarr", "destination") == str(folder / "rel.zarr")
    assert store_url("s3://bucket/d.zarr", "destination") == "s3://bucket/d.zarr"  # not local: kept
