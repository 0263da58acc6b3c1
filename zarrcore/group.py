"""Groups: hierarchy nodes with attributes, children, and consolidated metadata."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from zarrcore.array import Array
from zarrcore.attributes import Attributes
from zarrcore.errors import NotFound
from zarrcore.metadata import ZARR_JSON, ZARRAY, ZATTRS, ZGROUP, ZMETADATA, ArrayMetadata, GroupMetadata, json_dumps
from zarrcore.nodes import Node, create_node, describe_location, node_from_documents, read_node, write_node
from zarrcore.spec import resolve_metadata
from zarrcore.storage.base import Store, join_key, validate_key

__all__ = ["Group", "open_node", "consolidate", "consolidated_metadata", "write_consolidated"]



def _node(store: Store, path: str, meta: ArrayMetadata | GroupMetadata, read_only: bool) -> Array | Group:
    if isinstance(meta, ArrayMetadata):
        return Array(store, path, meta, read_only=read_only)
    return Group(store, path, meta, read_only=read_only)


def open_node(store: Store, path: str, *, read_only: bool = True) -> Array | Group:
    """Open whatever node is at ``path``."""
    return _node(store, path, read_node(store, path), read_only)


class Group(Node):
    """A Zarr group. Children are found through consolidated metadata when present, else by listing."""

    kind = "group"

    def __init__(self, store: Store, path: str, metadata: GroupMetadata, *, read_only: bool = False) -> None:
        super().__init__(store, path, read_only=read_only)
        self._meta = metadata
        self._attrs = Attributes(metadata.attributes, self._save_attributes)

    @property
    def metadata(self) -> GroupMetadata:
        return self._meta

    def __repr__(self) -> str:
        return f"<zarrcore.Group {self.url}>"

    def _save_attributes(self, attrs: dict[str, Any]) -> None:
        self.check_writable()
        meta = GroupMetadata(self._meta.zarr_format, attrs, self._meta.consolidated)
        write_node(self.store, self.path, meta)
        self._meta = meta

    # -- children --------------------------------------------------------------------------------
    def _child_path(self, name: str) -> str:
        return join_key(self.path, name)

    def _parent_of(self, name: str) -> tuple[Group, str]:
        """The group that holds ``name`` (``"a/b/x"``: group ``a/b``, created if missing) and the leaf name."""
        validate_key(self._child_path(name))  # refuse '..' before anything is created
        parent, _, leaf = name.strip("/").rpartition("/")
        group = self
        for part in parent.split("/") if parent else ():
            group = group.require_group(part)
        return group, leaf

    def create_array(
        self, name: str, *, overwrite: bool = False, metadata: ArrayMetadata | None = None, **kwargs: Any
    ) -> Array:
        """Create a child array (same arguments as :func:`zarrcore.create`, or its ``metadata``; the
        format is the group's unless given). A nested ``name`` (``"a/b/x"``) creates the missing
        groups on the way."""
        self.check_writable()
        if metadata is None:
            kwargs.setdefault("zarr_format", self.zarr_format)
        meta = resolve_metadata(metadata, kwargs)
        parent, leaf = self._parent_of(name)
        path = parent._child_path(leaf)
        meta = create_node(self.store, path, meta, overwrite=overwrite)  # type: ignore[assignment]
        return Array(self.store, path, meta)  # type: ignore[arg-type]

    def create_group(self, name: str, *, attributes: dict[str, Any] | None = None, overwrite: bool = False) -> Group:
        """Create a child group (a nested ``name`` creates the missing groups on the way)."""
        self.check_writable()
        parent, leaf = self._parent_of(name)
        path = parent._child_path(leaf)
        meta = create_node(self.store, path, GroupMetadata(self.zarr_format, dict(attributes or {})),
                           overwrite=overwrite)  # fmt: skip
        return Group(self.store, path, meta)  # type: ignore[arg-type]

    def require_group(self, name: str) -> Group:
        """The child group ``name``, created if absent."""
        try:
            node = self[name]
        except KeyError:
            return self.create_group(name)
        if not isinstance(node, Group):
            raise TypeError(f"{node.url} is an array, not a group")
        return node

    def _consolidated_docs(self, rel: str) -> dict[str, Any] | None:
        cons = self._meta.consolidated
        if cons is None:
            return None
        if self.zarr_format == 3:
            return {ZARR_JSON: cons[rel]} if rel in cons else None
        docs = {n: cons[f"{rel}/{n}"] for n in (ZARRAY, ZGROUP, ZATTRS) if f"{rel}/{n}" in cons}
        return docs or None

    def _descendants(self, rel: str, nested: dict[str, Any] | None) -> dict[str, Any]:
        """Consolidated entries below child ``rel``, relative to it. Writers flatten the whole hierarchy
        into the root's entries (zarr-python leaves each child group's own entries empty)."""
        prefix = rel + "/"
        below = {k[len(prefix) :]: v for k, v in (self._meta.consolidated or {}).items() if k.startswith(prefix)}
        return {**(nested or {}), **below}

    def __getitem__(self, name: str) -> Array | Group:
        rel = name.strip("/")
        docs = self._consolidated_docs(rel)
        path = self._child_path(rel)
        if docs is not None:
            meta = node_from_documents(docs, describe_location(self.store, path))
            if isinstance(meta, GroupMetadata):
                meta = GroupMetadata(meta.zarr_format, meta.attributes, self._descendants(rel, meta.consolidated))
            return _node(self.store, path, meta, self.read_only)
        try:
            return open_node(self.store, path, read_only=self.read_only)
        except NotFound:
            raise NotFound(f"no array or group named {name!r} in {self.url}", key=path, store=self.store.url) from None

    def __contains__(self, name: object) -> bool:
        try:
            self[str(name)]
        except KeyError:
            return False
        return True

    def _child_names(self) -> list[str]:
        cons = self._meta.consolidated
        if cons is not None:
            names = set()
            for key in cons:
                parts = key.split("/")
                v3_child = self.zarr_format == 3 and len(parts) == 1
                v2_child = self.zarr_format == 2 and len(parts) == 2 and parts[1] in (ZARRAY, ZGROUP)
                if v3_child or v2_child:
                    names.add(parts[0])
            return sorted(names)
        _, dirs = self.store.list_dir(self.path)
        return [d for d in dirs if self._is_node(self._child_path(d))]

    def _is_node(self, path: str) -> bool:
        names = (ZARR_JSON,) if self.zarr_format == 3 else (ZARRAY, ZGROUP)
        return any(self.store.exists(join_key(path, n)) for n in names)

    def __iter__(self) -> Iterator[str]:
        return iter(self._child_names())

    def members(self) -> dict[str, Array | Group]:
        """Direct children by name."""
        return {name: self[name] for name in self._child_names()}

    def arrays(self) -> dict[str, Array]:
        return {k: v for k, v in self.members().items() if isinstance(v, Array)}

    def groups(self) -> dict[str, Group]:
        return {k: v for k, v in self.members().items() if isinstance(v, Group)}

    def tree(self) -> str:
        """The hierarchy below this group as indented text."""
        lines = [self.name if self.path else "/"]

        def walk(group: Group, indent: str) -> None:
            items = list(group.members().items())
            for i, (name, node) in enumerate(items):
                last = i == len(items) - 1
                branch = "└── " if last else "├── "
                if isinstance(node, Array):
                    lines.append(f"{indent}{branch}{name} {node.shape} {node.dtype}")
                else:
                    lines.append(f"{indent}{branch}{name}")
                    walk(node, indent + ("    " if last else "│   "))

        walk(self, "")
        return "\n".join(lines)

    def consolidate(self) -> Group:
        """Write consolidated metadata for everything below this group; returns the reopened group."""
        self.check_writable()
        return consolidate(self.store, self.path)


def _walk_documents(store: Store, path: str, zarr_format: int) -> dict[str, Any]:
    """Metadata documents of every node below ``path`` (by listing), keyed as consolidated metadata keys."""
    out: dict[str, Any] = {}
    fresh = Group(store, path, GroupMetadata(zarr_format), read_only=True)

    def walk(group: Group, rel: str) -> None:
        for name in group._child_names():
            child_rel = f"{rel}/{name}" if rel else name
            node = open_node(store, join_key(path, child_rel))
            docs = node.metadata.to_documents()
            if zarr_format == 3:
                out[child_rel] = docs[ZARR_JSON]
            else:
                for key, doc in docs.items():
                    out[f"{child_rel}/{key}"] = doc
            if isinstance(node, Group):
                walk(Group(store, node.path, GroupMetadata(zarr_format), read_only=True), child_rel)

    walk(fresh, "")
    return out


def consolidate(store: Store, path: str = "") -> Group:
    """Write consolidated metadata (v2 ``.zmetadata``, v3 inline in ``zarr.json``) at the group ``path``."""
    meta = read_node(store, path)
    if not isinstance(meta, GroupMetadata):
        raise TypeError(f"{describe_location(store, path)} is an array; consolidate a group")
    new = _with_documents(meta, _walk_documents(store, path, meta.zarr_format))
    if not _consolidated_as(store, path, new):  # a rerun over an unchanged hierarchy writes nothing
        write_consolidated(store, path, new)
    return Group(store, path, new)


def _consolidated_document(path: str, meta: GroupMetadata) -> tuple[str, bytes]:
    """The key and bytes :func:`write_consolidated` puts for ``meta``."""
    if meta.zarr_format == 3:
        return join_key(path, ZARR_JSON), json_dumps(meta.to_documents()[ZARR_JSON])
    doc = {"metadata": meta.consolidated or {}, "zarr_consolidated_format": 1}
    return join_key(path, ZMETADATA), json_dumps(doc)


def _consolidated_as(store: Store, path: str, meta: GroupMetadata) -> bool:
    """Whether the stored consolidated document already holds exactly the bytes ``meta`` would write."""
    key, data = _consolidated_document(path, meta)
    try:
        return store.get(key) == data
    except NotFound:
        return False


def _with_documents(meta: GroupMetadata, docs: dict[str, Any]) -> GroupMetadata:
    if meta.zarr_format == 3:
        return GroupMetadata(3, meta.attributes, docs)
    return GroupMetadata(2, meta.attributes, {**GroupMetadata(2, meta.attributes).to_documents(), **docs})


def consolidated_metadata(
    meta: GroupMetadata, children: dict[str, ArrayMetadata | GroupMetadata]
) -> GroupMetadata:
    """The group's metadata with ``children`` (paths relative to the group -> their metadata) as its
    consolidated entries, built in memory: nothing is read or written."""
    docs: dict[str, Any] = {}
    for rel, child in sorted(children.items()):
        for key, doc in child.to_documents().items():
            docs[rel if meta.zarr_format == 3 else f"{rel}/{key}"] = doc
    return _with_documents(meta, docs)


def write_consolidated(store: Store, path: str, meta: GroupMetadata) -> None:
    """Write a group's consolidated metadata as one PUT: v3 the group's ``zarr.json`` with its inline
    entries, v2 ``.zmetadata``."""
    if meta.zarr_format == 3:
        write_node(store, path, meta)
    else:
        store.put(*_consolidated_document(path, meta))


def open_group_mode(store: Store, path: str, mode: Literal["r", "r+"]) -> Group:
    node = open_node(store, path, read_only=mode == "r")
    if not isinstance(node, Group):
        raise TypeError(f"{node.url} is an array, not a group")
    return node
