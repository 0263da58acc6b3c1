"""OpenTelemetry bridge: zarrcore telemetry events as spans (``pip install 'zarrcore[otel]'``).

>>> handle = zarrcore.otel.instrument()          # doctest: +SKIP
>>> ...                                          # chunk reads/writes and streams become spans
>>> zarrcore.otel.uninstrument(handle)           # doctest: +SKIP

Chunk events become ``zarrcore.chunk.read`` / ``zarrcore.chunk.write`` spans (attributes: array,
store, key, chunk index, encoded and decoded bytes, whether an object was stored; error status and
the exception on failure). A ``stream_chunks`` / ``write_stream`` call becomes a root span
``zarrcore.stream.read`` / ``zarrcore.stream.write`` carrying its counts, and the chunk spans of its
workers are its children. Outside streams, a chunk span is a child of whatever span is current.
Retries are span events on the chunk span of the same thread.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import Any

from zarrcore import telemetry

__all__ = ["Instrumentation", "instrument", "uninstrument"]

@functools.cache
def _otel() -> tuple[Any, Any, Any]:
    try:
        from opentelemetry import context, trace
        from opentelemetry.trace import Status, StatusCode
    except ImportError as exc:
        raise ImportError(
            "opentelemetry-api is not installed; install it with: pip install 'zarrcore[otel]'",
            name="opentelemetry",
        ) from exc
    return trace, context, (Status, StatusCode)


@dataclass
class Instrumentation:
    """A live bridge from zarrcore telemetry to an OpenTelemetry tracer; undo with :func:`uninstrument`."""

    tracer: Any
    handler_id: int = 0
    _streams: dict[int, Any] = field(default_factory=dict, repr=False)
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _stack(self) -> list[tuple[str, Any, Any]]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def handle(self, event: tuple[str, ...], measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
        """The telemetry handler (attached to every ``("zarrcore", ...)`` event)."""
        kind = event[1] if len(event) > 1 else ""
        if kind == "chunk" and len(event) == 4:
            self._chunk(event[2], event[3], measurements, metadata)
        elif kind == "stream" and len(event) == 3:
            self._stream(event[2], measurements, metadata)
        elif kind == "retry":
            stack = self._stack()
            if stack:
                error = metadata.get("error")
                stack[-1][2].add_event(
                    "zarrcore.retry",
                    {
                        "zarrcore.retry.attempt": int(measurements.get("attempt", 0)),
                        "zarrcore.retry.delay_s": float(measurements.get("delay", 0.0)),
                        "zarrcore.retry.error": f"{type(error).__name__}: {error}" if error else "",
                    },
                )

    def _chunk(self, op: str, phase: str, measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
        trace, _, (status_cls, status_code) = _otel()
        key = metadata.get("key")
        stack = self._stack()
        if phase == "start":
            parent = None
            stream_id = metadata.get("stream_id")  # set by telemetry for a stream's chunks
            if stream_id is not None:
                with self._lock:
                    stream_span = self._streams.get(stream_id)
                if stream_span is not None:
                    parent = trace.set_span_in_context(stream_span)
            attributes = {
                "zarrcore.array": str(metadata.get("array", "")),
                "zarrcore.store": str(metadata.get("store", "")),
                "zarrcore.chunk.key": str(key),
                "zarrcore.chunk.index": [int(i) for i in metadata.get("index", ())],
            }
            span = self.tracer.start_span(
                f"zarrcore.chunk.{op}", context=parent, kind=trace.SpanKind.CLIENT, attributes=attributes
            )
            stack.append((op, key, span))
            return
        for pos in range(len(stack) - 1, -1, -1):
            if stack[pos][0] == op and stack[pos][1] == key:
                span = stack.pop(pos)[2]
                break
        else:
            return  # started before we were attached
        for name in ("encoded_bytes", "decoded_bytes"):
            if name in measurements:
                span.set_attribute(f"zarrcore.chunk.{name}", int(measurements[name]))
        if "stored" in metadata:
            span.set_attribute("zarrcore.chunk.stored", bool(metadata["stored"]))
        if phase == "exception":
            error = metadata.get("error")
            if isinstance(error, BaseException):
                span.record_exception(error)
            span.set_status(status_cls(status_code.ERROR, f"{type(error).__name__}: {error}"))
        span.end()

    def _stream(self, phase: str, measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
        _, context, (status_cls, status_code) = _otel()
        stream_id = metadata.get("stream_id")
        op = metadata.get("op", "")
        if phase == "start":
            span = self.tracer.start_span(
                f"zarrcore.stream.{op}",
                context=context.Context(),  # a root span, whatever is current in the caller
                attributes={
                    "zarrcore.array": str(metadata.get("array", "")),
                    "zarrcore.store": str(metadata.get("store", "")),
                    "zarrcore.stream.concurrency": int(metadata.get("concurrency", 0)),
                },
            )
            with self._lock:
                self._streams[stream_id] = span
            return
        with self._lock:
            span = self._streams.pop(stream_id, None)
        if span is None:
            return
        for name, value in measurements.items():
            if name != "duration" and isinstance(value, int | float):
                span.set_attribute(f"zarrcore.stream.{name}", value)
        error = metadata.get("error")
        if error is not None:
            if isinstance(error, BaseException):
                span.record_exception(error)
            span.set_status(status_cls(status_code.ERROR, f"{type(error).__name__}: {error}"))
        span.end()

    def close(self) -> None:
        """End spans still open (their events will not come any more)."""
        with self._lock:
            streams, self._streams = list(self._streams.values()), {}
        for span in streams:
            span.end()


def instrument(tracer_provider: Any = None) -> Instrumentation:
    """Start turning zarrcore telemetry into spans, on ``tracer_provider`` or the global provider."""
    trace, _, _ = _otel()
    from zarrcore import __version__

    tracer = trace.get_tracer("zarrcore", __version__, tracer_provider=tracer_provider)
    handle = Instrumentation(tracer)
    handle.handler_id = telemetry.attach(("zarrcore",), handle.handle)
    return handle


def uninstrument(handle: Instrumentation) -> None:
    """Stop the bridge started by :func:`instrument`."""
    telemetry.detach(handle.handler_id)
    handle.close()
