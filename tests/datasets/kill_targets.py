"""Where a kill test's dataset lives: a folder on local disk, or a prefix of a bucket on one of the
session's emulators. A :class:`Target` travels to the writer and reader processes as JSON, so that each
opens the same place: the writer through zarrcore's store, the reader through xarray with its defaults
(zarr-python's own stores on the emulators, as tests/fixtures/zarr_python_stores.py opens them)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import xarray as xr

from tests.fixtures.zarr_python_stores import ZarrPythonStores
from zarrcore.storage import Store, open_store

__all__ = ["Target", "opened"]

SCHEMES = {"s3": "s3", "gcs": "gs", "azure": "az"}


@dataclass(frozen=True)
class Target:
    """A dataset's root on one backend (``local``, ``s3``, ``gcs`` or ``azure``)."""

    backend: str
    #: The folder on local disk, or the dataset's prefix in ``bucket``.
    path: str
    bucket: str = ""
    #: zarrcore's storage options (endpoint, credentials of the emulator).
    options: dict[str, Any] = field(default_factory=dict)
    #: What zarr-python's store needs of the emulator (:func:`~tests.fixtures.zarr_python_stores.endpoint_of`).
    endpoint: dict[str, str] = field(default_factory=dict)

    @classmethod
    def local(cls, folder: str | Path) -> Target:
        return cls("local", str(folder))

    @classmethod
    def from_json(cls, text: str) -> Target:
        return cls(**json.loads(text))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @property
    def url(self) -> str:
        """zarrcore's URL of the dataset's root."""
        if self.backend == "local":
            return Path(self.path).as_uri()
        return f"{SCHEMES[self.backend]}://{self.bucket}/{self.path}"

    def store(self) -> Store:
        """zarrcore's store on the dataset's root."""
        return open_store(self.url, **self.options)

    def sibling(self, name: str) -> Target:
        """The same kind of place beside this one: a folder in the same parent, a prefix in the same bucket."""
        return replace(self, path=str(Path(self.path).parent / name) if self.backend == "local" else name)

    def readable(self, stores: ZarrPythonStores) -> Any:
        """What a reader gives ``xr.open_zarr``: the folder, or zarr-python's store on the prefix (opened
        once, read many times, as a long-lived reader would)."""
        if self.backend == "local":
            return self.path
        return stores.open(self.backend, self.endpoint, self.bucket, self.path, read_only=True)


def opened(readable: Any) -> xr.Dataset:
    """The dataset as xarray reads it with its defaults (consolidated metadata, CF decoding), loaded."""
    return xr.open_zarr(readable).load()
