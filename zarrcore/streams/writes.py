"""Writing many chunks with bounded concurrency: :func:`write_stream`."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from zarrcore import retry as _retry
from zarrcore.errors import ChunkError
from zarrcore.streams.base import (
    ChunkIndex,
    OnError,
    WritableArray,
    attempt,
    check_options,
    emit_start,
    emit_stop,
    failure_of,
    stream_ids,
)
from zarrcore.streams.window import Task, Window

__all__ = ["CheckpointLike", "OnWritten", "WriteSummary", "write_stream"]

_END = object()
#: Told ``(index, encoded)`` after a chunk's PUT succeeded: the bytes stored, or ``None`` when the
#: chunk held only the fill value and nothing is stored.
OnWritten = Callable[[ChunkIndex, "bytes | memoryview | None"], Any]


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
    array: WritableArray,
    chunks: Iterable[tuple[Any, Any]],
    *,
    concurrency: int = 16,
    checkpoint: CheckpointLike | Callable[[dict[str, Any]], Any] | None = None,
    on_error: OnError = "raise",
    retry: _retry.RetryPolicy | None = None,
    timeout: float | None = None,
    on_written: OnWritten | None = None,
) -> WriteSummary:
    """Write ``(index, data)`` pairs taken lazily from ``chunks`` (also ``Array.write_stream``); an
    index addresses a stored object (a whole shard when the array is sharded), each written with
    one atomic PUT, at most ``concurrency`` pending.

    ``checkpoint`` is a :class:`~zarrcore.Checkpoint` (marked per finished chunk, flushed at the
    end) or a callable told the progress. ``on_written(index, encoded)`` is called in the caller's
    thread after each successful PUT with the bytes stored (``None`` when the chunk held only the
    fill value and nothing is stored), before the checkpoint hears of it. ``on_error`` and ``retry``
    are as in :func:`~zarrcore.streams.stream_chunks`; ``timeout`` (s) bounds each chunk.
    """
    check_options(concurrency, timeout, on_error)
    array.check_writable()
    mark = getattr(checkpoint, "mark", None)
    if checkpoint is not None and mark is None and not callable(checkpoint):
        raise TypeError(f"checkpoint must be a callable or have mark()/flush(), got {checkpoint!r}")
    if on_written is not None and not callable(on_written):
        raise TypeError(f"on_written must be a callable (index, encoded), got {on_written!r}")
    summary = WriteSummary()
    stream_id = next(stream_ids)
    source = iter(chunks)
    watermark = _Watermark()
    window = Window(concurrency, ordered=False, timeout=timeout, stream_id=stream_id)

    def write(index: ChunkIndex, data: Any) -> tuple[int, bytes | memoryview | None] | None:
        encoded = array.encode_chunk(index, data)
        attempt(lambda: array.write_chunk_bytes(index, encoded), retry, f"write chunk {index} of {array.url}")
        if encoded is None:
            return None
        return memoryview(encoded).nbytes, encoded if on_written is not None else None

    def finish(task: Task, timed_out: bool) -> ChunkError | None:
        failure: ChunkError | None = None
        if timed_out or task.error is not None:
            failure = failure_of(array, task.index, None if timed_out else task.error, timeout)
            summary.failed.append((task.index, f"{type(failure.cause).__name__}: {failure.cause}"))
        elif task.value is None:
            summary.skipped += 1
        else:
            summary.written += 1
            summary.bytes += task.value[0]
        result, task.value = task.value, None
        summary.last_index = watermark.finished(task.seq)
        if failure is None and on_written is not None:
            on_written(task.index, None if result is None else result[1])
        if mark is not None:
            if failure is None:
                mark(task.index)
        elif checkpoint is not None:
            checkpoint({"index": task.index, "last_index": summary.last_index, "written": summary.written,  # type: ignore[operator]
                        "skipped": summary.skipped, "failed": len(summary.failed), "bytes": summary.bytes})  # fmt: skip
        return failure

    t0 = emit_start(array, "write", stream_id, concurrency)
    error: BaseException | None = None
    try:
        exhausted = False
        while True:
            while not exhausted and error is None and window.has_room():
                item = next(source, _END)
                if item is _END:
                    exhausted = True
                    break
                index, data = item  # type: ignore[misc]
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
        # The source, a checkpoint, on_written or an on_error callable failed (or we were
        # interrupted): start nothing new, but let the chunks already in flight finish and be recorded.
        error = exc
        window.cancel_queued()
        while len(window):
            finish(*window.next())
    finally:
        window.close()
        if mark is not None:
            checkpoint.flush()  # type: ignore[union-attr]
        emit_stop(array, "write", stream_id, t0, summary.counts(), error)
    if error is not None:
        raise error
    return summary
