"""Commit records and the ledger of landed sources, kept in the dataset's ``.zarrcore/`` folder.

Each commit ``n`` has one record, ``.zarrcore/commits/<n>.json``, written create-only before any of
its chunks (two writers cannot both take number ``n``). It holds the sources, where each lands along
the dimension, and the extent before and after. A commit is *published* when its record says so, or
(append mode) when the consolidated metadata already has its target extent: the record is marked
after the consolidated PUT, which is the commit point. The ledger is the sources of published commits.
The folder's keys are not Zarr nodes, so xarray and zarr-python never see them.

The records are the truth; ``.zarrcore/ledger.json`` is a snapshot of the ledger up to a commit (written
after each publish), so a run reads only the records after it, not every record ever written. A
missing, stale or unreadable snapshot only costs reads; :func:`read_ledger` with ``snapshot=False``
(what a check does) reads every record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from zarrcore.datasets.model import SourceId
from zarrcore.errors import AlreadyExists, CommitConflictError, MetadataError, NotFound
from zarrcore.metadata import json_dumps, json_loads
from zarrcore.storage.base import Store, join_key

__all__ = ["BOOKKEEPING_DIR", "CommitRecord", "KeySpace", "Landed", "Ledger", "Placement", "read_ledger",
           "write_intent", "mark", "dataset_key", "write_snapshot"]  # fmt: skip

#: The bookkeeping folder inside the dataset's group (the name the flows use for arrays too).
BOOKKEEPING_DIR = ".zarrcore"
COMMITS = "commits"
DATASET = "dataset.json"
SNAPSHOT = "ledger.json"

State = Literal["intent", "published", "discarded"]
Mode = Literal["append", "region", "rewrite"]
#: A chunk key encoding: (``"default"`` or ``"v2"``, separator).
KeySpace = tuple[str, str]


def dataset_key(path: str, *parts: str) -> str:
    """The store key of ``parts`` inside the dataset's bookkeeping folder."""
    return join_key(path, BOOKKEEPING_DIR, *parts)


def _record_key(path: str, number: int) -> str:
    return dataset_key(path, COMMITS, f"{number:08d}.json")


@dataclass(frozen=True)
class Placement:
    """Where one source lands: ``[start, stop)`` along the dimension."""

    source: SourceId | None
    start: int
    stop: int

    def to_json(self) -> dict[str, Any]:
        return {"source": None if self.source is None else self.source.to_json(), "start": self.start,
                "stop": self.stop}  # fmt: skip

    def same_as(self) -> tuple[Any, ...]:
        """What two placements must share to write the same values (a file touched but unchanged does)."""
        src = self.source
        return (None, None, self.start, self.stop) if src is None else (src.key, src.fingerprint, self.start, self.stop)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Placement:
        src = doc.get("source")
        return cls(None if src is None else SourceId.from_json(src), int(doc["start"]), int(doc["stop"]))


@dataclass(frozen=True)
class CommitRecord:
    """One commit: its number, mode, the extent before (``base``) and after (``target``), the
    placements of its sources in order, and its state. A rewrite also holds ``keys``: the chunk key
    encoding each rewritten array moves to (its new values are written there, out of readers' sight)."""

    number: int
    mode: Mode
    base: int
    target: int
    placements: tuple[Placement, ...]
    state: State = "intent"
    keys: dict[str, KeySpace] | None = None

    def to_json(self) -> dict[str, Any]:
        doc = {"commit": self.number, "mode": self.mode, "base": self.base, "target": self.target,
               "state": self.state, "placements": [p.to_json() for p in self.placements]}  # fmt: skip
        if self.keys is not None:
            doc["keys"] = {name: list(k) for name, k in sorted(self.keys.items())}
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any], where: str) -> CommitRecord:
        try:
            keys = doc.get("keys")
            return cls(int(doc["commit"]), doc["mode"], int(doc["base"]), int(doc["target"]),
                       tuple(Placement.from_json(p) for p in doc["placements"]), doc["state"],
                       None if keys is None else {str(n): (str(k[0]), str(k[1])) for n, k in keys.items()})  # fmt: skip
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise MetadataError(f"{where}: malformed commit record ({exc})") from None

    @property
    def id(self) -> str:
        """The transaction id: the commit number as text."""
        return str(self.number)


@dataclass(frozen=True)
class Landed:
    """A landed source: its identity as recorded, the commit that published it and its range."""

    source: SourceId
    commit: int
    start: int
    stop: int


@dataclass
class Ledger:
    """The published commits' sources by key, the last commit number and the unpublished commit, if any."""

    landed: dict[str, Landed] = field(default_factory=dict)
    last: int = 0
    pending: CommitRecord | None = None
    published: list[int] = field(default_factory=list)
    #: Published commits whose record still says ``intent`` (a crash after the commit point): the next
    #: commit marks them first, since a later commit changes what tells that they are published.
    unmarked: list[CommitRecord] = field(default_factory=list)


def gaps(landed: Iterable[Landed], extent: int) -> list[tuple[int, int]]:
    """The ``[start, stop)`` ranges of ``[0, extent)`` that none of ``landed`` covers."""
    out, at = [], 0
    for start, stop in sorted((x.start, x.stop) for x in landed):
        if start > at:
            out.append((at, start))
        at = max(at, stop)
    if at < extent:
        out.append((at, extent))
    return out


def _number(key: str) -> int | None:
    try:
        return int(key.rsplit("/", 1)[-1].removesuffix(".json"))
    except ValueError:
        return None


def read_records(store: Store, path: str, *, after: int = 0) -> list[CommitRecord]:
    """Every commit record numbered above ``after``, by number."""
    prefix = dataset_key(path, COMMITS) + "/"
    keys = sorted(k for k in store.list(prefix) if k.endswith(".json") and (_number(k) or after + 1) > after)

    def load(key: str) -> CommitRecord:
        return CommitRecord.from_json(json_loads(store.get(key), key), key)

    if len(keys) <= 1:
        return [load(k) for k in keys]
    with ThreadPoolExecutor(max_workers=min(16, len(keys))) as pool:
        return sorted(pool.map(load, keys), key=lambda r: r.number)


def is_published(record: CommitRecord, extent: int, keys: Mapping[str, KeySpace] | None = None) -> bool:
    """Whether ``record`` is published, given the consolidated extent along the dimension and the
    published chunk key encoding of each array (``keys``): an append is published once the extent is
    its target, a rewrite once its arrays have moved to its keys."""
    if record.state != "intent":
        return record.state == "published"
    if record.mode == "rewrite":
        return keys is not None and bool(record.keys) and all(keys.get(n) == k for n, k in record.keys.items())
    return record.mode == "append" and record.base < record.target == extent


def _read_snapshot(store: Store, path: str) -> Ledger:
    """The ledger of the snapshot (an empty one when there is none or it cannot be read)."""
    try:
        doc = json_loads(store.get(dataset_key(path, SNAPSHOT)), SNAPSHOT)
        landed = {}
        for item in doc["landed"]:
            source = SourceId.from_json(item["source"])
            landed[source.key] = Landed(source, int(item["commit"]), int(item["start"]), int(item["stop"]))
        return Ledger(landed, int(doc["upto"]), None, [int(n) for n in doc["published"]])
    except (NotFound, MetadataError, KeyError, TypeError, ValueError, AttributeError):
        return Ledger()


def write_snapshot(store: Store, path: str, ledger: Ledger) -> None:
    """Record ``ledger`` (every commit up to ``ledger.last`` final) as the snapshot later reads start from."""
    if ledger.pending is not None or ledger.unmarked:
        return
    landed = [{"source": x.source.to_json(), "commit": x.commit, "start": x.start, "stop": x.stop}
              for x in ledger.landed.values()]  # fmt: skip
    doc = {"upto": ledger.last, "published": ledger.published, "landed": landed}
    store.put(dataset_key(path, SNAPSHOT), json_dumps(doc))


def read_ledger(store: Store, path: str, extent: int, keys: Mapping[str, KeySpace] | None = None, *,
                snapshot: bool = True) -> Ledger:  # fmt: skip
    """The ledger as the commit records, the published ``extent`` and chunk key encodings make it (a
    later commit's placement of a source, a rewrite's, replaces an earlier one): from the snapshot and
    the records after it, or (``snapshot=False``) from every record."""
    out = _read_snapshot(store, path) if snapshot else Ledger()
    for record in read_records(store, path, after=out.last):
        out.last = max(out.last, record.number)
        if is_published(record, extent, keys):
            out.published.append(record.number)
            if record.state == "intent":
                out.unmarked.append(record)
            for p in record.placements:
                if p.source is not None:
                    out.landed[p.source.key] = Landed(p.source, record.number, p.start, p.stop)
        elif record.state == "intent":
            out.pending = record
    if out.pending is not None and out.pending.number != out.last:
        raise MetadataError(f"{dataset_key(path, COMMITS)}: commit {out.pending.number} is unpublished but "
                            f"commit {out.last} follows it")  # fmt: skip
    return out


def write_intent(store: Store, path: str, record: CommitRecord) -> None:
    """Record the intent of commit ``record.number`` create-only; a writer that lost the number gets
    :class:`CommitConflictError` (and must write nothing)."""
    try:
        store.put(_record_key(path, record.number), json_dumps(record.to_json()), mode="create")
    except AlreadyExists:
        raise CommitConflictError(
            f"{store.url}: commit {record.number} of the dataset at {path or '/'} was taken by another writer"
        ) from None


def mark(store: Store, path: str, record: CommitRecord, state: State) -> CommitRecord:
    """Overwrite the record with its new ``state`` (its number is already ours)."""
    new = replace(record, state=state)
    store.put(_record_key(path, record.number), json_dumps(new.to_json()))
    return new


def read_record(store: Store, path: str, number: int) -> CommitRecord:
    key = _record_key(path, number)
    try:
        return CommitRecord.from_json(json_loads(store.get(key), key), key)
    except NotFound:
        raise NotFound(f"no commit {number} in the dataset at {store.url}/{path}", key=key) from None


def sources_of(records: Iterable[CommitRecord]) -> list[str]:
    return [p.source.key for r in records for p in r.placements if p.source is not None]
