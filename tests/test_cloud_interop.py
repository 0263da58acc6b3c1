"""Arrays that zarrcore writes to S3, GCS and Azure read exactly in zarr-python through its own
stores (obstore for S3, gcsfs, adlfs), and the other way round. The codec/dtype matrix lives in
test_interop_matrix.py; this file checks the object-store paths, prefixes and missing chunks."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")  # before gcsfs is imported

zarr = pytest.importorskip("zarr")
from zarr.core.sync import sync  # noqa: E402

import zarrcore  # noqa: E402

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

    def make(backend: str, bucket: str, prefix: str, read_only: bool) -> Any:
        server = request.getfixturevalue(f"{backend}_server")
        if backend == "s3":
            import obstore

            s3 = obstore.store.S3Store(
                bucket,
                prefix=prefix,
                endpoint=server.endpoint_url,
                access_key_id=server.access_key,
                secret_access_key=server.secret_key,
                region=server.region,
                client_options={"allow_http": True},
            )
            return zarr.storage.ObjectStore(s3, read_only=read_only)
        options = {"asynchronous": True, "skip_instance_cache": True}
        if backend == "gcs":
            import gcsfs

            fs = gcsfs.GCSFileSystem(endpoint_url=server.endpoint_url, token="anon", project="test", **options)
        else:
            import adlfs

            fs = adlfs.AzureBlobFileSystem(connection_string=server.connection_string(), **options)
        filesystems.append(fs)
        return zarr.storage.FsspecStore(fs, path=f"{bucket}/{prefix}", read_only=read_only)

    filesystems: list[Any] = []
    yield make
    # Close the async filesystems' HTTP clients on zarr's loop, which ran their I/O. adlfs would do it in
    # a finalizer that holds the filesystem itself, so it runs only at exit, without a loop, and fails.
    for fs in filesystems:
        for client in (getattr(fs, "_session", None), getattr(fs, "service_client", None)):
            if client is not None:
                sync(client.close())
    for finalizer in list(weakref.finalize._registry):  # type: ignore[attr-defined]
        info = finalizer.peek()
        if info is not None and any(info[0] is fs for fs in filesystems):
            finalizer.detach()


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
