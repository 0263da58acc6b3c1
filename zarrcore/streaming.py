"""Streaming chunk I/O: many chunks read or written with bounded concurrency.

:func:`stream_chunks` yields ``(index, data)`` for the chunks of an array and :func:`write_stream`
writes ``(index, data)`` pairs from any iterable. Both keep at most ``concurrency`` chunks in flight
*or* waiting to be taken, so memory is bounded by ``concurrency x chunk size`` whatever the array's
size, and a slow consumer (or a slow source) simply slows the stream down.

Each chunk runs on a worker thread of the stream's own. A chunk that overruns ``timeout`` is reported
as a :class:`~zarrcore.errors.ChunkError` whose cause is a :class:`TimeoutError`; its thread is left to
finish on its own (Python cannot stop a thread) and a new one takes its place, so one stalled request
never holds the rest of the stream. Give the store its own request timeouts as well, so that the
abandoned request ends too.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from zarrcore import retry as _retry
from zarrcore import telemetry
from zarrcore.errors import ChunkError

if TYPE_CHECKING:
    from zarrcore.array import Array

__all__ = [
    "ChunkIndex",
    "ChunkStream",
    "OnError",
    "ReadSummary",
    "WriteSummary",
    "current_stream_id",
    "stream_chunks",
    "write_stream",
]

ChunkIndex = tuple[int, ...]
#: ``"raise"``, ``"skip"``, or a callable told ``(index, ChunkError)`` after which the stream goes on.
OnError = Literal["raise", "skip"] | Callable[[ChunkIndex, ChunkError], Any]

_stream_ids = itertools.count(1)
_END = object()
_local = threading.local()


def current_stream_id() -> int | None:
    """The id of the stream whose chunk this thread is working on (``None`` outside streams)."""
    return getattr(_local, "stream_id", None)


# ------------------------------------------------------------------------------------- the window


class _Task:
    __slots__ = ("abandoned", "cancelled", "error", "finished", "fn", "index", "seq", "started", "value")

    def __init__(self, seq: int, index: ChunkIndex, fn: Callable[[], Any]) -> None:
        self.seq = seq
        self.index = index
        self.fn = fn
        self.started: float | None = None
        self.finished = False
        self.abandoned = False
        self.cancelled = False
        self.value: Any = None
        self.error: BaseException | None = None


class _Window:
    """At most ``size`` tasks outstanding (running or finished but not yet taken), on worker threads
    that belong to this window. A task that overruns ``timeout`` is abandoned and its thread replaced."""

    def __init__(self, size: int, *, ordered: bool, timeout: float | None, stream_id: int) -> None:
        self.size = size
        self.ordered = ordered
        self.timeout = timeout
        self.stream_id = stream_id
        self._cond = threading.Condition()
        self._queue: deque[_Task | None] = deque()
        self._pending: deque[_Task] = deque()  # submission order
        self._done: deque[_Task] = deque()  # completion order (unordered mode)
        self._threads = 0  # workers not abandoned
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._pending)

    def has_room(self) -> bool:
        return len(self._pending) < self.size

    def submit(self, index: ChunkIndex, fn: Callable[[], Any]) -> _Task:
        task = _Task(next(self._seq), index, fn)
        with self._cond:
            self._pending.append(task)
            self._queue.append(task)
            if self._threads < len(self._pending):
                self._spawn()
            self._cond.notify_all()
        return task

    def _spawn(self) -> None:
        self._threads += 1
        threading.Thread(target=self._work, name=f"zarrcore-stream-{self.stream_id}", daemon=True).start()

    def _work(self) -> None:
        _local.stream_id = self.stream_id
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                task = self._queue.popleft()
                if task is None:
                    return
                if task.cancelled:
                    continue
                task.started = time.monotonic()
            try:
                value, error = task.fn(), None
            except BaseException as exc:
                value, error = None, exc
            with self._cond:
                if task.abandoned:  # reported as timed out; a replacement thread already runs
                    return
                task.value, task.error, task.finished = value, error, True
                if not self.ordered:
                    self._done.append(task)
                self._cond.notify_all()

    def next(self) -> tuple[_Task, bool]:
        """Wait for the next task (the oldest when ordered, else the first to finish) and take it out
        of the window. Returns ``(task, timed_out)``."""
        with self._cond:
            while True:
                if self.ordered:
                    head = self._pending[0]
                    if head.finished:
                        self._pending.popleft()
                        return head, False
                    candidates: Iterable[_Task] = (head,)
                else:
                    if self._done:
                        task = self._done.popleft()
                        self._pending.remove(task)
                        return task, False
                    candidates = self._pending
                wake: float | None = None
                if self.timeout is not None:
                    now = time.monotonic()
                    for task in candidates:
                        if task.started is None:
                            continue
                        due = task.started + self.timeout
                        if now >= due:
                            task.abandoned = True
                            self._threads -= 1
                            self._pending.remove(task)
                            if self._queue:
                                self._spawn()
                            return task, True
                        wake = due if wake is None else min(wake, due)
                self._cond.wait(None if wake is None else wake - time.monotonic())

    def cancel_queued(self) -> int:
        """Drop tasks that no worker has started; returns how many."""
        with self._cond:
            dropped = [t for t in self._pending if t.started is None]
            for task in dropped:
                task.cancelled = True
                self._pending.remove(task)
            self._queue = deque(t for t in self._queue if t is None or not t.cancelled)
            return len(dropped)

    def close(self) -> None:
        """Let every worker exit once its current task is done (abandoned ones exit by themselves)."""
        with self._cond:
            for task in self._pending:
                task.cancelled = True
            self._pending.clear()
            self._done.clear()
            self._queue = deque([None] * self._threads)
            self._threads = 0
            self._cond.notify_all()


# ------------------------------------------------------------------------------------ validation


def _check_options(concurrency: int, timeout: float | None, on_error: Any) -> None:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
    if on_error not in ("raise", "skip") and not callable(on_error):
        raise ValueError(f"on_error must be 'raise', 'skip' or a callable (index, exc), got {on_error!r}")


def _as_chunk_error(array: Array, index: ChunkIndex, exc: BaseException) -> ChunkError:
    if isinstance(exc, ChunkError):
        return exc
    try:
        key: str | None = array.chunk_key(index)
    except Exception:
        key = None
    return ChunkError(index, exc, key=key)


def _timeout_error(array: Array, index: ChunkIndex, timeout: float | None) -> ChunkError:
    return _as_chunk_error(array, index, TimeoutError(f"no result within the {timeout} s chunk timeout"))


def _attempt(fn: Callable[[], Any], policy: _retry.RetryPolicy | None, what: str) -> Any:
    return fn() if policy is None else _retry.call(fn, policy, description=what)


def _emit_start(array: Array, op: str, stream_id: int, concurrency: int) -> float:
    if telemetry.enabled():
        telemetry.emit(
            ("zarrcore", "stream", "start"),
            {"system_time": time.time()},
            {"array": array.url, "store": array.store.url, "op": op, "stream_id": stream_id,
             "concurrency": concurrency},
        )  # fmt: skip
    return time.perf_counter()


def _emit_stop(
    array: Array, op: str, stream_id: int, t0: float, counts: dict[str, int], error: BaseException | None
) -> None:
    if telemetry.enabled():
        meta: dict[str, Any] = {"array": array.url, "store": array.store.url, "op": op, "stream_id": stream_id}
        if error is not None:
            meta["error"] = error
        telemetry.emit(("zarrcore", "stream", "stop"), {**counts, "duration": time.perf_counter() - t0}, meta)


# ------------------------------------------------------------------------------------------ reads


@dataclass
class ReadSummary:
    """What a :func:`stream_chunks` stream did so far."""

    #: Chunks handed to the consumer (fill-value chunks included with ``include_missing=True``).
    yielded: int = 0
    #: Chunks not yielded without an error: filtered out, or not stored and not asked for.
    skipped: int = 0
    #: Of those, the ones ``filter`` turned down before any I/O.
    filtered: int = 0
    #: Chunks found not stored (yielded as the fill value only with ``include_missing=True``).
    missing: int = 0
    #: ``(index, reason)`` of every chunk that failed or timed out.
    failed: list[tuple[ChunkIndex, str]] = field(default_factory=list)
    #: Decoded bytes handed to the consumer.
    bytes: int = 0

    def counts(self) -> dict[str, int]:
        return {"chunks": self.yielded, "yielded": self.yielded, "skipped": self.skipped,
                "filtered": self.filtered, "missing": self.missing, "failed": len(self.failed),
                "bytes": self.bytes}  # fmt: skip


class ChunkStream(Iterator[tuple[ChunkIndex, np.ndarray]]):
    """The iterator :func:`stream_chunks` returns; :attr:`summary` counts what it did.

    Closing it (or leaving a ``with`` block, or dropping it) cancels the chunks not yet started.
    """

    def __init__(self, gen: Iterator[tuple[ChunkIndex, np.ndarray]], summary: ReadSummary) -> None:
        self._gen = gen
        self.summary = summary

    def __iter__(self) -> ChunkStream:
        return self

    def __next__(self) -> tuple[ChunkIndex, np.ndarray]:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()  # type: ignore[attr-defined]

    def __enter__(self) -> ChunkStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stream_chunks(
    array: Array,
    *,
    concurrency: int = 16,
    ordered: bool = False,
    timeout: float | None = 120.0,
    on_error: OnError = "raise",
    filter: Callable[[ChunkIndex], bool] | None = None,
    include_missing: bool = False,
    retry: _retry.RetryPolicy | None = None,
) -> ChunkStream:
    """Yield ``(index, data)`` for the array's chunks, ``data`` clipped to the array bounds as
    :meth:`Array.read_chunk` returns it. See :meth:`zarrcore.Array.stream_chunks`."""
    _check_options(concurrency, timeout, on_error)
    summary = ReadSummary()
    return ChunkStream(
        _read(array, concurrency, ordered, timeout, on_error, filter, include_missing, retry, summary), summary
    )


def _read(
    array: Array,
    concurrency: int,
    ordered: bool,
    timeout: float | None,
    on_error: OnError,
    keep: Callable[[ChunkIndex], bool] | None,
    include_missing: bool,
    policy: _retry.RetryPolicy | None,
    summary: ReadSummary,
) -> Iterator[tuple[ChunkIndex, np.ndarray]]:
    stream_id = next(_stream_ids)
    fill = array.metadata.fill
    dtype = array.dtype

    def load(index: ChunkIndex) -> np.ndarray | None:
        chunk = _attempt(lambda: array.load_chunk(index), policy, f"read chunk {index} of {array.url}")
        if chunk is None:
            return None
        region = tuple(s.stop - s.start for s in array.chunk_region(index))
        if not chunk.flags.writeable:
            chunk = chunk.copy()
        return chunk if region == chunk.shape else chunk[tuple(slice(0, n) for n in region)]

    indices = array.chunk_indices()
    window = _Window(concurrency, ordered=ordered, timeout=timeout, stream_id=stream_id)
    t0 = _emit_start(array, "read", stream_id, concurrency)
    error: BaseException | None = None
    try:
        exhausted = False
        while True:
            while not exhausted and window.has_room():
                index = next(indices, None)
                if index is None:
                    exhausted = True
                elif keep is not None and not keep(index):
                    summary.filtered += 1
                    summary.skipped += 1
                else:
                    window.submit(index, lambda index=index: load(index))
            if not len(window):
                return
            task, timed_out = window.next()
            if timed_out or task.error is not None:
                exc = (_timeout_error(array, task.index, timeout) if timed_out
                       else _as_chunk_error(array, task.index, task.error))  # type: ignore[arg-type]  # fmt: skip
                summary.failed.append((task.index, f"{type(exc.cause).__name__}: {exc.cause}"))
                if on_error == "raise":
                    window.cancel_queued()
                    raise exc
                if on_error != "skip":
                    on_error(task.index, exc)  # type: ignore[operator]
                continue
            data = task.value
            task.value = None
            if data is None:
                summary.missing += 1
                if not include_missing:
                    summary.skipped += 1
                    continue
                data = np.full(tuple(s.stop - s.start for s in array.chunk_region(task.index)), fill, dtype=dtype)
            summary.yielded += 1
            summary.bytes += data.nbytes
            yield task.index, data
            data = None  # hold nothing the consumer has let go of
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            error = exc
        raise
    finally:
        window.close()
        _emit_stop(array, "read", stream_id, t0, summary.counts(), error)


# ----------------------------------------------------------------------------------------- writes


class CheckpointLike(Protocol):
    """What :func:`write_stream` needs of a checkpoint object (:class:`zarrcore.Checkpoint` is one)."""

    def mark(self, index: ChunkIndex) -> None: ...

    def flush(self) -> None: ...


@dataclass
class WriteSummary:
    """What a :func:`write_stream` call did."""

    #: Chunks stored (one atomic PUT each).
    written: int = 0
    #: Chunks that held only the fill value and were deleted instead of stored.
    skipped: int = 0
    #: ``(index, reason)`` of every chunk that failed or timed out.
    failed: list[tuple[ChunkIndex, str]] = field(default_factory=list)
    #: The latest index (in the source's order) up to which every chunk has finished, or ``None``.
    last_index: ChunkIndex | None = None
    #: Encoded bytes stored.
    bytes: int = 0

    @property
    def ok(self) -> bool:
        """Whether no chunk failed."""
        return not self.failed

    def counts(self) -> dict[str, int]:
        return {"chunks": self.written + self.skipped, "written": self.written, "skipped": self.skipped,
                "failed": len(self.failed), "bytes": self.bytes}  # fmt: skip


class _Watermark:
    """Tracks the latest source position up to which every chunk has finished."""

    def __init__(self) -> None:
        self._order: deque[tuple[int, ChunkIndex]] = deque()
        self._finished: set[int] = set()
        self.last: ChunkIndex | None = None

    def submitted(self, seq: int, index: ChunkIndex) -> None:
        self._order.append((seq, index))

    def finished(self, seq: int) -> ChunkIndex | None:
        self._finished.add(seq)
        while self._order and self._order[0][0] in self._finished:
            done, self.last = self._order.popleft()
            self._finished.discard(done)
        return self.last


def write_stream(
    array: Array,
    chunks: Iterable[tuple[Any, Any]],
    *,
    concurrency: int = 16,
    checkpoint: CheckpointLike | Callable[[dict[str, Any]], Any] | None = None,
    on_error: OnError = "raise",
    retry: _retry.RetryPolicy | None = None,
    timeout: float | None = None,
) -> WriteSummary:
    """Write ``(index, data)`` pairs, taking them from ``chunks`` lazily. See
    :meth:`zarrcore.Array.write_stream`."""
    _check_options(concurrency, timeout, on_error)
    array._check_writable()
    mark = getattr(checkpoint, "mark", None)
    if checkpoint is not None and mark is None and not callable(checkpoint):
        raise TypeError(f"checkpoint must be a callable or have mark()/flush(), got {checkpoint!r}")
    summary = WriteSummary()
    stream_id = next(_stream_ids)
    source = iter(chunks)
    watermark = _Watermark()
    window = _Window(concurrency, ordered=False, timeout=timeout, stream_id=stream_id)

    def write(index: ChunkIndex, data: Any) -> int | None:
        encoded = array.encode_chunk(index, data)
        _attempt(lambda: array.write_chunk_bytes(index, encoded), retry, f"write chunk {index} of {array.url}")
        return None if encoded is None else memoryview(encoded).nbytes

    def finish(task: _Task, timed_out: bool) -> ChunkError | None:
        failure: ChunkError | None = None
        if timed_out or task.error is not None:
            failure = (_timeout_error(array, task.index, timeout) if timed_out
                       else _as_chunk_error(array, task.index, task.error))  # type: ignore[arg-type]  # fmt: skip
            summary.failed.append((task.index, f"{type(failure.cause).__name__}: {failure.cause}"))
        elif task.value is None:
            summary.skipped += 1
        else:
            summary.written += 1
            summary.bytes += task.value
        task.value = None
        summary.last_index = watermark.finished(task.seq)
        if mark is not None:
            if failure is None:
                mark(task.index)
        elif checkpoint is not None:
            checkpoint({"index": task.index, "last_index": summary.last_index, "written": summary.written,  # type: ignore[operator]
                        "skipped": summary.skipped, "failed": len(summary.failed), "bytes": summary.bytes})  # fmt: skip
        return failure

    t0 = _emit_start(array, "write", stream_id, concurrency)
    error: BaseException | None = None
    try:
        exhausted = False
        while True:
            while not exhausted and error is None and window.has_room():
                item = next(source, _END)
                if item is _END:
                    exhausted = True
                    break
                index, data = item
                index = tuple(int(i) for i in index)
                task = window.submit(index, lambda index=index, data=data: write(index, data))
                watermark.submitted(task.seq, index)
            if not len(window):
                break
            failure = finish(*window.next())
            if failure is not None and error is None:
                if on_error == "raise":
                    error = failure
                    window.cancel_queued()
                elif on_error != "skip":
                    on_error(failure.index, failure)  # type: ignore[operator]
    except BaseException as exc:
        # The source, a checkpoint or an on_error callable failed (or we were interrupted): start
        # nothing new, but let the chunks already in flight finish and be recorded.
        error = exc
        window.cancel_queued()
        while len(window):
            finish(*window.next())
    finally:
        window.close()
        if mark is not None:
            checkpoint.flush()  # type: ignore[union-attr]
        _emit_stop(array, "write", stream_id, t0, summary.counts(), error)
    if error is not None:
        raise error
    return summary
