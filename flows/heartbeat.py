"""Flow-run heartbeats that stop the moment a run ends.

Prefect's engine emits a ``prefect.flow-run.heartbeat`` event every
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (default 180) from a thread that sleeps in one-second
steps and is joined when the run ends, so every run called in-process waits up to a second after
its last task. The flows here are :class:`HeartbeatFlow` objects: called in-process (Python, the
``zarrflow`` CLI, ``make demo``), they switch the engine's thread off for that call and emit the
same events, at the same frequency, from a thread that wakes on an event instead of a sleep, so the
call returns as soon as the work is done. Runs started by a worker or ``prefect.engine`` keep the
engine's own heartbeats. Crash detection (docs/flows.md) sees the same events either way; with
the setting at ``None`` neither emits any.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, copy_context
from typing import Any

from prefect import Flow
from prefect.context import FlowRunContext, SettingsContext, get_settings_context
from prefect.events import RelatedResource, emit_event
from prefect.events.related import tags_as_related_resources
from prefect.flow_engine import MINIMUM_HEARTBEAT_INTERVAL
from prefect.settings import get_current_settings

__all__ = ["HeartbeatFlow", "beating", "heartbeat_flow"]

THREAD_NAME = "zarrflow-heartbeat"
_log = logging.getLogger(__name__)

# Set while a HeartbeatFlow call has taken the engine's heartbeats over: the interval to keep.
_interval: ContextVar[int | None] = ContextVar("zarrflow_heartbeat_interval", default=None)


class HeartbeatFlow(Flow):  # type: ignore[type-arg]
    """A Prefect flow whose in-process calls emit heartbeats from :func:`beating` instead of the engine.

    The flow's body must run inside ``with beating():``; everything else is a plain :class:`Flow`.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        interval = get_current_settings().flows.heartbeat_frequency
        if interval is None or self.isasync:
            return super().__call__(*args, **kwargs)
        token = _interval.set(max(interval, MINIMUM_HEARTBEAT_INTERVAL))
        try:
            with _engine_heartbeats_off():
                return super().__call__(*args, **kwargs)
        finally:
            _interval.reset(token)

    def with_options(self, **options: Any) -> HeartbeatFlow:
        """Like :meth:`Flow.with_options`, keeping the prompt heartbeats."""
        copied = super().with_options(**options)
        copied.__class__ = type(self)
        return copied  # type: ignore[return-value]


def _engine_heartbeats_off() -> SettingsContext:
    """The current settings with the engine's heartbeat off, as a context to enter.

    A shallow ``model_copy`` of the settings (~0.1 ms) rather than ``temporary_settings``, which
    rebuilds every setting from its sources (~30 ms a call).
    """
    context = get_settings_context()
    settings = context.settings
    quiet = settings.model_copy(update={"flows": settings.flows.model_copy(update={"heartbeat_frequency": None})})
    return SettingsContext(profile=context.profile, settings=quiet)


def heartbeat_flow(**options: Any) -> Callable[[Callable[..., Any]], HeartbeatFlow]:
    """Decorator: like ``prefect.flow(**options)``, making a :class:`HeartbeatFlow`."""

    def make(fn: Callable[..., Any]) -> HeartbeatFlow:
        return HeartbeatFlow(fn=fn, **options)

    return make


def _event_template(context: FlowRunContext) -> tuple[dict[str, str], list[RelatedResource]]:
    import prefect

    run = context.flow_run
    assert run is not None
    resource = {
        "prefect.resource.id": f"prefect.flow-run.{run.id}",
        "prefect.resource.name": run.name or "",
        "prefect.version": prefect.__version__,
    }
    related: list[RelatedResource] = []
    if run.flow_id:
        related.append(RelatedResource.model_validate({
            "prefect.resource.id": f"prefect.flow.{run.flow_id}", "prefect.resource.role": "flow",
            "prefect.resource.name": context.flow.name if context.flow else ""}))  # fmt: skip
    if run.deployment_id:
        related.append(RelatedResource.model_validate({
            "prefect.resource.id": f"prefect.deployment.{run.deployment_id}",
            "prefect.resource.role": "deployment"}))  # fmt: skip
    return resource, related + tags_as_related_resources(set(run.tags or []))


@contextmanager
def beating() -> Iterator[None]:
    """Emit the current flow run's heartbeats while the block runs, when its call took them over.

    A no-op unless the run was started by a :class:`HeartbeatFlow` call with heartbeats enabled.
    The first heartbeat goes out at once, then one per interval; leaving the block stops the thread
    without waiting.
    """
    interval = _interval.get()
    context = FlowRunContext.get()
    if interval is None or context is None or context.flow_run is None:
        yield
        return
    resource, related = _event_template(context)
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                emit_event(event="prefect.flow-run.heartbeat", resource=resource, related=related)
            except Exception:  # a lost heartbeat must never fail the run
                _log.debug("could not emit a flow-run heartbeat", exc_info=True)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=copy_context().run, args=(loop,), name=THREAD_NAME, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
