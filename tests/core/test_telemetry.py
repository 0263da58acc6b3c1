"""Telemetry: a start/stop pair for every chunk through every API, exception events on failure, stream
events, nothing built when nothing listens, and the OpenTelemetry bridge."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import zarrcore
import zarrcore.otel
from tests.fixtures.instrumented import InstrumentedStore
from zarrcore import telemetry
from zarrcore.errors import AccessDenied, ChunkError
from zarrcore.storage import LocalStore

Index = tuple[int, ...]


@dataclass
class Seen:
    event: tuple[str, ...]
    measurements: dict[str, Any]
    metadata: dict[str, Any]
    thread: int


class Recorder:
    def __init__(self) -> None:
        self.events: list[Seen] = []
        self._lock = threading.Lock()

    def __call__(self, event: tuple[str, ...], measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(Seen(event, measurements, metadata, threading.get_ident()))

    def take(self) -> list[Seen]:
        with self._lock:
            events, self.events = self.events, []
        return events


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    hid = telemetry.attach(("zarrcore",), rec)
    yield rec
    telemetry.detach(hid)


@pytest.fixture
def arr(tmp_path: Path) -> zarrcore.Array:
    a = zarrcore.create(LocalStore(tmp_path / "a"), shape=(20, 15), chunks=(8, 4), dtype="int32", fill_value=0)
    a[...] = np.arange(300, dtype="int32").reshape(20, 15) + 1
    a[16:20, 12:15] = 0  # one chunk holds only the fill value: not stored
    return a


def pairs(events: list[Seen], op: str) -> Counter[Index]:
    """Chunk indices of ``op`` events, checking each start has exactly one stop in the same thread."""
    open_: dict[tuple[int, Index], int] = Counter()
    done: Counter[Index] = Counter()
    for e in events:
        if e.event[:3] != ("zarrcore", "chunk", op):
            continue
        key = (e.thread, e.metadata["index"])
        if e.event[3] == "start":
            open_[key] += 1
        else:
            assert e.event[3] == "stop", e
            assert open_[key] == 1, f"{e.event} without a start for {key}"
            open_[key] -= 1
            done[e.metadata["index"]] += 1
    assert not +Counter(open_), "a start without a stop"
    return done


ALL = object()


@pytest.mark.parametrize(
    "name, read, expected",
    [
        ("slice everything", lambda a: a[...], ALL),
        ("slice a part", lambda a: a[9:17, 3], {(1, 0), (2, 0)}),
        ("one element", lambda a: a[19, 14], {(2, 3)}),
        ("read_chunk", lambda a: a.read_chunk((1, 2)), {(1, 2)}),
        ("load_chunk", lambda a: a.load_chunk((2, 3)), {(2, 3)}),
        ("np.asarray", lambda a: np.asarray(a), ALL),
        ("stream", lambda a: list(a.stream_chunks(concurrency=3)), ALL),
        ("stream ordered with missing", lambda a: list(a.stream_chunks(ordered=True, include_missing=True)), ALL),
        ("stream filtered", lambda a: list(a.stream_chunks(filter=lambda i: i[1] == 1)), {(0, 1), (1, 1), (2, 1)}),
    ],
)
def test_every_chunk_read_has_one_start_and_one_stop(
    arr: zarrcore.Array, recorder: Recorder, name: str, read: Callable[[zarrcore.Array], Any], expected: Any
) -> None:
    read(arr)
    events = recorder.take()
    want = set(arr.chunk_indices()) if expected is ALL else expected
    assert pairs(events, "read") == Counter(want)
    assert pairs(events, "write") == Counter()
    for e in events:
        if e.event == ("zarrcore", "chunk", "read", "stop"):
            md, m = e.metadata, e.measurements
            assert md["array"] == arr.url and md["key"] == arr.chunk_key(md["index"])
            assert m["duration"] >= 0
            if md["stored"]:
                assert m["encoded_bytes"] == arr.store.size(md["key"]) and m["decoded_bytes"] == 8 * 4 * 4
            else:
                assert md["index"] == (2, 3) and m["encoded_bytes"] == 0


LAST_ROW = {(2, 0), (2, 1), (2, 2), (2, 3)}


def ones(a: zarrcore.Array, index: Index) -> np.ndarray:
    region = a.chunk_region(index)
    return np.ones(tuple(s.stop - s.start for s in region), "int32")


@pytest.mark.parametrize(
    "name, write, expected_writes, expected_reads",
    [
        ("assign everything", lambda a: a.__setitem__(Ellipsis, 5), ALL, set()),
        ("assign whole chunks", lambda a: a.__setitem__((slice(0, 8), slice(0, 8)), 5), {(0, 0), (0, 1)}, set()),
        ("assign a part", lambda a: a.__setitem__((slice(7, 9), 5), 9), {(0, 1), (1, 1)}, {(0, 1), (1, 1)}),
        ("write_chunk", lambda a: a.write_chunk((1, 1), np.ones((8, 4), "int32")), {(1, 1)}, set()),
        ("write_chunk_bytes", lambda a: a.write_chunk_bytes((0, 0), None), {(0, 0)}, set()),
        ("write_stream", lambda a: a.write_stream((i, ones(a, i)) for i in a.chunk_indices()), ALL, set()),
        ("append", lambda a: a.append(np.ones((4, 15), "int32")), LAST_ROW, LAST_ROW),
    ],
)
def test_every_chunk_write_has_one_start_and_one_stop(
    arr: zarrcore.Array, recorder: Recorder, name: str, write: Callable[[zarrcore.Array], Any],
    expected_writes: Any, expected_reads: set[Index],
) -> None:  # fmt: skip
    recorder.take()
    write(arr)
    events = recorder.take()
    want = set(arr.chunk_indices()) if expected_writes is ALL else expected_writes
    assert pairs(events, "write") == Counter(want)
    assert set(pairs(events, "read")) == expected_reads
    for e in events:
        if e.event == ("zarrcore", "chunk", "write", "stop"):
            md, m = e.metadata, e.measurements
            stored = arr.store.exists(md["key"])
            assert md["stored"] is stored
            assert m["encoded_bytes"] == (arr.store.size(md["key"]) if stored else 0)


def test_a_failed_read_emits_an_exception_event(arr: zarrcore.Array, recorder: Recorder) -> None:
    bad = (1, 2)
    failing = zarrcore.open_array(InstrumentedStore(arr.store, fail={arr.chunk_key(bad): AccessDenied("403")}))
    recorder.take()
    with pytest.raises(AccessDenied):
        failing[8:16, 8:12]  # the slice covers the failing chunk only (so no other read outlives the error)
    events = recorder.take()
    exceptions = [e for e in events if e.event == ("zarrcore", "chunk", "read", "exception")]
    assert [e.metadata["index"] for e in exceptions] == [bad]
    assert isinstance(exceptions[0].metadata["error"], AccessDenied) and exceptions[0].measurements["duration"] >= 0
    assert exceptions[0].metadata["key"] == arr.chunk_key(bad)
    starts = Counter(e.metadata["index"] for e in events if e.event[-1] == "start")
    ends = Counter(e.metadata["index"] for e in events if e.event[-1] in ("stop", "exception"))
    assert starts == ends  # every chunk started also ended, the failed one with an exception

    failing.stream_chunks(on_error="skip")  # nothing happens until iterated
    assert recorder.take() == []
    assert len(list(failing.stream_chunks(on_error="skip"))) == arr.nchunks - 2  # the failed and the empty one
    events = recorder.take()
    assert [e.metadata["index"] for e in events if e.event[-1] == "exception"] == [bad]
    stop = [e for e in events if e.event == ("zarrcore", "stream", "stop")]
    assert stop[0].measurements["failed"] == 1 and "error" not in stop[0].metadata


def test_a_failed_write_emits_an_exception_event(arr: zarrcore.Array, recorder: Recorder) -> None:
    bad = (0, 3)
    store = InstrumentedStore(arr.store, fail={arr.chunk_key(bad): AccessDenied("403")})
    failing = zarrcore.open_array(store, mode="r+")
    recorder.take()
    with pytest.raises(AccessDenied):
        failing.write_chunk(bad, np.ones((8, 3), "int32"))
    with pytest.raises(ChunkError):
        failing.write_stream([((0, 0), np.ones((8, 4), "int32")), (bad, np.ones((8, 3), "int32"))])
    events = recorder.take()
    exceptions = [e for e in events if e.event == ("zarrcore", "chunk", "write", "exception")]
    assert [e.metadata["index"] for e in exceptions] == [bad, bad]
    assert pairs([e for e in events if e.metadata.get("index") != bad], "write") == Counter({(0, 0): 1})
    stop = [e for e in events if e.event == ("zarrcore", "stream", "stop")]
    assert stop[0].measurements["written"] == 1 and stop[0].measurements["failed"] == 1
    assert isinstance(stop[0].metadata["error"], ChunkError)


def test_stream_events_carry_counts(arr: zarrcore.Array, recorder: Recorder) -> None:
    recorder.take()
    list(arr.stream_chunks(filter=lambda i: i != (0, 0)))
    summary = arr.write_stream([((0, 0), np.ones((8, 4), "int32")), ((2, 3), np.zeros((4, 3), "int32"))])
    streams = [e for e in recorder.take() if e.event[1] == "stream"]
    assert [e.event[2] for e in streams] == ["start", "stop", "start", "stop"]
    read_start, read_stop, write_start, write_stop = streams
    assert read_start.metadata["op"] == "read" and read_start.metadata["array"] == arr.url
    assert read_stop.metadata["stream_id"] == read_start.metadata["stream_id"]
    m = read_stop.measurements
    assert (m["yielded"], m["skipped"], m["filtered"], m["missing"], m["failed"]) == (arr.nchunks - 2, 2, 1, 1, 0)
    assert m["bytes"] == sum(arr.read_chunk(i).nbytes for i in arr.chunk_indices() if i not in {(0, 0), (2, 3)})
    w = write_stop.measurements
    assert (w["written"], w["skipped"], w["failed"], w["bytes"]) == (1, 1, 0, summary.bytes)
    assert write_start.metadata["stream_id"] != read_start.metadata["stream_id"]


class Watched(dict[str, Any]):
    """A mapping that notes every read or copy of it."""

    def __init__(self, touched: list[str]) -> None:
        super().__init__(a=1)
        self.touched = touched

    def keys(self) -> Any:
        self.touched.append("keys")
        return super().keys()

    def __iter__(self) -> Iterator[str]:
        self.touched.append("iter")
        return super().__iter__()

    def __getitem__(self, key: str) -> Any:
        self.touched.append("getitem")
        return super().__getitem__(key)


def test_with_nothing_attached_nothing_is_built() -> None:
    assert telemetry.handlers() == [] and not telemetry.enabled()
    touched: list[str] = []
    telemetry.emit(("zarrcore", "chunk", "read", "start"), Watched(touched), Watched(touched))
    with telemetry.span(("zarrcore", "chunk", "read"), Watched(touched)) as m:
        assert m == {}
    assert touched == []  # no copy, no lookup: one flag check and out
    got: list[Any] = []
    hid = telemetry.attach(("zarrcore",), lambda e, m, md: got.append(md))
    try:
        assert telemetry.enabled() and telemetry.handlers() == [(hid, ("zarrcore",))]
        telemetry.emit(("zarrcore", "x"), Watched(touched), Watched(touched))
        assert touched and got == [{"a": 1}]  # the control: with a handler the event is built
    finally:
        assert telemetry.detach(hid)
    assert not telemetry.enabled() and telemetry.handlers() == []
    assert not telemetry.detach(hid)


def test_prefixes_select_events_and_a_broken_handler_breaks_nothing(arr: zarrcore.Array) -> None:
    writes: list[tuple[str, ...]] = []
    ids = [
        telemetry.attach(("zarrcore", "chunk", "write"), lambda e, m, md: writes.append(e)),
        telemetry.attach(("zarrcore",), lambda e, m, md: 1 / 0),
    ]
    try:
        np.testing.assert_array_equal(arr.read_chunk((0, 0)), np.arange(300).reshape(20, 15)[:8, :4] + 1)
        arr.write_chunk((0, 0), np.ones((8, 4), "int32"))
    finally:
        for hid in ids:
            telemetry.detach(hid)
    assert writes == [("zarrcore", "chunk", "write", "start"), ("zarrcore", "chunk", "write", "stop")]


# ------------------------------------------------------------------------------------ OpenTelemetry


@pytest.fixture
def spans() -> Iterator[Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    exporter.provider = provider
    handle = zarrcore.otel.instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        zarrcore.otel.uninstrument(handle)
        provider.shutdown()


def test_chunk_events_become_spans(arr: zarrcore.Array, spans: Any) -> None:
    from opentelemetry.trace import SpanKind, StatusCode

    arr.read_chunk((1, 2))
    arr.write_chunk((0, 1), np.ones((8, 4), "int32"))
    read, write = spans.get_finished_spans()
    assert read.name == "zarrcore.chunk.read" and write.name == "zarrcore.chunk.write"
    assert read.kind == SpanKind.CLIENT and read.status.status_code == StatusCode.UNSET
    assert dict(read.attributes) == {
        "zarrcore.array": arr.url,
        "zarrcore.store": arr.store.url,
        "zarrcore.chunk.key": arr.chunk_key((1, 2)),
        "zarrcore.chunk.index": (1, 2),
        "zarrcore.chunk.encoded_bytes": arr.store.size(arr.chunk_key((1, 2))),
        "zarrcore.chunk.decoded_bytes": 128,
        "zarrcore.chunk.stored": True,
    }
    assert write.attributes["zarrcore.chunk.encoded_bytes"] == arr.store.size(arr.chunk_key((0, 1)))


def test_a_failed_chunk_is_an_error_span(arr: zarrcore.Array, spans: Any) -> None:
    from opentelemetry.trace import StatusCode

    bad = (2, 0)
    failing = zarrcore.open_array(InstrumentedStore(arr.store, fail={arr.chunk_key(bad): AccessDenied("403")}))
    with pytest.raises(AccessDenied):
        failing.read_chunk(bad)
    (span,) = [s for s in spans.get_finished_spans() if s.name == "zarrcore.chunk.read"]
    assert span.status.status_code == StatusCode.ERROR and "AccessDenied" in span.status.description
    assert span.attributes["zarrcore.chunk.index"] == bad
    assert [e.name for e in span.events] == ["exception"]


def test_a_stream_is_a_root_span_with_its_chunks_below(arr: zarrcore.Array, spans: Any) -> None:
    tracer = spans.provider.get_tracer("test")
    with tracer.start_as_current_span("caller") as caller:
        n = sum(1 for _ in arr.stream_chunks(concurrency=3))
        arr.read_chunk((0, 0))  # outside streams, chunk spans are children of the current span
    finished = spans.get_finished_spans()
    (stream,) = [s for s in finished if s.name == "zarrcore.stream.read"]
    (direct,) = [s for s in finished if s.name == "zarrcore.chunk.read" and s.parent.span_id != stream.context.span_id]
    assert direct.parent.span_id == caller.get_span_context().span_id
    chunks = [s for s in finished if s.name == "zarrcore.chunk.read" and s is not direct]
    assert stream.parent is None
    assert stream.attributes["zarrcore.stream.yielded"] == n == arr.nchunks - 1
    assert stream.attributes["zarrcore.stream.concurrency"] == 3
    assert len(chunks) == arr.nchunks
    assert all(c.parent is not None and c.parent.span_id == stream.context.span_id for c in chunks)
    assert all(c.context.trace_id == stream.context.trace_id for c in chunks)


def test_a_failed_stream_is_an_error_span_and_uninstrument_stops_spans(arr: zarrcore.Array, spans: Any) -> None:
    from opentelemetry.trace import StatusCode

    with pytest.raises(ChunkError):
        arr.write_stream([((0, 0), np.ones((3, 3), "int32"))])
    (stream,) = [s for s in spans.get_finished_spans() if s.name == "zarrcore.stream.write"]
    assert stream.status.status_code == StatusCode.ERROR and stream.attributes["zarrcore.stream.failed"] == 1
    before = len(telemetry.handlers())
    handle = zarrcore.otel.instrument()
    assert len(telemetry.handlers()) == before + 1
    zarrcore.otel.uninstrument(handle)
    assert len(telemetry.handlers()) == before
