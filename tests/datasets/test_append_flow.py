"""The append flow against a real Prefect API: new files land once, in coordinate order, equal to
xarray's concatenation; reruns land nothing (planned again, every finished batch cached); a changed
file is refused naming it; the CLI and region mode."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import xarray as xr

from flows.append import append
from flows.cli import main as zarrflow
from flows.sources import SourceError
from tests.datasets.pieces import expected, opened
from tests.fixtures.flowkit import artifacts, run_flow, task_runs
from tests.fixtures.netcdf_files import write_netcdf, write_series
from zarrcore.datasets import open_dataset
from zarrcore.storage import LocalStore

pytestmark = pytest.mark.usefixtures("prefect_api")

FAST = {"max_workers": 2, "max_chunks_per_batch": 3, "retry_delay_seconds": 0.01}
LAYOUT = {"chunks": {"time": 5, "lat": 8, "lon": 16}}


@pytest.fixture
def raw(tmp_path: Path) -> list[Path]:
    # named in reverse time order: the flow must order by the time coordinate, not by name
    return write_series(tmp_path / "raw", "2001-01-01", files=6, steps=4, name="f-{reverse:02d}.nc")


def land(pattern: str, dest: Path, **params):
    state, run_id = run_flow(append, source=pattern, destination=str(dest), layout=params.pop("layout", LAYOUT),
                             execution=FAST, **params)  # fmt: skip
    return state, run_id


def unit_states(run_id) -> list[str]:
    return [r.state.name for r in task_runs(run_id, "write units")]  # type: ignore[union-attr]


def test_files_land_in_time_order_once_and_reruns_land_nothing(tmp_path: Path, raw: list[Path]) -> None:
    dest = tmp_path / "ds.zarr"
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for f in raw[:3]:
        shutil.copy(f, incoming / f.name)
    state, run_id = land(str(incoming / "*.nc"), dest)
    assert state.is_completed(), state.message
    xr.testing.assert_identical(opened(dest), expected(raw[:3]))
    summary = state.result()
    assert [Path(r["file"]).name for r in summary["landed"]] == [f.name for f in raw[:3]]
    assert summary["covered"] == ["2001-01-01T00:00:00", "2001-01-01T11:00:00"]
    table = artifacts(run_id, "append-files")[-1]
    assert "f-05.nc" in str(table.data)

    state, run_id = land(str(incoming / "*.nc"), dest)  # the schedule fires again: nothing new
    assert state.is_completed() and state.result()["landed"] == [] and state.result()["skipped"] == 3
    assert unit_states(run_id) == []

    for f in raw[3:]:
        shutil.copy(f, incoming / f.name)
    state, _ = land(str(incoming / "*.nc"), dest)
    assert state.is_completed(), state.message
    xr.testing.assert_identical(opened(dest), expected(raw))
    assert len(open_dataset(LocalStore(dest)).landed()) == 6


def test_a_failed_run_retried_redoes_only_what_did_not_finish(tmp_path: Path, raw: list[Path]) -> None:
    dest = tmp_path / "ds.zarr"
    victim = raw[4].name
    # a reader wrapper in front of the real files: reading one file fails in the write tasks (planning
    # is unaffected), as a file on a failing disk or share would
    from flows import append_tasks

    real = append_tasks.writing_piece

    def failing(url, *args):
        if url.endswith(victim):
            raise SourceError(f"injected: cannot read {victim}")
        return real(url, *args)

    append_tasks.writing_piece = failing  # type: ignore[assignment]
    try:
        state, run_id = land(str(tmp_path / "raw" / "*.nc"), dest)
    finally:
        append_tasks.writing_piece = real
    assert state.is_failed()
    assert "unit batches failed" in state.message and f"cannot read {victim}" in state.message
    first = unit_states(run_id)
    assert "Failed" in first and "Completed" in first
    assert opened(dest).sizes["time"] == 0  # nothing published
    state, run_id = land(str(tmp_path / "raw" / "*.nc"), dest)  # the rerun: same plan, same commit
    assert state.is_completed(), state.message
    second = unit_states(run_id)
    assert second.count("Cached") == first.count("Completed") and second.count("Completed") == first.count("Failed")
    xr.testing.assert_identical(opened(dest), expected(raw))


def test_a_landed_file_that_changed_fails_the_run_naming_it(tmp_path: Path, raw: list[Path]) -> None:
    dest = tmp_path / "ds.zarr"
    assert land(str(tmp_path / "raw" / "*.nc"), dest)[0].is_completed()
    original = [tmp_path / "kept" / f.name for f in raw]
    shutil.copytree(tmp_path / "raw", tmp_path / "kept")
    write_netcdf(raw[2], "2001-01-01T08", 4, seed=5)  # same name, other values
    state, _ = land(str(tmp_path / "raw" / "*.nc"), dest)
    assert state.is_failed() and raw[2].name in state.message and "changed" in state.message
    xr.testing.assert_identical(opened(dest), expected(original))


def test_cli_append_and_ingest_of_one_file(tmp_path: Path, raw: list[Path], capsys) -> None:
    dest = tmp_path / "cli.zarr"
    assert zarrflow(["ingest", str(raw[0]), str(dest), "--chunks", "time=4", "--workers", "2"]) == 0
    code = zarrflow(["append", str(tmp_path / "raw" / "f-0[0-4].nc"), str(dest), "--dim", "time",
                     "--variables", "t2m", "--chunks", "time=8"])  # fmt: skip
    assert code != 0  # the dataset holds every variable: a run that lands only t2m is refused
    err = capsys.readouterr().err
    assert "not in the dataset" in err or "missing" in err
    assert zarrflow(["append", str(tmp_path / "raw" / "*.nc"), str(dest)]) == 0
    xr.testing.assert_identical(opened(dest), expected(raw))
    assert "extent" in capsys.readouterr().out


def test_region_mode_lands_files_in_any_order(tmp_path: Path, raw: list[Path]) -> None:
    dest = tmp_path / "region.zarr"
    region = {"start": "2001-01-01T00", "stop": "2001-01-01T23", "step": "1h"}
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for f in (raw[3], raw[0]):  # a later file and the first
        shutil.copy(f, incoming / f.name)
    state, _ = land(str(incoming / "*.nc"), dest, layout={**LAYOUT, "region": region})
    assert state.is_completed(), state.message
    assert state.result()["missing"] == [[4, 12], [16, 24]]
    for f in raw:
        shutil.copy(f, incoming / f.name)
    state, _ = land(str(incoming / "*.nc"), dest)
    assert state.is_completed(), state.message
    assert state.result()["missing"] == []
    xr.testing.assert_identical(opened(dest), expected(raw))


def test_one_writer_per_dataset(tmp_path: Path, raw: list[Path]) -> None:
    import zarrcore
    from zarrcore.storage import LocalStore as Local

    dest = tmp_path / "busy.zarr"
    store = Local(dest)
    with zarrcore.claim_writer(store, "", owner="another-run", ttl=60):
        state, _ = land(str(tmp_path / "raw" / "*.nc"), dest)
        assert state.is_failed() and "another-run" in state.message and "WriterBusy" in state.message
        assert not (dest / "zarr.json").exists()  # nothing written before the claim
    assert zarrcore.current_writer(store, "") is None
    state, _ = land(str(tmp_path / "raw" / "*.nc"), dest)
    assert state.is_completed(), state.message
    assert zarrcore.current_writer(store, "") is None  # released at the end
    xr.testing.assert_identical(opened(dest), expected(raw))
