"""Arrays that zarrcore writes to S3, GCS and Azure read exactly in zarr-python through its own
stores (obstore for S3, gcsfs, adlfs), and the other way round. The codec/dtype matrix lives in
test_interop_matrix.py; this file checks the object-store paths, prefixes and missing chunks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

import zarrcore  # noqa: E402
from tests.fixtures.zarr_python_stores import ZarrPythonStores  # noqa: E402

ATTRS = {"title": "cloud interop", "units": "µm", "nested": {"n": [1, 2.5, None]}}
FILL = -1
SCHEMES = {"s3": "s3", "gcs": "gs", "azure": "az"}


def sample() -> np.ndarray:
    """37 x 23 int32 with partial edge chunks and one all-fill chunk (not stored, read as fill)."""
    data = np.arange(37 * 23, dtype="int32").reshape(37, 23)
    data[10:20, 7:14] = FILL
    return data


@pytest.fixture
def zarr_python_store(request: pytest.FixtureRequest) -> Iterator[Callable[[str, str, str, bool], Any]]:
    """``make(backend, bucket, prefix, read_only)``: zarr-python's own store on a bucket of our servers."""
    stores = ZarrPythonStores()

    def make(backend: str, bucket: str, prefix: str, read_only: bool) -> Any:
        server = request.getfixturevalue(f"{backend}_server")
        return stores.open(backend, server, bucket, prefix, read_only=read_only)

    yield make
    stores.close()


def _bucket(backend: str, request: pytest.FixtureRequest) -> tuple[Any, str]:
    server = request.getfixturevalue(f"{backend}_server")
    return server, server.new_container() if backend == "azure" else server.new_bucket()


def _url(backend: str, bucket: str, prefix: str) -> str:
    return f"{SCHEMES[backend]}://{bucket}/{prefix}"


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("backend", ["s3", "gcs", "azure"])
def test_zarrcore_writes_zarr_python_reads(
    backend: str, zarr_format: int, request: pytest.FixtureRequest, zarr_python_store: Any
) -> None:
    server, bucket = _bucket(backend, request)
    data = sample()
    array = zarrcore.create(
        _url(backend, bucket, "deep/a.zarr"),
        shape=data.shape,
        chunks=(10, 7),
        dtype="int32",
        fill_value=FILL,
        zarr_format=zarr_format,  # type: ignore[arg-type]
        attributes=ATTRS,
        storage_options=server.options(),
    )
    array[:] = data
    theirs = zarr.open_array(store=zarr_python_store(backend, bucket, "deep/a.zarr", True), mode="r")
    assert theirs.metadata.zarr_format == zarr_format
    np.testing.assert_array_equal(theirs[:], data)
    assert theirs.dtype == np.dtype("int32") and theirs.fill_value == FILL
    assert dict(theirs.attrs) == ATTRS


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("backend", ["s3", "gcs", "azure"])
def test_zarr_python_writes_zarrcore_reads(
    backend: str, zarr_format: int, request: pytest.FixtureRequest, zarr_python_store: Any
) -> None:
    server, bucket = _bucket(backend, request)
    data = sample()
    theirs = zarr.create_array(
        store=zarr_python_store(backend, bucket, "deep/b.zarr", False),
        shape=data.shape,
        chunks=(10, 7),
        dtype="int32",
        fill_value=FILL,
        zarr_format=zarr_format,
        attributes=ATTRS,
    )
    theirs[:] = data
    ours = zarrcore.open(_url(backend, bucket, "deep/b.zarr"), storage_options=server.options())
    assert isinstance(ours, zarrcore.Array)
    np.testing.assert_array_equal(ours[:], data)
    np.testing.assert_array_equal(ours[12:31, 5:9], data[12:31, 5:9])
    assert dict(ours.attrs) == ATTRS
    # The all-fill chunk was not stored by either library.
    store = zarrcore.open_store(_url(backend, bucket, "deep/b.zarr"), **server.options())
    assert len(list(store.list())) == 1 + 4 * 4 - 1 + (1 if zarr_format == 2 else 0)
