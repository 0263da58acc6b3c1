"""The Azure URL forms through the flows, against Azurite: the account form
``az://container@account.blob.core.windows.net/path`` (the account named by the URL, its endpoint given
as the non-secret ``account_url`` option, the key from ``AZURE_STORAGE_KEY``) and ``abfss://`` (the
connection string from ``AZURE_STORAGE_CONNECTION_STRING``). zarr-python reads back what was written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from flows.ingest import ingest
from flows.verify import verify
from tests.fixtures.flowkit import run_flow
from tests.fixtures.prefect import prefect_api  # noqa: F401  (the session's one Prefect server)
from tests.fixtures.servers import AzureServer
from tests.fixtures.zarr_python_stores import ZarrPythonStores

pytestmark = pytest.mark.usefixtures("prefect_api")

FAST = {"max_workers": 3, "max_chunks_per_batch": 4, "retry_delay_seconds": 0.01}


@pytest.fixture
def reader(azure_server: AzureServer) -> Iterator[Any]:
    stores = ZarrPythonStores()
    yield lambda container: stores.open("azure", azure_server, container, "ds.zarr", read_only=True)
    stores.close()


def _ingest_and_check(tmp_path: Path, url: str, options: dict[str, Any], zarr_store: Any) -> None:
    data = np.random.default_rng(12).standard_normal((30, 20)).astype("float32")
    np.save(tmp_path / "src.npy", data)
    state, _ = run_flow(ingest, source={"kind": "npy", "path": str(tmp_path / "src.npy")}, destination=url,
                        array="a", layout={"chunks": [15, 10]}, execution=FAST, storage_options=options)  # fmt: skip
    assert state.is_completed(), state.message
    np.testing.assert_array_equal(zarr.open_group(zarr_store, mode="r", use_consolidated=True)["a"][:], data)
    checked, _ = run_flow(verify, destination=url, array="a", execution=FAST, storage_options=options)
    assert checked.is_completed() and checked.result()["arrays"][0]["chunks_checked"] == 4


def test_the_account_form_through_the_flows(
    tmp_path: Path, azure_server: AzureServer, reader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = azure_server.new_container()
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_KEY", azure_server.key)
    url = f"az://{container}@{azure_server.account}.blob.core.windows.net/ds.zarr"
    _ingest_and_check(tmp_path, url, {"account_url": azure_server.account_url}, reader(container))


def test_abfss_through_the_flows(
    tmp_path: Path, azure_server: AzureServer, reader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = azure_server.new_container()
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_server.connection_string())
    _ingest_and_check(tmp_path, f"abfss://{container}/ds.zarr", {}, reader(container))
