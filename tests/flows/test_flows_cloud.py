"""Ingest into each object store (S3 on moto, GCS on fake-gcs-server, Azure on Azurite): zarr-python,
through its own stores, reads back exactly the source; verify passes; a rerun is all cache hits. The
stores get only non-secret options; credentials come from each SDK's environment chain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from flows.ingest import ingest
from flows.verify import verify
from tests.fixtures.flowkit import batch_states, count_chunk_writes, run_flow

pytestmark = pytest.mark.usefixtures("prefect_api")

FAST = {"max_workers": 3, "max_chunks_per_batch": 4, "retry_delay_seconds": 0.01}


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


def test_the_ledger_can_live_in_a_results_store_on_a_custom_endpoint(
    tmp_path: Path, s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``results_url`` with ``results_storage_options``: the batches' results go to S3 on moto's endpoint,
    and a rerun finds them there (every batch cached, no chunk rewritten)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    bucket = s3_server.new_bucket()
    options = {"endpoint_url": s3_server.endpoint_url, "region": s3_server.region, "addressing_style": "path"}
    params = {"source": {"kind": "synthetic", "shape": [40, 30], "dtype": "int16", "seed": 5},
              "destination": str(tmp_path / "local.zarr"), "array": "a", "layout": {"chunks": [10, 10]},
              "execution": FAST, "results_url": f"s3://{bucket}/ledger",
              "results_storage_options": options}  # fmt: skip
    state, run_id = run_flow(ingest, **params)
    assert state.is_completed(), state.message
    listed = s3_server.client().list_objects_v2(Bucket=bucket, Prefix="ledger/")
    assert listed.get("KeyCount", 0) == len(batch_states(run_id)) == 3  # one result per batch, on S3
    assert not list((tmp_path / "local.zarr" / "a").glob(".zarrcore/results/*"))  # none inside the array
    with count_chunk_writes() as writes:
        state, run_id = run_flow(ingest, **params)
    assert state.is_completed() and writes.total == 0 and set(batch_states(run_id).values()) == {"Cached"}
