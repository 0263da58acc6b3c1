"""Streaming chunk I/O: many chunks read or written with bounded concurrency.

:func:`stream_chunks` yields ``(index, data)`` for the stored objects of an array (whole shards when
it is sharded) and :func:`write_stream` writes ``(index, data)`` pairs from any iterable. Both keep at
most ``concurrency`` chunks in flight *or* waiting to be taken, so memory is bounded by
``concurrency x chunk size`` whatever the array's size, and a slow consumer (or a slow source) simply
slows the stream down.

Each chunk runs on a worker thread of the stream's own (:mod:`zarrcore.streams.window`). A chunk that
overruns ``timeout`` is reported as a :class:`~zarrcore.errors.ChunkError` whose cause is a
:class:`TimeoutError`; its thread is left to finish on its own and a new one takes its place, so one
stalled request never holds the rest of the stream. Give the store its own request timeouts as well,
so that the abandoned request ends too.
"""

from zarrcore.streams.base import ChunkIndex, OnError, ReadableArray, StreamedArray, WritableArray, concurrency_for
from zarrcore.streams.reads import ChunkStream, ReadSummary, stream_chunks
from zarrcore.streams.writes import CheckpointLike, OnWritten, WriteSummary, write_stream

__all__ = [
    "CheckpointLike",
    "ChunkIndex",
    "ChunkStream",
    "OnError",
    "OnWritten",
    "ReadSummary",
    "ReadableArray",
    "StreamedArray",
    "WritableArray",
    "WriteSummary",
    "concurrency_for",
    "stream_chunks",
    "write_stream",
]
