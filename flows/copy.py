"""The ``copy`` flow: copy or rechunk a Zarr array between stores (any URLs), with the same batching,
retries and caching as ingest. The target keeps the source's layout unless ``layout`` changes it."""

from __future__ import annotations

from typing import Any

from flows.credentials import CredentialsBlock, with_credentials
from flows.landing import land
from flows.params import ArrayLayout, ArrayPath, Execution, StorageOptions, StoreURL, WaitSeconds
from flows.sources import ZarrSource
from flows.stores import StoreRef
from flows.validation import checked_flow

__all__ = ["copy_array"]


@checked_flow(name="copy")
def copy_array(
    source: StoreURL,
    destination: StoreURL,
    array: ArrayPath = "data",
    source_path: ArrayPath = "",
    layout: ArrayLayout = ArrayLayout(),  # noqa: B008 - an immutable pydantic default, shown in the UI
    execution: Execution = Execution(),  # noqa: B008
    source_storage_options: StorageOptions = {},  # noqa: B006 - validated and never mutated
    storage_options: StorageOptions = {},  # noqa: B006
    results_url: StoreURL | None = None,
    results_storage_options: StorageOptions = {},  # noqa: B006
    wait_for_writer_seconds: WaitSeconds = 0.0,
    credentials_block: CredentialsBlock = None,
    source_credentials_block: CredentialsBlock = None,
) -> dict[str, Any]:
    """Copy the Zarr array at ``source`` (path ``source_path``) to ``array`` at ``destination``.

    Args:
        source: Store URL of the source array (or of its hierarchy, with source_path).
        destination: Store URL of the target hierarchy.
        array: Path of the target array in the destination store.
        source_path: Path of the source array inside its store.
        layout: Changes to the source's layout: new chunks (a rechunk), dtype, format, compression.
        execution: Batching, concurrency, retries and task runner.
        source_storage_options: Non-secret options of the source store.
        storage_options: Non-secret options of the destination store.
        results_url: Where finished batches are recorded; default: inside the target array.
        results_storage_options: Non-secret options of the results_url store.
        wait_for_writer_seconds: How long to wait while another flow run writes a target array (default:
            fail at once, naming it). A retry of the same flow run is the same writer and never waits.
        credentials_block: Name of a Prefect Secret block holding the destination store's credentials.
        source_credentials_block: Name of a Prefect Secret block holding the source store's credentials.
    """
    spec = ZarrSource(url=source, path=source_path, storage_options=source_storage_options,
                      credentials_block=source_credentials_block)  # fmt: skip
    store = StoreRef.of(destination, with_credentials(storage_options, credentials_block))
    results = StoreRef.of(results_url, results_storage_options) if results_url else None
    return land(spec, store, array, layout, execution, results, key="copy",
                wait_for_writer_seconds=wait_for_writer_seconds)
