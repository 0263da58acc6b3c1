"""Taking, renewing and releasing the writer claim on a node.

Every step is a create-only put of the next generation (see :mod:`zarrcore.claims.record`), so of
two writers that try the same step exactly one wins, on every store. A writer takes the claim when
there is none, when the one in force was released or has expired, or when it is its own (same
``owner``). Expiry compares the record's ``expires`` (the holder's wall clock) with the taker's wall
clock: hosts' clocks must agree to well within ``ttl``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import replace
from types import TracebackType
from typing import Any

from zarrcore.claims.heartbeat import Heartbeat
from zarrcore.claims.record import ClaimInfo, prune, read_current, write_generation
from zarrcore.errors import ClaimLost, StoreError, WriterBusy
from zarrcore.storage.base import Store

__all__ = ["Claim", "claim_writer", "current_writer"]

log = logging.getLogger(__name__)

#: How many generations below the one in force are kept (for diagnosis); older ones are deleted.
KEEP = 2


def _where(store: Store, path: str) -> str:
    return f"{path or '/'!r} in {store.url}"


class Claim:
    """The writer claim this process holds on one node. Made by :func:`claim_writer`.

    The claim is in force until ``ttl`` seconds after its last renewal. Renew it with :meth:`renew`
    (or let :meth:`start_heartbeat` do it) and check :attr:`lost` (or call :meth:`check`) before each
    write; :meth:`release` ends it. Safe to use from several threads.
    """

    def __init__(self, store: Store, path: str, record: ClaimInfo, ttl: float, valid_until: float) -> None:
        self.store = store
        self.path = path
        self.ttl = ttl
        self._record = record
        self._valid_until = valid_until  # time.monotonic() at which the lease lapses here
        self._lock = threading.RLock()
        self._lost: ClaimLost | None = None
        self._released = False
        self._heartbeat: Heartbeat | None = None

    @property
    def info(self) -> ClaimInfo:
        """The record in force (its generation and expiry change with each renewal)."""
        return self._record

    @property
    def owner(self) -> str:
        return self._record.owner

    @property
    def token(self) -> str:
        """Unique to this taking of the claim: ``current_writer(...).token == claim.token`` while held."""
        return self._record.token

    @property
    def remaining(self) -> float:
        """Seconds until the lease lapses unless renewed (0 once lost or released)."""
        if self._lost is not None or self._released:
            return 0.0
        return max(0.0, self._valid_until - time.monotonic())

    @property
    def lost(self) -> bool:
        """Whether the claim is no longer this writer's (lapsed, taken over or released): stop writing."""
        return self.remaining <= 0.0

    def check(self) -> None:
        """Raise :class:`~zarrcore.errors.ClaimLost` if the claim is no longer this writer's."""
        with self._lock:
            if self._lost is not None:
                raise self._lost
            if self._released:
                raise ClaimLost(f"the claim on {_where(self.store, self.path)} was released", path=self.path)
            if time.monotonic() >= self._valid_until:
                self._lose(None, "lapsed before it was renewed")
                raise self._lost  # type: ignore[misc]

    def renew(self) -> None:
        """Extend the lease by ``ttl`` from now.

        Raises :class:`~zarrcore.errors.ClaimLost` if it lapsed or another writer took it over (the
        error's ``holder`` names the new holder, when there is one). A store error leaves the claim as
        it was (in force until it lapses), so a renewal may simply be tried again.
        """
        with self._lock:
            if self._lost is None and not self._released and time.monotonic() >= self._valid_until:
                self._lose(read_current(self.store, self.path)[1], "lapsed before it was renewed")
            self.check()
            start, now = time.monotonic(), time.time()
            nxt = replace(self._record, generation=self._record.generation + 1, expires=now + self.ttl)
            if not write_generation(self.store, self.path, nxt):
                self._lose(read_current(self.store, self.path)[1], "was taken over")
                raise self._lost  # type: ignore[misc]
            gens, current = read_current(self.store, self.path)
            if current is None or current.token != nxt.token or current.generation != nxt.generation:
                self._lose(current, "was taken over")
                raise self._lost  # type: ignore[misc]
            self._record, self._valid_until = nxt, start + self.ttl
            prune(self.store, self.path, gens, nxt.generation, KEEP)

    def release(self) -> None:
        """End the claim so that another writer may take it at once. Idempotent.

        Best effort: if the store cannot be reached the claim simply expires after ``ttl``.
        """
        self.stop_heartbeat()
        with self._lock:
            if self._released:
                return
            self._released = True
            if self._lost is not None:
                return
            marker = replace(
                self._record, generation=self._record.generation + 1, expires=time.time(), released=True
            )
            try:
                if write_generation(self.store, self.path, marker):
                    gens, _ = read_current(self.store, self.path)
                    prune(self.store, self.path, gens, marker.generation, KEEP)
            except StoreError as exc:
                log.warning("could not release the claim on %s (it expires by itself): %s",
                            _where(self.store, self.path), exc)

    def start_heartbeat(self, interval: float | None = None) -> Claim:
        """Renew in a background thread every ``interval`` seconds (default ``ttl / 3``) until
        :meth:`release`; if the claim is lost the thread stops and :attr:`lost` turns true."""
        with self._lock:
            if self._heartbeat is None:
                self._heartbeat = Heartbeat(self, interval if interval is not None else self.ttl / 3)
                self._heartbeat.start()
        return self

    def stop_heartbeat(self) -> None:
        """Stop the heartbeat thread, if one runs (the claim stays as it is)."""
        with self._lock:
            beat, self._heartbeat = self._heartbeat, None
        if beat is not None:
            beat.stop()

    def _lose(self, holder: ClaimInfo | None, how: str) -> None:
        by = f"; it is now held by {holder.describe()}" if holder is not None and holder.live(time.time()) else ""
        self._lost = ClaimLost(
            f"the claim of {self.owner!r} on {_where(self.store, self.path)} {how}{by}", path=self.path, holder=holder
        )

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Claim({_where(self.store, self.path)}, owner={self.owner!r}, generation={self._record.generation})"


def claim_writer(
    store: Store,
    path: str,
    *,
    owner: str,
    ttl: float = 60.0,
    wait: float = 0.0,
    poll: float | None = None,
    info: dict[str, Any] | None = None,
    heartbeat: bool = False,
) -> Claim:
    """Take the writer claim on the node at ``path``: at most one live writer per node.

    ``owner`` names the writer (a flow run id): the same owner takes its own claim again (a retry of
    the same run proceeds). While another owner's claim is in force this raises
    :class:`~zarrcore.errors.WriterBusy` naming it, or, with ``wait`` seconds, polls every ``poll``
    seconds until the claim is released or expires, then raises if the time is up. A claim expires
    ``ttl`` seconds after its last renewal; ``info`` (JSON values) is stored with it and shown in the
    errors. ``heartbeat=True`` starts :meth:`Claim.start_heartbeat`. Use it as a context manager to
    release it at the end.
    """
    if not isinstance(owner, str) or not owner:
        raise ValueError("owner must be a non-empty string (e.g. the flow run id)")
    if not ttl > 0 or not wait >= 0:
        raise ValueError(f"ttl must be > 0 and wait >= 0, got ttl={ttl!r}, wait={wait!r}")
    interval = poll if poll is not None else min(1.0, max(0.05, ttl / 10))
    token = uuid.uuid4().hex
    host, pid = socket.gethostname(), os.getpid()
    deadline = time.monotonic() + wait
    while True:
        gens, current = read_current(store, path)
        now = time.time()
        if current is not None and current.live(now) and current.owner != owner:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WriterBusy(
                    f"{_where(store, path)} is being written by {current.describe()}; "
                    "wait for it (wait=) or try again later",
                    path=path,
                    holder=current,
                )
            time.sleep(min(interval, left))
            continue
        start = time.monotonic()
        record = ClaimInfo(owner, token, host, pid, now, now + ttl, gens[-1] + 1 if gens else 0, info=dict(info or {}))
        if not write_generation(store, path, record):
            continue  # another taker won this generation: look again
        gens, current = read_current(store, path)
        if current is None or current.token != token:
            continue
        prune(store, path, gens, record.generation, KEEP)
        claim = Claim(store, path, record, ttl, start + ttl)
        return claim.start_heartbeat() if heartbeat else claim


def current_writer(store: Store, path: str) -> ClaimInfo | None:
    """The live claim on the node at ``path`` (owner, host, pid, since, expires), or ``None``."""
    current = read_current(store, path)[1]
    return current if current is not None and current.live(time.time()) else None
