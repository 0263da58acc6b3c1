"""User attributes of an array or group, persisted on every change."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from zarrcore.errors import MetadataError

__all__ = ["Attributes"]


class Attributes(MutableMapping[str, Any]):
    """A dict-like view of a node's attributes; each change is written to the store at once."""

    def __init__(self, data: dict[str, Any], save: Callable[[dict[str, Any]], None]) -> None:
        self._data = dict(data)
        self._save = save

    def _commit(self, new: dict[str, Any]) -> None:
        try:
            json.dumps(new, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise MetadataError(f"attributes must be JSON-serializable: {exc}") from None
        self._save(new)
        self._data = new

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._commit({**self._data, key: value})

    def __delitem__(self, key: str) -> None:
        new = dict(self._data)
        del new[key]
        self._commit(new)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Apply many changes with one write."""
        self._commit({**self._data, **dict(*args, **kwargs)})

    def put(self, data: dict[str, Any]) -> None:
        """Replace all attributes with one write."""
        self._commit(dict(data))

    def asdict(self) -> dict[str, Any]:
        return dict(self._data)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Attributes({self._data!r})"
