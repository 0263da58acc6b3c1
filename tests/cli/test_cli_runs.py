"""``zarrflow`` runs as a user sees them: ``info`` without Prefect, a failed run's one-line error and the
retry command it prints (which works as printed, from another folder), and a successful run on Prefect's
embedded server that ends quietly and leaves no task run unfinished in its database."""

from __future__ import annotations

import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zarrcore
from flows.cli import main as zarrflow
from tests.fixtures.paths import REPO

#: Prefect's console lines at ERROR and above, and Python's tracebacks.
NOISE = re.compile(r"^.*(\| ERROR|\| CRITICAL|Traceback \(most recent call last\)).*$", re.M)


def noise(text: str) -> list[str]:
    return NOISE.findall(text)


def test_the_noise_check_finds_an_error_line() -> None:  # the positive control of the quiet-run test
    sample = "ok\n01:28:18.979 | ERROR   | prefect.server.services.task_run_recorder - Error flushing 1 events\n"
    assert noise(sample) and noise("Traceback (most recent call last):\n  x") and not noise("ingest completed\n")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "PYTHONPATH": str(REPO), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **extra}


def test_info_never_imports_or_starts_prefect(tmp_path: Path) -> None:
    a = zarrcore.create(str(tmp_path / "a.zarr"), path="t", shape=(8, 8), chunks=(4, 4), dtype="int16")
    a[:] = 1
    code = (
        "import sys\nfrom flows.cli import main\n"
        f"rc = main(['info', {str(tmp_path / 'a.zarr')!r}, '--path', 't'])\n"
        "print(rc, 'prefect' in sys.modules, 'flows.console' in sys.modules)\n"
    )
    env = _env(PREFECT_API_URL="http://127.0.0.1:9/api")  # nothing listens there
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "shape                : (8, 8)" in done.stdout and "chunks stored        : 4 of 4" in done.stdout
    assert done.stdout.splitlines()[-1] == "0 False True", done.stdout
    assert "prefect" in sys.modules  # the control: the name the check looks for is Prefect's (imported here)


@pytest.mark.usefixtures("prefect_api")
def test_a_run_refused_by_its_data_fails_on_one_line_without_a_retry_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = str(tmp_path / "d.zarr")
    assert zarrflow(["ingest", "synthetic:32x32:int8:1", dest, "--chunks", "16,16"]) == 0
    capsys.readouterr()
    assert zarrflow(["ingest", "synthetic:32x32:int8:1", dest, "--chunks", "8,8"]) == 1
    out, err = capsys.readouterr()
    (line,) = err.splitlines()
    assert re.match(r"error: ingest failed \(flow run [0-9a-f-]{36}\): MetadataConflictError: ", line), line
    assert "pass --overwrite to replace it" in line and "overwrite=True" not in line
    assert "Retry" not in out + err  # a retry with the same parameters meets the same conflict


@pytest.mark.usefixtures("prefect_api")
def test_a_failed_run_prints_a_retry_that_works_as_printed_from_another_folder(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    here, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    here.mkdir(), elsewhere.mkdir()
    data = np.arange(64 * 48, dtype="int32").reshape(64, 48)
    src = zarrcore.create(str(here / "src.zarr"), shape=data.shape, chunks=(16, 16), dtype="int32")
    src[:] = data
    chunk = here / "src.zarr" / "c" / "2" / "1"
    good = chunk.read_bytes()
    chunk.write_bytes(b"not zstd")  # one source chunk unreadable: its batch fails, the others land
    env = _env(PREFECT_API_URL=str(PREFECT_API_URL.value()), COLUMNS="80")
    failed = subprocess.run([sys.executable, "-m", "flows.cli", "ingest", "src.zarr", "out.zarr",
                             "--max-chunks-per-batch", "4"], cwd=here, env=env, capture_output=True, text=True,
                            timeout=180)  # fmt: skip
    assert failed.returncode == 1, failed.stdout + failed.stderr
    error, hint = failed.stderr.splitlines()  # one line each, whatever the width
    assert error.startswith("error: ingest failed (flow run ") and "1 of 3 chunk batches failed" in error
    assert "CodecError" in error and not noise(failed.stdout + failed.stderr)
    command = hint.removeprefix("Retry only what failed with: ")
    assert command != hint and "--entrypoint flows.ingest.ingest" in command

    chunk.write_bytes(good)  # the cause fixed
    retried = subprocess.run(shlex.split(command), cwd=elsewhere, env=env, capture_output=True, text=True,
                             timeout=180)  # fmt: skip
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "completed successfully" in retried.stdout
    np.testing.assert_array_equal(zarrcore.open_array(str(here / "out.zarr"), path="data")[:], data)
    assert not (elsewhere / "out.zarr").exists() and not (elsewhere / "src.zarr").exists()


def test_a_run_with_many_batches_on_the_embedded_server_ends_quietly(tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"
    env = _env(PREFECT_HOME=str(home))  # no PREFECT_API_URL: Prefect's embedded server, started for the run
    done = subprocess.run([sys.executable, "-m", "flows.cli", "ingest", "synthetic:512x512:float32:3", "mid.zarr",
                           "--chunks", "32,32", "--max-chunks-per-batch", "4"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert not noise(done.stdout + done.stderr) and not done.stderr.strip(), done.stderr
    assert "ingest completed (flow run " in done.stdout and "64/64" in done.stdout  # 256 chunks in 64 batches
    with sqlite3.connect(home / "prefect.db") as db:  # what the server recorded before it was stopped
        states = dict(db.execute("select state_type, count(*) from task_run group by state_type").fetchall())
    assert states.get("COMPLETED", 0) >= 64 and set(states) == {"COMPLETED"}, states


@pytest.mark.usefixtures("prefect_api")
def test_a_rerun_of_the_demo_ingest_puts_neither_root_metadata_nor_manifest(tmp_path: Path) -> None:
    from flows.demo import DEMO_EXECUTION, DEMO_LAYOUT, DEMO_SOURCE
    from flows.ingest import ingest
    from tests.fixtures.faultstore import write_plan

    root, journal = tmp_path / "demo.zarr", tmp_path / "puts.log"
    write_plan(root, journal=str(journal))  # every successful PUT, one line each
    params = {"source": DEMO_SOURCE, "destination": f"faulty://{root}", "array": "synthetic",
              "layout": DEMO_LAYOUT, "execution": DEMO_EXECUTION}  # fmt: skip
    watched = {"zarr.json", "synthetic/.zarrcore/manifest.json"}
    assert ingest(**params)["targets"][0]["chunks_written"] == 64
    first = journal.read_text().splitlines()
    assert watched <= set(first)  # the control: the journal sees these PUTs when they happen
    journal.write_text("")
    again = ingest(**params)["targets"][0]
    assert again["batches_cached"] == again["batches"]
    assert not watched & set(journal.read_text().splitlines()), journal.read_text()
    assert json.loads((root / "zarr.json").read_text())["consolidated_metadata"]["metadata"]["synthetic"]
