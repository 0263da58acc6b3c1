"""What the streams need of an array, and what reads and writes share: options, errors, events."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, Protocol

import numpy as np

from zarrcore import retry as _retry
from zarrcore import telemetry
from zarrcore.errors import ChunkError
from zarrcore.metadata import ArrayMetadata
from zarrcore.storage.base import Store

__all__ = ["ChunkIndex", "OnError", "ReadableArray", "StreamedArray", "WritableArray", "concurrency_for"]

ChunkIndex = tuple[int, ...]
#: ``"raise"``, ``"skip"``, or a callable told ``(index, ChunkError)`` after which the stream goes on.
OnError = Literal["raise", "skip"] | Callable[[ChunkIndex, ChunkError], Any]

stream_ids = itertools.count(1)


def concurrency_for(store: Store, requested: int, *, streams: int = 1) -> int:
    """How many chunks each of ``streams`` streams running at once should keep in flight on ``store``.

    A store that waits on a network or a disk flush (``io_kind == "latency"``) gets ``requested``: many
    requests in flight hide the latency. On memory and local disk a chunk costs only CPU, so more
    chunks in flight than the cores (:func:`zarrcore.pool.cpu_concurrency`, env
    ``ZARRCORE_CPU_CONCURRENCY``) across all the streams only add memory and switching: each stream
    gets its share of the cores, at least one, at most ``requested``."""
    if requested < 1 or streams < 1:
        raise ValueError(f"requested and streams must be >= 1, got {requested} and {streams}")
    if store.io_kind == "latency":
        return requested
    from zarrcore.pool import cpu_concurrency

    return max(1, min(requested, -(-cpu_concurrency() // streams)))


class StreamedArray(Protocol):
    """What every stream needs of an array (:class:`zarrcore.Array` is one). Chunk indices and
    keys address stored objects: a whole shard when the array is sharded."""

    store: Store

    @property
    def url(self) -> str: ...

    def chunk_key(self, index: Sequence[int]) -> str: ...


class ReadableArray(StreamedArray, Protocol):
    """What :func:`~zarrcore.streams.stream_chunks` needs of an array."""

    @property
    def metadata(self) -> ArrayMetadata: ...

    def chunk_indices(self) -> Iterator[ChunkIndex]: ...

    def chunk_region(self, index: Sequence[int]) -> tuple[slice, ...]: ...

    def load_chunk(self, index: Sequence[int]) -> np.ndarray | None: ...


class WritableArray(StreamedArray, Protocol):
    """What :func:`~zarrcore.streams.write_stream` needs of an array."""

    def check_writable(self) -> None: ...

    def encode_chunk(self, index: Sequence[int], data: Any) -> bytes | memoryview | None: ...

    def write_chunk_bytes(self, index: Sequence[int], data: bytes | memoryview | None) -> None: ...


def check_options(concurrency: int, timeout: float | None, on_error: Any) -> None:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
    if on_error not in ("raise", "skip") and not callable(on_error):
        raise ValueError(f"on_error must be 'raise', 'skip' or a callable (index, exc), got {on_error!r}")


def as_chunk_error(array: StreamedArray, index: ChunkIndex, exc: BaseException) -> ChunkError:
    if isinstance(exc, ChunkError):
        return exc
    try:
        key: str | None = array.chunk_key(index)
    except Exception:
        key = None
    return ChunkError(index, exc, key=key)


def failure_of(
    array: StreamedArray, index: ChunkIndex, error: BaseException | None, timeout: float | None
) -> ChunkError:
    """The :class:`ChunkError` of a chunk that raised ``error`` or (``None``) overran ``timeout``."""
    if error is None:
        error = TimeoutError(f"no result within the {timeout} s chunk timeout")
    return as_chunk_error(array, index, error)


def attempt(fn: Callable[[], Any], policy: _retry.RetryPolicy | None, what: str) -> Any:
    return fn() if policy is None else _retry.call(fn, policy, description=what)


def emit_start(array: StreamedArray, op: str, stream_id: int, concurrency: int) -> float:
    if telemetry.enabled():
        telemetry.emit(
            ("zarrcore", "stream", "start"),
            {"system_time": time.time()},
            {"array": array.url, "store": array.store.url, "op": op, "stream_id": stream_id,
             "concurrency": concurrency},
        )  # fmt: skip
    return time.perf_counter()


def emit_stop(
    array: StreamedArray, op: str, stream_id: int, t0: float, counts: dict[str, int], error: BaseException | None
) -> None:
    if telemetry.enabled():
        meta: dict[str, Any] = {"array": array.url, "store": array.store.url, "op": op, "stream_id": stream_id}
        if error is not None:
            meta["error"] = error
        telemetry.emit(("zarrcore", "stream", "stop"), {**counts, "duration": time.perf_counter() - t0}, meta)
