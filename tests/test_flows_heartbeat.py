"""Flow-run heartbeats of in-process calls: the same events Prefect's engine would send, from a thread
that stops with the run; the engine's own heartbeat is off for that call only."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings, temporary_settings

import zarrcore
from flows.copy import copy_array
from flows.heartbeat import THREAD_NAME, HeartbeatFlow
from flows.ingest import ingest
from flows.verify import verify
from tests.fixtures.flowkit import run_flow
from tests.fixtures.prefect import prefect_api  # noqa: F401  (the session's one Prefect server)
from zarrcore import telemetry

pytestmark = pytest.mark.usefixtures("prefect_api")

SOURCE = {"kind": "synthetic", "shape": [40, 30], "dtype": "int16", "seed": 3}
HEARTBEAT = "prefect.flow-run.heartbeat"


def _events(name: str, resource_id: str) -> list[Any]:
    with get_client(sync_client=True) as client:
        page = client.read_events(EventFilter(event=EventNameFilter(name=[name]),
                                              resource=EventResourceFilter(id=[resource_id])), limit=50)  # fmt: skip
    return list(page.events)


def _heartbeats_after_sync(*flow_runs: UUID) -> dict[UUID, int]:
    """Heartbeat events stored for each flow run, read once a marker sent after them is stored too."""
    EventsWorker.drain_all()
    marker = f"zarrflow.test.marker.{uuid.uuid4()}"
    emit_event(event="zarrflow.test.marker", resource={"prefect.resource.id": marker})
    EventsWorker.drain_all()
    deadline = time.monotonic() + 30
    while not _events("zarrflow.test.marker", marker):
        assert time.monotonic() < deadline, "the Prefect API never stored the marker event"
        time.sleep(0.2)
    return {run: len(_events(HEARTBEAT, f"prefect.flow-run.{run}")) for run in flow_runs}


def _heartbeat_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def test_every_flow_is_a_heartbeat_flow_and_options_keep_it() -> None:
    for flow_ in (ingest, verify, copy_array):
        assert isinstance(flow_, HeartbeatFlow)
        assert isinstance(flow_.with_options(name=f"{flow_.name}-renamed"), HeartbeatFlow)


def test_in_process_run_sends_exactly_its_own_heartbeat_and_stops_it(tmp_path: Path) -> None:
    before = get_current_settings().flows.heartbeat_frequency
    assert before is not None  # Prefect's default: on
    inside: list[tuple[int, Any]] = []  # (heartbeat threads alive, engine setting) at each chunk write

    def look(event: tuple[str, ...], measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
        inside.append((len(_heartbeat_threads()), get_current_settings().flows.heartbeat_frequency))

    dest = str(tmp_path / "hb.zarr")
    handler = telemetry.attach(("zarrcore", "chunk", "write", "stop"), look)
    try:
        state, run_id = run_flow(ingest, source=SOURCE, destination=dest, array="a", layout={"chunks": [16, 16]})
    finally:
        telemetry.detach(handler)
    assert state.is_completed(), state.message
    state2, run_id2 = run_flow(verify, destination=dest, array="a")
    assert state2.is_completed(), state2.message

    # While the run wrote, one heartbeat thread of ours was alive and the engine's was switched off;
    # afterwards the setting is back and no heartbeat thread outlives its run.
    assert inside and set(inside) == {(1, None)}
    assert get_current_settings().flows.heartbeat_frequency == before
    assert _heartbeat_threads() == []
    # One heartbeat per run (the first goes out at once, the next would be 30+ s later): had the
    # engine's thread run as well, each run would have two.
    assert _heartbeats_after_sync(run_id, run_id2) == {run_id: 1, run_id2: 1}
    assert zarrcore.open_array(dest, path="a").shape == (40, 30)


def test_heartbeats_switched_off_send_none(tmp_path: Path) -> None:
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        state, run_id = run_flow(ingest, source=SOURCE, destination=str(tmp_path / "off.zarr"), array="a")
    assert state.is_completed(), state.message
    assert _heartbeat_threads() == []
    assert _heartbeats_after_sync(run_id) == {run_id: 0}


def test_a_failing_run_stops_its_heartbeat_too(tmp_path: Path) -> None:
    dest = str(tmp_path / "fail.zarr")
    zarrcore.create(dest, path="a", shape=(5,), chunks=(5,), dtype="uint8")  # a different array is there
    state, run_id = run_flow(ingest, source=SOURCE, destination=dest, array="a")
    assert state.is_failed()
    assert _heartbeat_threads() == []
    assert _heartbeats_after_sync(run_id) == {run_id: 1}
    assert zarrcore.open_array(dest, path="a").shape == (5,)  # nothing of the failed run landed
