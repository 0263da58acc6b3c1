"""The ``ingest`` flow: land a source (npy/npz, Parquet/Arrow, a Zarr array, synthetic data) in a Zarr
array on any store, in chunk batches that a rerun never redoes."""

from __future__ import annotations

from typing import Any

from flows.credentials import CredentialsBlock, with_credentials
from flows.landing import land
from flows.params import ArrayLayout, ArrayPath, Execution, StorageOptions, StoreURL, WaitSeconds
from flows.sources import SourceParam
from flows.stores import StoreRef
from flows.validation import checked_flow

__all__ = ["ingest"]


@checked_flow(name="ingest")
def ingest(
    source: SourceParam,
    destination: StoreURL,
    array: ArrayPath = "data",
    layout: ArrayLayout = ArrayLayout(),  # noqa: B008 - an immutable pydantic default, shown in the UI
    execution: Execution = Execution(),  # noqa: B008
    storage_options: StorageOptions = {},  # noqa: B006 - validated and never mutated
    results_url: StoreURL | None = None,
    results_storage_options: StorageOptions = {},  # noqa: B006
    wait_for_writer_seconds: WaitSeconds = 0.0,
    credentials_block: CredentialsBlock = None,
) -> dict[str, Any]:
    """Land ``source`` in the Zarr array ``array`` at ``destination``.

    Args:
        source: Where the data comes from: pick the kind, then fill the fields it uses (the others stay empty).
        destination: Store URL of the Zarr hierarchy (a local path, file://, s3://, gs://, az://).
        array: Path of the array in the store; with a path, the store root becomes a group and its
            metadata is consolidated at the end. Parquet with layout 'columns' makes this a group.
        layout: Chunks, dtype, format and compression of the array.
        execution: Batching, concurrency, retries and task runner.
        storage_options: Non-secret options of the destination store (endpoint_url, region, ...).
        results_url: Where finished batches are recorded; default: inside the array (.zarrcore/results).
        results_storage_options: Non-secret options of the results_url store (endpoint_url, region, ...).
        wait_for_writer_seconds: How long to wait while another flow run writes a target array (default:
            fail at once, naming it). A retry of the same flow run is the same writer and never waits.
        credentials_block: Name of a Prefect Secret block holding the destination store's credentials
            (a JSON object of store options); read when the store is opened, never stored with the run.
    """
    store = StoreRef.of(destination, with_credentials(storage_options, credentials_block))
    results = StoreRef.of(results_url, results_storage_options) if results_url else None
    return land(source, store, array, layout, execution, results, key="ingest",
                wait_for_writer_seconds=wait_for_writer_seconds)
