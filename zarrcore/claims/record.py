"""Where a node's writer claims live and what one claim record holds.

A claim is a sequence of small JSON objects ``<node>/.zarrcore/claims/<generation>.json``, each
written once with a create-only put and never changed; the highest generation is the claim in force.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from zarrcore.errors import AlreadyExists, NotFound, StoreError
from zarrcore.storage.base import Store, join_key

__all__ = [
    "BOOKKEEPING_DIR",
    "CLAIMS_DIR",
    "ClaimInfo",
    "claims_prefix",
    "generation_key",
    "generations",
    "prune",
    "read_current",
    "read_generation",
    "write_generation",
]

log = logging.getLogger(__name__)

#: The folder, inside a node, that holds zarrcore's and the flows' bookkeeping (never a Zarr key).
BOOKKEEPING_DIR = ".zarrcore"
#: The folder, inside the bookkeeping folder, that holds the writer claims.
CLAIMS_DIR = "claims"

_NAME = re.compile(r"^(\d{1,20})\.json$")


def claims_prefix(path: str) -> str:
    """The key prefix (ending in ``/``) of the claims of the node at ``path``."""
    return join_key(path, BOOKKEEPING_DIR, CLAIMS_DIR) + "/"


def generation_key(path: str, generation: int) -> str:
    """The key of one generation of the claim of the node at ``path``."""
    return f"{claims_prefix(path)}{generation:020d}.json"


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ClaimInfo:
    """One generation of a writer claim: who holds it, from where, since and until when.

    ``since`` and ``expires`` are seconds since the epoch on the holder's wall clock; ``token`` is
    unique to one taking of the claim (a rerun of the same owner takes a new one).
    """

    owner: str
    token: str
    host: str
    pid: int
    since: float
    expires: float
    generation: int
    released: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def live(self, now: float) -> bool:
        """Whether the claim is in force at wall-clock time ``now``."""
        return not self.released and now < self.expires

    def describe(self) -> str:
        """The holder as the error messages name it."""
        extra = "".join(f", {k} {v}" for k, v in sorted(self.info.items()))
        return (
            f"owner {self.owner!r} (host {self.host}, pid {self.pid}{extra}, since {_iso(self.since)}, "
            f"expires {_iso(self.expires)})"
        )

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, generation: int) -> ClaimInfo:
        """Decode a record; one that cannot be read counts as a lapsed claim (a successor may take over)."""
        try:
            doc = json.loads(data)
            return cls(
                owner=str(doc["owner"]),
                token=str(doc["token"]),
                host=str(doc["host"]),
                pid=int(doc["pid"]),
                since=float(doc["since"]),
                expires=float(doc["expires"]),
                generation=generation,
                released=bool(doc.get("released", False)),
                info=dict(doc.get("info") or {}),
            )
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            log.warning("claim record %d is unreadable (%s); it counts as lapsed", generation, exc)
            return cls("<unreadable claim record>", "", "?", 0, 0.0, 0.0, generation)


def generations(store: Store, path: str) -> list[int]:
    """The generations of the claim of the node at ``path`` present in the store, ascending."""
    prefix = claims_prefix(path)
    found: Iterator[re.Match[str] | None] = (_NAME.match(k[len(prefix) :]) for k in store.list(prefix))
    return sorted(int(m.group(1)) for m in found if m)


def read_generation(store: Store, path: str, generation: int) -> ClaimInfo:
    """One generation's record. Raises ``NotFound``."""
    return ClaimInfo.from_json(store.get(generation_key(path, generation)), generation)


def read_current(store: Store, path: str) -> tuple[list[int], ClaimInfo | None]:
    """The generations present and the record of the highest (the claim in force), or ``None``."""
    for _ in range(10):
        gens = generations(store, path)
        if not gens:
            return gens, None
        try:
            return gens, read_generation(store, path, gens[-1])
        except NotFound:
            continue  # cleaned up between the listing and the read: a newer generation exists
    raise StoreError(f"the claims under {claims_prefix(path)!r} in {store.url} keep changing", store=store.url)


def write_generation(store: Store, path: str, record: ClaimInfo) -> bool:
    """Create ``record``'s generation, create-only; whether it is ours afterwards.

    ``False`` when another record holds that generation. A create whose response was lost and whose
    retry met our own object counts as ours (the token tells).
    """
    try:
        store.put(generation_key(path, record.generation), record.to_json(), mode="create")
        return True
    except AlreadyExists:
        try:
            return read_generation(store, path, record.generation).token == record.token
        except NotFound:  # cleaned up: far behind the claim in force
            return False


def prune(store: Store, path: str, gens: list[int], current: int, keep: int) -> None:
    """Delete the generations more than ``keep`` below ``current`` (the store keeps a bounded number)."""
    for g in gens:
        if g <= current - keep:
            try:
                store.delete(generation_key(path, g))
            except StoreError as exc:  # the next prune retries
                log.debug("could not delete claim generation %d under %r: %s", g, path, exc)
