"""Reading and writing node metadata in a store: the one place that enforces create-only metadata.

Creating a node is exclusive and resumable. The creator first writes a create-only **intent**,
``<node>/.zarrcore/node.json`` (the node's kind, format and a digest of its documents): of two creators
at one path, whatever their kinds and formats, exactly one writes it; another with other metadata gets
:class:`~zarrcore.errors.MetadataConflictError`, one with identical metadata goes on as the same
creation. The documents follow, the primary one (``zarr.json``, ``.zarray`` or ``.zgroup``) last with
a create-only put, so readers see the node only complete; then the intent is deleted (the node now
excludes others: a creator that takes a freed intent looks for the node again first). A creation cut
at any point is finished by running it again; its intent stays until then.
"""

from __future__ import annotations

import hashlib
from typing import Any

from zarrcore.attributes import Attributes
from zarrcore.claims.record import BOOKKEEPING_DIR, CLAIMS_DIR
from zarrcore.errors import AlreadyExists, MetadataConflictError, MetadataError, NotFound, ReadOnlyError
from zarrcore.metadata import (
    ZARR_JSON,
    ZARRAY,
    ZATTRS,
    ZGROUP,
    ZMETADATA,
    ArrayMetadata,
    GroupMetadata,
    json_dumps,
    json_loads,
    parse_array_v2,
    parse_array_v3,
    parse_group_v3,
)
from zarrcore.storage.base import Store, folder_prefix, join_key, validate_key

__all__ = [
    "Node",
    "clear_node",
    "intent_key",
    "create_node",
    "describe_location",
    "node_from_documents",
    "read_node",
    "try_read_node",
    "write_node",
]

NodeMetadata = ArrayMetadata | GroupMetadata
#: The name, in the bookkeeping folder of a node, of its creation intent.
NODE_INTENT = "node.json"


class Node:
    """What arrays and groups share: a place in a store, metadata, attributes and a read-only flag."""

    #: "array" or "group", for messages.
    kind = "node"
    _meta: NodeMetadata
    _attrs: Attributes

    def __init__(self, store: Store, path: str, *, read_only: bool) -> None:
        self.store = store
        self.path = path.strip("/")
        self.read_only = read_only

    @property
    def zarr_format(self) -> int:
        return self._meta.zarr_format

    @property
    def attrs(self) -> Attributes:
        """Attributes, persisted on every change."""
        return self._attrs

    @property
    def url(self) -> str:
        """The store URL plus the node's path (never holds credentials)."""
        return describe_location(self.store, self.path)

    @property
    def name(self) -> str:
        return "/" + self.path

    def check_writable(self) -> None:
        """Raise :class:`~zarrcore.errors.ReadOnlyError` if the node was opened read-only."""
        if self.read_only:
            raise ReadOnlyError(f"{self.kind} {self.url} is opened read-only; open it with mode='r+' to write")


def describe_location(store: Store, path: str) -> str:
    return f"{store.url.rstrip('/')}/{path}" if path else store.url


def _get_json(store: Store, key: str) -> dict[str, Any] | None:
    try:
        data = store.get(key)
    except NotFound:
        return None
    return json_loads(data, key)


def node_from_documents(docs: dict[str, Any], where: str) -> NodeMetadata:
    """Build node metadata from documents by key (``zarr.json``, or ``.zarray``/``.zgroup`` + ``.zattrs``)."""
    for name, doc in docs.items():
        if not isinstance(doc, dict):
            raise MetadataError(f"{where}: {name} must be a JSON object, got {type(doc).__name__}")
    if ZARR_JSON in docs:
        doc = docs[ZARR_JSON]
        if doc.get("node_type") == "group":
            return parse_group_v3(doc, where)
        return parse_array_v3(doc, where)
    if ZARRAY in docs:
        return parse_array_v2(docs[ZARRAY], docs.get(ZATTRS), where)
    if ZGROUP in docs:
        attrs = docs.get(ZATTRS) or {}
        if not isinstance(attrs, dict):
            raise MetadataError(f"{where}: .zattrs must be a JSON object")
        return GroupMetadata(zarr_format=2, attributes=attrs, consolidated=docs.get(ZMETADATA))
    raise NotFound(f"no Zarr array or group at {where}", key=where)


def try_read_node(store: Store, path: str) -> NodeMetadata | None:
    """The metadata of the node at ``path`` (v3 first, then v2), or ``None``."""
    where = describe_location(store, path)
    doc = _get_json(store, join_key(path, ZARR_JSON))
    if doc is not None:
        if doc.get("zarr_format") != 3:
            raise MetadataError(f"{where}/{ZARR_JSON}: zarr_format must be 3, got {doc.get('zarr_format')!r}")
        return node_from_documents({ZARR_JSON: doc}, f"{where}/{ZARR_JSON}")
    zarray = _get_json(store, join_key(path, ZARRAY))
    zgroup = None if zarray is not None else _get_json(store, join_key(path, ZGROUP))
    if zarray is None and zgroup is None:
        return None
    docs: dict[str, Any] = {ZARRAY: zarray} if zarray is not None else {ZGROUP: zgroup}
    attrs = _get_json(store, join_key(path, ZATTRS))
    if attrs is not None:
        docs[ZATTRS] = attrs
    if zgroup is not None:
        zmeta = _get_json(store, join_key(path, ZMETADATA))
        if zmeta is not None:
            meta = zmeta.get("metadata")
            if not isinstance(meta, dict):
                raise MetadataError(f"{where}/{ZMETADATA}: 'metadata' must be an object")
            docs[ZMETADATA] = meta
    return node_from_documents(docs, f"{where}/{ZARRAY if zarray is not None else ZGROUP}")


def read_node(store: Store, path: str) -> NodeMetadata:
    """Like :func:`try_read_node`, but a missing node raises ``NotFound``."""
    node = try_read_node(store, path)
    if node is None:
        where = describe_location(store, path)
        raise NotFound(f"no Zarr array or group at {where}", key=path or None, store=store.url)
    return node


def write_node(store: Store, path: str, meta: NodeMetadata) -> None:
    """Overwrite a node's metadata documents (for resize and attribute updates)."""
    docs = meta.to_documents()
    for name, doc in docs.items():
        store.put(join_key(path, name), json_dumps(doc))
    if meta.zarr_format == 2 and ZATTRS not in docs:
        store.delete(join_key(path, ZATTRS))


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def create_parents(store: Store, path: str, zarr_format: int) -> None:
    """Make every parent of ``path`` (the root included) a group, as zarr-python does: readers that
    walk from the root (xarray) find the node. A missing group takes the format of the group above it
    (``zarr_format`` below none); existing groups are kept; an array where a parent should be is an error."""
    if not path.strip("/"):
        return  # the root has no parent
    parts = validate_key(path.strip("/")).split("/")[:-1]
    for depth in range(len(parts) + 1):
        parent = "/".join(parts[:depth])
        node = try_read_node(store, parent)
        if node is None:
            try:
                node = create_node(store, parent, GroupMetadata(zarr_format, {}))  # type: ignore[arg-type]
            except MetadataConflictError:  # made at the same time by another creator: whatever it is
                node = try_read_node(store, parent)
        if isinstance(node, ArrayMetadata):
            raise MetadataError(f"{describe_location(store, path)}: its parent {parent or '/'!r} is an array")
        if node is not None:
            zarr_format = node.zarr_format


def create_node(store: Store, path: str, meta: NodeMetadata, *, overwrite: bool = False) -> NodeMetadata:
    """Write a new node's metadata, before any chunk (see the module docstring).

    With ``overwrite`` everything under ``path`` is deleted first, except the writer claims (a writer
    holding one must keep it: see docs/writers.md). Otherwise, if a node already exists with identical
    metadata, it is attached to (returned as it is); if it differs, or another creation with other
    metadata holds the path, :class:`MetadataConflictError` names the difference and nothing is written.
    """
    where = describe_location(store, path)
    try:
        docs = {k: json_dumps(v) for k, v in meta.to_documents().items()}
    except (TypeError, ValueError) as exc:  # only attributes hold free-form values
        raise MetadataError(f"{where}: attributes must be JSON-serializable (no NaN or objects): {exc}") from None
    if overwrite:
        clear_node(store, path)
    else:
        existing = try_read_node(store, path)
        if existing is not None:
            return _attach(existing, meta, where)
    kind = "array" if isinstance(meta, ArrayMetadata) else "group"
    primary = ZARR_JSON if meta.zarr_format == 3 else (ZARRAY if kind == "array" else ZGROUP)
    digest = hashlib.sha256(b"".join(k.encode() + b"\0" + docs[k] + b"\0" for k in sorted(docs))).hexdigest()
    intent = json_dumps({"node_type": kind, "zarr_format": meta.zarr_format, "documents": digest})
    existing = _take_intent(store, path, intent, f"v{meta.zarr_format} {kind}")
    if existing is not None:
        return _attach(existing, meta, where)
    for name, data in docs.items():  # the primary document last: the node appears complete
        if name != primary:
            store.put(join_key(path, name), data)
    try:
        store.put(join_key(path, primary), docs[primary], mode="create")
    except AlreadyExists:
        return _attach(read_node(store, path), meta, where)
    store.delete(intent_key(path))  # done: the node itself now excludes other creators
    return meta


def _take_intent(store: Store, path: str, intent: bytes, what: str) -> NodeMetadata | None:
    """Write the creation intent, or go on as the same creation; the node found instead, if any."""
    where = describe_location(store, path)
    for _ in range(8):  # each round another creator finished or gave up meanwhile
        try:
            store.put(intent_key(path), intent, mode="create")
        except AlreadyExists:
            try:
                held = store.get(intent_key(path))
            except NotFound:  # freed since: its creator finished (look for its node) or gave up
                continue
            if held == intent:
                return None  # the same creation, cut short or running: go on
            existing = try_read_node(store, path)
            if existing is not None:
                return existing
            raise MetadataConflictError(
                f"{where}: another Zarr node with different metadata is being created here, or its creation "
                f"was cut short; pass overwrite=True to replace it with this {what}",
                key=where,
            ) from None
        # the intent was free: an earlier creator may have finished (its node first, then its intent gone)
        existing = try_read_node(store, path)
        if existing is not None:
            store.delete(intent_key(path))
        return existing
    raise MetadataConflictError(f"{where}: other creators keep taking this path; try again", key=where)


def intent_key(path: str) -> str:
    """The key of the creation intent of the node at ``path``."""
    return join_key(path, BOOKKEEPING_DIR, NODE_INTENT)


def clear_node(store: Store, path: str) -> int:
    """Delete every key under ``path`` (metadata documents, chunks, bookkeeping) except the writer
    claims of ``path`` and of the nodes below it; return how many were deleted."""
    base = folder_prefix(path)
    spared = f"/{BOOKKEEPING_DIR}/{CLAIMS_DIR}/"
    doomed = [k for k in store.list(base) if spared not in "/" + k[len(base) :]]
    for key in doomed:
        store.delete(key)
    return len(doomed)


def _attach(existing: NodeMetadata, wanted: NodeMetadata, where: str) -> NodeMetadata:
    if type(existing) is not type(wanted) or existing.zarr_format != wanted.zarr_format:
        kind = "array" if isinstance(existing, ArrayMetadata) else "group"
        raise MetadataConflictError(
            f"{where}: a Zarr v{existing.zarr_format} {kind} already exists here; pass overwrite=True to replace it",
            key=where,
        )
    old = {k: v for d in existing.to_documents().values() for k, v in d.items()}
    new = {k: v for d in wanted.to_documents().values() for k, v in d.items()}
    if isinstance(existing, GroupMetadata):
        old.pop("consolidated_metadata", None)
        new.pop("consolidated_metadata", None)
    diff = _differences(old, new)
    if diff:
        details = "; ".join(f"{k}: existing {old.get(k)!r}, requested {new.get(k)!r}" for k in diff)
        raise MetadataConflictError(
            f"{where}: an array or group already exists with different metadata ({details}); "
            "open it, or pass overwrite=True to replace it",
            key=where,
        )
    return existing
