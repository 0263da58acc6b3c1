"""Reading many chunks with bounded concurrency: :func:`stream_chunks`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from zarrcore import retry as _retry
from zarrcore.streams.base import (
    ChunkIndex,
    OnError,
    ReadableArray,
    attempt,
    check_options,
    emit_start,
    emit_stop,
    failure_of,
    stream_ids,
)
from zarrcore.streams.window import Window

__all__ = ["ChunkStream", "ReadSummary", "stream_chunks"]


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
    array: ReadableArray,
    *,
    concurrency: int = 16,
    ordered: bool = False,
    timeout: float | None = 120.0,
    on_error: OnError = "raise",
    filter: Callable[[ChunkIndex], bool] | None = None,
    include_missing: bool = False,
    retry: _retry.RetryPolicy | None = None,
) -> ChunkStream:
    """Iterate ``(index, data)`` over the array's stored objects (whole shards when sharded), ``data``
    clipped to the array bounds as :meth:`zarrcore.Array.read_chunk` returns it (also
    ``Array.stream_chunks``).

    At most ``concurrency`` chunks are in flight or waiting for the consumer; ``ordered=True`` yields
    in C order, else as chunks complete. ``timeout`` (s) bounds each chunk. ``on_error`` is
    ``"raise"`` (a :class:`~zarrcore.errors.ChunkError`), ``"skip"``, or a callable told
    ``(index, error)``. ``filter(index) -> bool`` drops indices before any I/O; chunks not stored are
    skipped unless ``include_missing=True`` (then they come as the fill value). ``retry`` is a
    :class:`~zarrcore.retry.RetryPolicy` applied per chunk. The :class:`ChunkStream` returned counts
    what happened in its ``summary``.
    """
    check_options(concurrency, timeout, on_error)
    reader = _Reader(array, concurrency, ordered, timeout, on_error, filter, include_missing, retry)
    return ChunkStream(reader.run(), reader.summary)


@dataclass
class _Reader:
    """One :func:`stream_chunks` call: its options, its summary, and the loop that runs it."""

    array: ReadableArray
    concurrency: int
    ordered: bool
    timeout: float | None
    on_error: OnError
    keep: Callable[[ChunkIndex], bool] | None
    include_missing: bool
    policy: _retry.RetryPolicy | None
    summary: ReadSummary = field(default_factory=ReadSummary)

    def load(self, index: ChunkIndex) -> np.ndarray | None:
        """The chunk clipped to the array bounds (a copy the consumer may keep), ``None`` if not stored."""
        array = self.array
        chunk = attempt(lambda: array.load_chunk(index), self.policy, f"read chunk {index} of {array.url}")
        if chunk is None:
            return None
        region = tuple(s.stop - s.start for s in array.chunk_region(index))
        if not chunk.flags.writeable:
            chunk = chunk.copy()
        return chunk if region == chunk.shape else chunk[tuple(slice(0, n) for n in region)]

    def missing(self, index: ChunkIndex) -> np.ndarray:
        region = tuple(s.stop - s.start for s in self.array.chunk_region(index))
        return np.full(region, self.array.metadata.fill, dtype=self.array.metadata.dtype)

    def run(self) -> Iterator[tuple[ChunkIndex, np.ndarray]]:
        array, summary = self.array, self.summary
        stream_id = next(stream_ids)
        indices = array.chunk_indices()
        window = Window(self.concurrency, ordered=self.ordered, timeout=self.timeout, stream_id=stream_id)
        t0 = emit_start(array, "read", stream_id, self.concurrency)
        error: BaseException | None = None
        try:
            exhausted = False
            while True:
                while not exhausted and window.has_room():
                    index = next(indices, None)
                    if index is None:
                        exhausted = True
                    elif self.keep is not None and not self.keep(index):
                        summary.filtered += 1
                        summary.skipped += 1
                    else:
                        window.submit(index, lambda index=index: self.load(index))
                if not len(window):
                    return
                task, timed_out = window.next()
                if timed_out or task.error is not None:
                    exc = failure_of(array, task.index, None if timed_out else task.error, self.timeout)
                    summary.failed.append((task.index, f"{type(exc.cause).__name__}: {exc.cause}"))
                    if self.on_error == "raise":
                        window.cancel_queued()
                        raise exc
                    if self.on_error != "skip":
                        self.on_error(task.index, exc)  # type: ignore[operator]
                    continue
                data = task.value
                task.value = None
                if data is None:
                    summary.missing += 1
                    if not self.include_missing:
                        summary.skipped += 1
                        continue
                    data = self.missing(task.index)
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
            emit_stop(array, "read", stream_id, t0, summary.counts(), error)
