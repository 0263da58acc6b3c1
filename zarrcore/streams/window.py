"""The bounded window of a stream: at most ``size`` chunks outstanding, on threads of its own.

Each chunk runs on a worker thread of the window's own. A chunk that overruns ``timeout`` is given
back as timed out; its thread is left to finish on its own (Python cannot stop a thread) and a new
one takes its place, so one stalled request never holds the rest of the stream.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from zarrcore import telemetry

__all__ = ["ChunkIndex", "Task", "Window"]

ChunkIndex = tuple[int, ...]


class Task:
    """One chunk's work in a :class:`Window`: its result or error once finished."""

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


class Window:
    """At most ``size`` tasks outstanding (running or finished but not yet taken), on worker threads
    that belong to this window. A task that overruns ``timeout`` is abandoned and its thread replaced."""

    def __init__(self, size: int, *, ordered: bool, timeout: float | None, stream_id: int) -> None:
        self.size = size
        self.ordered = ordered
        self.timeout = timeout
        self.stream_id = stream_id
        self._cond = threading.Condition()
        self._queue: deque[Task | None] = deque()
        self._pending: deque[Task] = deque()  # submission order
        self._done: deque[Task] = deque()  # completion order (unordered mode)
        self._threads = 0  # workers not abandoned
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._pending)

    def has_room(self) -> bool:
        return len(self._pending) < self.size

    def submit(self, index: ChunkIndex, fn: Callable[[], Any]) -> Task:
        task = Task(next(self._seq), index, fn)
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
        telemetry.bind_stream(self.stream_id)
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

    def next(self) -> tuple[Task, bool]:
        """Wait for the next task (the oldest when ordered, else the first to finish) and take it out
        of the window. Returns ``(task, timed_out)``."""
        with self._cond:
            while True:
                if self.ordered:
                    head = self._pending[0]
                    if head.finished:
                        self._pending.popleft()
                        return head, False
                    candidates: Iterable[Task] = (head,)
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
