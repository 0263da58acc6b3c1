"""Fixtures of the flow tests: a fresh bucket on each object store's emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.zarr_python_stores import ZarrPythonStores


@pytest.fixture
def cloud(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``cloud(backend) -> (url, storage_options, zarr-python store)`` on a fresh bucket of the session's servers."""
    stores = ZarrPythonStores()

    def make(backend: str) -> tuple[str, dict[str, Any], Any]:
        server = request.getfixturevalue(f"{backend}_server")
        if backend == "s3":
            bucket = server.new_bucket()
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
            options = {"endpoint_url": server.endpoint_url, "region": server.region, "addressing_style": "path"}
            return f"s3://{bucket}/ds.zarr", options, stores.open(backend, server, bucket, "ds.zarr", read_only=True)
        if backend == "gcs":
            bucket = server.new_bucket()
            return f"gs://{bucket}/ds.zarr", server.options(), stores.open(backend, server, bucket, "ds.zarr",
                                                                            read_only=True)  # fmt: skip
        container = server.new_container()
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string())
        return f"az://{container}/ds.zarr", {}, stores.open(backend, server, container, "ds.zarr", read_only=True)

    yield make
    stores.close()
