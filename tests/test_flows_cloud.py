"""Ingest into each object store (S3 on moto, GCS on fake-gcs-server, Azure on Azurite): zarr-python,
through its own stores, reads back exactly the source; verify passes; a rerun is all cache hits. The
stores get only non-secret options; credentials come from each SDK's environment chain."""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")  # before gcsfs is imported

import zarr
from zarr.core.sync import sync

from flows.ingest import ingest
from flows.verify import verify
from tests.fixtures.flowkit import batch_states, count_chunk_writes, run_flow
from tests.fixtures.prefect import prefect_api  # noqa: F401  (the session's one Prefect server)

pytestmark = pytest.mark.usefixtures("prefect_api")

FAST = {"max_workers": 3, "max_chunks_per_batch": 4, "retry_delay_seconds": 0.01}


@pytest.fixture
def cloud(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``cloud(backend) -> (url, storage_options, zarr-python store)`` on a fresh bucket of the session's servers."""
    filesystems: list[Any] = []

    def make(backend: str) -> tuple[str, dict[str, Any], Any]:
        server = request.getfixturevalue(f"{backend}_server")
        if backend == "s3":
            import obstore

            bucket = server.new_bucket()
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
            options = {"endpoint_url": server.endpoint_url, "region": server.region, "addressing_style": "path"}
            s3 = obstore.store.S3Store(bucket, prefix="ds.zarr", endpoint=server.endpoint_url,
                                       access_key_id=server.access_key, secret_access_key=server.secret_key,
                                       region=server.region, client_options={"allow_http": True})  # fmt: skip
            return f"s3://{bucket}/ds.zarr", options, zarr.storage.ObjectStore(s3, read_only=True)
        if backend == "gcs":
            import gcsfs

            bucket = server.new_bucket()
            fs = gcsfs.GCSFileSystem(endpoint_url=server.endpoint_url, token="anon", project="test",
                                     asynchronous=True, skip_instance_cache=True)  # fmt: skip
            filesystems.append(fs)
            store = zarr.storage.FsspecStore(fs, path=f"{bucket}/ds.zarr", read_only=True)
            return f"gs://{bucket}/ds.zarr", server.options(), store
        import adlfs

        container = server.new_container()
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string())
        fs = adlfs.AzureBlobFileSystem(connection_string=server.connection_string(), asynchronous=True,
                                       skip_instance_cache=True)  # fmt: skip
        filesystems.append(fs)
        store = zarr.storage.FsspecStore(fs, path=f"{container}/ds.zarr", read_only=True)
        return f"az://{container}/ds.zarr", {}, store

    yield make
    for fs in filesystems:  # close the async clients on zarr's loop, which ran their I/O
        for client in (getattr(fs, "_session", None), getattr(fs, "service_client", None)):
            if client is not None:
                sync(client.close())
    for finalizer in list(weakref.finalize._registry):  # type: ignore[attr-defined]
        info = finalizer.peek()
        if info is not None and any(info[0] is fs for fs in filesystems):
            finalizer.detach()


@pytest.mark.parametrize("backend", ["s3", "gcs", "azure"])
def test_ingest_into_object_storage(tmp_path: Path, cloud: Any, backend: str) -> None:
    data = np.random.default_rng(4).standard_normal((45, 30)).astype("float64")
    data[:15, :10] = np.nan  # one chunk of fill values only
    np.save(tmp_path / "src.npy", data)
    url, options, reader = cloud(backend)
    params = {"source": {"kind": "npy", "path": str(tmp_path / "src.npy")}, "destination": url, "array": "a",
              "layout": {"chunks": [15, 10], "fill_value": "NaN"}, "execution": FAST,
              "storage_options": options}  # fmt: skip
    state, _ = run_flow(ingest, **params)
    assert state.is_completed(), state.message
    group = zarr.open_group(reader, mode="r", use_consolidated=True)
    np.testing.assert_array_equal(group["a"][:], data)
    checked, _ = run_flow(verify, destination=url, array="a", execution=FAST, storage_options=options)
    assert checked.is_completed() and checked.result()["arrays"][0]["chunks_checked"] == 9
    with count_chunk_writes() as writes:
        state, run_id = run_flow(ingest, **params)
    assert state.is_completed() and writes.total == 0 and set(batch_states(run_id).values()) == {"Cached"}
