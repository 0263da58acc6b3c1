"""Flow parameter models shared by ingest, verify, copy and append.

Every field carries a description so the Prefect UI renders a clear form; validation runs before a
flow does any I/O, so bad parameters never leave anything written.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from zarrcore.errors import InvalidKey
from zarrcore.storage import check_url, validate_key

__all__ = [
    "ArrayLayout",
    "DatasetLayout",
    "RegionAxis",
    "Execution",
    "StorageOptions",
    "StoreURL",
    "WaitSeconds",
    "ArrayPath",
    "MiB",
]

MiB = 1024 * 1024

_SECRET = re.compile(r"secret|password|token|credential|sas|account_key|connection_string|private", re.I)


def _check_url(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("a store URL or path is required")
    check_url(value)  # the stores' own parser: an unknown scheme, credentials, a query... are refused
    return value


def _check_path(value: str) -> str:
    value = value.strip().strip("/")
    if value:
        try:
            validate_key(value)
        except InvalidKey as exc:
            raise ValueError(str(exc)) from None
    return value


def _check_options(value: dict[str, Any]) -> dict[str, Any]:
    secret = sorted(k for k in value if _SECRET.search(k))
    if secret:
        raise ValueError(
            f"storage options {secret} look like credentials; flow parameters are stored in the Prefect "
            "database in plain text, so credentials must come from a Secret block named by a credentials_block "
            "parameter, the environment or the SDK's own chain"
        )
    return value


StoreURL = Annotated[
    str,
    AfterValidator(_check_url),
    Field(description="Store URL: a local path, file://, s3://bucket/prefix, gs://bucket/prefix or az://container."),
]
ArrayPath = Annotated[
    str,
    AfterValidator(_check_path),
    Field(description="Path of the array inside the store ('' puts the array at the store root)."),
]
StorageOptions = Annotated[
    dict[str, Any],
    AfterValidator(_check_options),
    Field(
        description="Non-secret store options (endpoint_url, region, ...). Credentials come from a Secret block "
        "(credentials_block) or the SDK's chain.",
    ),
]
WaitSeconds = Annotated[
    float,
    Field(ge=0, le=86_400, description="Seconds to wait while another flow run writes the target (0: fail at once)."),
]

Compression = Literal["zstd", "gzip", "blosc-zstd", "blosc-lz4", "none"]
_FROM_SOURCE = ("zarr_format", "compression")  # None (or absent): as a Zarr source has it


class ArrayLayout(BaseModel):
    """How the target array is laid out. Unset fields come from a Zarr source, else from the defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    chunks: tuple[Annotated[int, Field(ge=1)], ...] | None = Field(
        None,
        description="Chunk shape, one entry per dimension. Default: a Zarr source's chunks, else chunks of about "
        "chunk_bytes.",
    )
    chunk_bytes: int = Field(
        4 * MiB, ge=1024, le=1024 * MiB, description="Target uncompressed chunk size when chunks are not given."
    )
    shards: tuple[Annotated[int, Field(ge=1)], ...] | None = Field(
        None,
        description="Shard shape (Zarr v3): each stored object is a shard holding chunks-shaped inner chunks and "
        "an index, a multiple of chunks in every dimension. Needs chunks (or a sharded Zarr source). Default: a "
        "Zarr source's layout, else one object per chunk.",
    )
    dtype: str | None = Field(None, description="Stored data type (e.g. float32); default: the source's.")
    zarr_format: Literal[2, 3] = Field(3, description="Zarr format, 2 or 3. Left unset (Python, CLI): a Zarr "
                                       "source's own format, else 3.")  # fmt: skip
    compression: Compression = Field(
        "zstd", description="Compressor. Left unset (Python, CLI): a Zarr source's own codecs, else zstd."
    )
    compression_level: int | None = Field(
        None, ge=-7, le=22, description="Compression level (zstd -7..22, gzip/blosc 0..9); default: the codec's."
    )
    fill_value: float | int | bool | str | None = Field(
        None, description="Fill value of chunks never written ('NaN' allowed); default: the source's, else 0."
    )
    attributes: dict[str, Any] | None = Field(None, description="Array attributes (JSON object).")
    dimension_names: tuple[str, ...] | None = Field(
        None, description="Dimension names (v3 dimension_names, v2 the _ARRAY_DIMENSIONS attribute xarray reads); "
        "default: the source's own, else dim_0, dim_1, ..."
    )  # fmt: skip
    overwrite: bool = Field(
        False,
        description="Delete whatever is at the target first. Off by default: an existing array with identical "
        "metadata is resumed, a different one is an error.",
    )

    @model_validator(mode="before")
    @classmethod
    def _none_is_not_given(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(data.get(k, 0) is None for k in _FROM_SOURCE):
            return {k: v for k, v in data.items() if not (k in _FROM_SOURCE and v is None)}
        return data

    def given(self, name: str) -> Any:
        """The field's value if the caller gave it, else None: unset ``zarr_format`` and ``compression``
        follow a Zarr source (a form shows and sends the defaults, so what it shows is what lands)."""
        return getattr(self, name) if name in self.model_fields_set else None

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, value: str | None) -> str | None:
        if value is not None:
            import numpy as np

            try:
                np.dtype(value)
            except TypeError:
                raise ValueError(f"unknown dtype {value!r}") from None
        return value


class Execution(BaseModel):
    """How the work runs: batching, concurrency, retries and the task runner."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    task_runner: Literal["threads", "dask"] = Field(
        "threads", description="'threads': a bounded thread pool in the flow's process; 'dask': a Dask cluster."
    )
    max_workers: int = Field(4, ge=1, le=256, description="Chunk batches processed at once (threads or Dask threads).")
    chunk_concurrency: int = Field(
        8, ge=1, le=256, description="Chunks in flight inside one batch: source reads stay in order, encoding and "
        "PUTs overlap (zarrcore's write_stream). Requests in flight overall: max_workers x chunk_concurrency "
        "(on local disk at most the cores).",
    )  # fmt: skip
    batch_bytes: int = Field(
        64 * MiB,
        ge=1,
        le=16 * 1024 * MiB,
        description="Target uncompressed bytes per task run; each task writes whole chunks up to this size.",
    )
    max_chunks_per_batch: int = Field(
        1024, ge=1, le=100_000, description="Upper bound of chunks per task run (Prefect costs ~7 ms per task run)."
    )
    retries: int = Field(4, ge=0, le=20, description="Task retries for transient store errors (throttling, 5xx).")
    retry_delay_seconds: float = Field(
        1.0, ge=0, le=600, description="First retry delay; doubles each retry, with jitter."
    )
    timeout_seconds: float | None = Field(
        None,
        gt=0,
        le=86_400,
        description="Time limit of one batch task run (a timeout is retried). Threads cannot be interrupted, so "
        "it applies once a blocking call returns; stores bound each request with their own timeouts.",
    )
    chunk_timeout_seconds: float | None = Field(
        None, gt=0, le=86_400, description="Time limit of one chunk's encode and PUT inside a batch; a chunk over it "
        "fails the batch, which is retried.",
    )  # fmt: skip
    refresh: bool = Field(
        False, description="Rewrite every batch even if a previous run finished it (ignores the ledger)."
    )
    dask_address: str | None = Field(
        None, description="Address of a running Dask scheduler; default: a local cluster started for the run."
    )

    @model_validator(mode="after")
    def _dask_only(self) -> Execution:
        if self.dask_address and self.task_runner != "dask":
            raise ValueError("dask_address is set but task_runner is not 'dask'")
        return self


class RegionAxis(BaseModel):
    """The whole axis of a dataset landed in region mode: from ``start`` to ``stop`` (inclusive) by ``step``.

    For a CF time coordinate, ``start``/``stop`` are dates (``2001-01-01T00``) and ``step`` a duration
    (``1h``, ``6h``, ``1D``), encoded in the files' own units and calendar; otherwise they are numbers
    in the coordinate's units."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    start: str | float = Field(description="First value of the axis: a date for a time axis, else a number.")
    stop: str | float = Field(description="Last value of the axis (inclusive).")
    step: str | float = Field(description="Step between values: a duration ('1h', '1D') for time, else a number.")


class DatasetLayout(BaseModel):
    """How a dataset's arrays are laid out and which variables land (used when the dataset is created)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    chunks: dict[str, Annotated[int, Field(ge=1)]] | None = Field(
        None, description="Chunk length per dimension, e.g. {'time': 24, 'lat': 256, 'lon': 256}; dimensions not "
        "given get chunks of about 4 MiB.",
    )  # fmt: skip
    shards: dict[str, Annotated[int, Field(ge=1)]] | None = Field(
        None, description="Shard length per dimension (Zarr v3), multiples of the chunks; default: no shards."
    )
    zarr_format: Literal[2, 3] = Field(3, description="Zarr format of a new dataset.")
    variables: list[str] | None = Field(
        None, description="Variables to land (their coordinates come with them); default: every variable."
    )
    region: RegionAxis | None = Field(
        None, description="Region mode: create the dataset at the axis' full length, then land files into their "
        "regions in any order. Default: append mode (files land after the dataset's end, in order).",
    )  # fmt: skip
