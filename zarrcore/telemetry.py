"""Telemetry events, in the style of Erlang's ``:telemetry``: named events with measurements and
metadata, delivered synchronously to attached handlers.

Events emitted by zarrcore:

* ``("zarrcore", "chunk", "read" | "write", "start" | "stop" | "exception")`` — every chunk read or
  written through any API. Measurements: ``duration`` (s, on stop/exception), ``encoded_bytes`` and
  ``decoded_bytes`` (on stop). Metadata: ``array`` (URL), ``store``, ``index``, ``key``; ``error`` on
  exception; ``stored`` on write stop (``False`` when an all-fill chunk was deleted instead);
  ``stream_id`` when the chunk is read or written by a stream's worker.
* ``("zarrcore", "stream", "start" | "stop")`` — a ``stream_chunks``/``write_stream`` call. Metadata:
  ``array``, ``store``, ``op`` (``"read"``/``"write"``), ``stream_id``; ``concurrency`` on start;
  ``error`` on stop if the stream raised. Stop measurements: ``chunks``, ``skipped``, ``failed``,
  ``bytes``, ``duration``, and ``yielded``/``filtered``/``missing`` (read) or ``written`` (write).
* ``("zarrcore", "retry")`` — one retry under the retry policy.

A handler is attached to an exact event or to a prefix of one (``("zarrcore", "chunk")`` receives
every chunk event). With nothing attached, emitting costs one attribute check.
:mod:`zarrcore.otel` turns these events into OpenTelemetry spans.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = [
    "Event", "Handler", "attach", "bind_stream", "current_stream_id", "detach", "emit", "enabled", "handlers",
    "span",
]  # fmt: skip

Event = tuple[str, ...]
Handler = Callable[[Event, dict[str, Any], dict[str, Any]], None]

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_ids = itertools.count(1)
_handlers: dict[int, tuple[Event, Handler]] = {}
_active = False
_context = threading.local()


def bind_stream(stream_id: int | None) -> None:
    """Mark the calling thread as working for the stream ``stream_id`` (``None``: for none); the
    chunk events it emits then carry ``stream_id``."""
    _context.stream_id = stream_id


def current_stream_id() -> int | None:
    """The id of the stream whose chunk this thread is working on (``None`` outside streams)."""
    return getattr(_context, "stream_id", None)


def attach(event: Event | list[str], handler: Handler) -> int:
    """Call ``handler(event, measurements, metadata)`` for ``event`` and every event it prefixes.

    Returns an id for :func:`detach`.
    """
    global _active
    prefix = tuple(event)
    with _lock:
        handler_id = next(_ids)
        _handlers[handler_id] = (prefix, handler)
        _active = True
    return handler_id


def detach(handler_id: int) -> bool:
    """Detach a handler; returns whether it was attached."""
    global _active
    with _lock:
        found = _handlers.pop(handler_id, None) is not None
        _active = bool(_handlers)
    return found


def enabled() -> bool:
    """Whether any handler is attached (callers skip building events when not)."""
    return _active


def handlers() -> list[tuple[int, Event]]:
    """The attached handlers as ``(id, event prefix)``."""
    with _lock:
        return [(hid, ev) for hid, (ev, _) in _handlers.items()]


def emit(event: Event, measurements: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
    """Deliver an event to every handler whose prefix matches. A failing handler is logged, not raised."""
    if not _active:
        return
    with _lock:
        targets = [h for prefix, h in _handlers.values() if event[: len(prefix)] == prefix]
    for handler in targets:
        try:
            handler(event, dict(measurements), dict(metadata))
        except Exception:  # a broken handler must never break I/O
            _log.exception("telemetry handler %r failed for event %s", handler, event)


@contextmanager
def span(prefix: Event, metadata: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Emit ``prefix + ("start",)``, then ``("stop",)`` or ``("exception",)`` with ``duration``.

    Yields a dict the caller fills with stop measurements (e.g. ``encoded_bytes``); keys starting
    with ``meta_`` are moved into the stop metadata instead.
    """
    if not _active:
        yield {}
        return
    stream_id = current_stream_id()
    if stream_id is not None:
        metadata = {**metadata, "stream_id": stream_id}
    t0 = time.perf_counter()
    emit((*prefix, "start"), {"system_time": time.time()}, metadata)
    measurements: dict[str, Any] = {}
    try:
        yield measurements
    except BaseException as exc:
        emit((*prefix, "exception"), {"duration": time.perf_counter() - t0}, {**metadata, "error": exc})
        raise
    extra = {k[5:]: measurements.pop(k) for k in [k for k in measurements if k.startswith("meta_")]}
    measurements["duration"] = time.perf_counter() - t0
    emit((*prefix, "stop"), measurements, {**metadata, **extra})
