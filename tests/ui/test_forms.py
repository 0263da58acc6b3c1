"""What the Prefect UI builds its forms from, and what the shipped deployments plan: the ingest source is one
flat object (a ``kind`` choice and plain fields, no union), the layout shows its real defaults, every caller's
source object still gives the same model, and the shipped deployments make work for all their workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from prefect.utilities.callables import parameter_schema
from pydantic import TypeAdapter, ValidationError

import zarrcore
from flows.ingest import ingest
from flows.params import ArrayLayout, Execution
from flows.sources import SourceForm, SourceParam, SourceSpec, ZarrSource
from flows.sources.form import KIND_MODELS
from flows.stores import StoreRef
from flows.targets import TargetRef, plan_batches, target_metadata
from flows.verify import verify
from tests.fixtures.paths import REPO

PARAM: TypeAdapter[Any] = TypeAdapter(SourceParam)
SPEC: TypeAdapter[Any] = TypeAdapter(SourceSpec)

SOURCES = [  # the shapes callers send: the CLI, prefect.yaml, the docs, the tests
    {"kind": "synthetic", "shape": [40, 30], "dtype": "int16", "seed": 9, "chunks": [8, 8], "pattern": "noise"},
    {"kind": "npy", "path": "/data/a.npy"},
    {"kind": "npz", "path": "/data/a.npz", "key": "x"},
    {"kind": "parquet", "path": "/data/t.parquet", "columns": ["a", "b"], "layout": "columns"},
    {"kind": "zarr", "url": "s3://bucket/src.zarr", "path": "field", "storage_options": {"region": "eu-west-1"},
     "credentials_block": "src-creds"},
    {"kind": "netcdf", "url": "gs://bucket/raw/a.nc", "variable": "group/t2m"},
]  # fmt: skip


def _unions(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        own = [k for k in schema if k in ("anyOf", "oneOf", "allOf")]
        return own + [u for v in schema.values() for u in _unions(v)]
    if isinstance(schema, list):
        return [u for v in schema for u in _unions(v)]
    return []


def test_the_ingest_form_is_flat_and_shows_real_defaults() -> None:
    schema = parameter_schema(ingest.fn).model_dump()
    source = schema["properties"]["source"]
    assert source["type"] == "object" and _unions(source) == []  # plain inputs: no tabs, no JSON editor
    assert source["properties"]["kind"]["enum"] == ["synthetic", "npy", "npz", "parquet", "zarr", "netcdf"]
    assert source["properties"]["kind"]["default"] == "synthetic"
    layout = schema["definitions"]["ArrayLayout"]["properties"]
    assert (layout["zarr_format"]["enum"], layout["zarr_format"]["default"]) == ([2, 3], 3)
    assert (layout["compression"]["type"], layout["compression"]["default"]) == ("string", "zstd")
    assert _unions(layout["zarr_format"]) == _unions(layout["compression"]) == []
    assert schema["properties"]["layout"]["default"]["zarr_format"] == 3  # what the form is filled with
    assert _unions(layout["shards"]) == ["anyOf"]  # positive control: an optional field is still a union
    verify_source = parameter_schema(verify.fn).model_dump()["properties"]["source"]
    assert [s.get("title") or s["type"] for s in verify_source["anyOf"]] == ["Source", "null"]


def test_the_form_has_every_field_of_every_kind() -> None:
    for kind, model in KIND_MODELS.items():
        missing = set(model.model_fields) - set(SourceForm.model_fields)
        assert not missing, f"{kind}: {missing} cannot be filled in the form"
    assert set(KIND_MODELS) == set(SourceForm.model_fields["kind"].annotation.__args__)  # type: ignore[union-attr]


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s["kind"])
def test_every_source_object_gives_the_same_model(source: dict[str, Any]) -> None:
    model = SPEC.validate_python(source)
    assert PARAM.validate_python(source) == model
    assert PARAM.validate_python(model) is model  # Python callers pass models
    # what the UI sends: the whole form, the other kinds' fields at their defaults
    form = {**SourceForm().model_dump(), **source}
    assert PARAM.validate_python(form) == model


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"kind": "npy", "path": "a.npy", "shape": [3]}, "shape: not used by a npy source"),
        ({"kind": "zarr", "url": "/a.zarr", "key": "x", "variable": "v"}, "key, variable: not used by a zarr source"),
        ({"kind": "npy", "path": ""}, "a npy source needs path"),
        ({"kind": "netcdf", "url": "a.nc", "variable": ""}, "a netcdf source needs variable"),
        ({"kind": "npz", "path": "a.npz"}, "npz.key\n  Field required"),
        ({"kind": "zarr", "url": "ftp://host/a"}, "unknown URL scheme 'ftp'"),
        ({"kind": "hdf4"}, "kind\n  Input should be 'synthetic', 'npy'"),
        ({"kind": "npy", "path": "a.npy", "colour": "red"}, "colour\n  Extra inputs are not permitted"),
    ],
)
def test_a_form_that_does_not_fit_its_kind_is_refused_naming_the_field(form: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PARAM.validate_python(form)


def test_unset_format_and_compression_follow_a_zarr_source_but_a_form_lands_what_it_shows(tmp_path: Path) -> None:
    src = zarrcore.create(str(tmp_path / "v2.zarr"), shape=(20, 10), chunks=(5, 5), dtype="int16", zarr_format=2,
                          compressor={"id": "zlib", "level": 1})  # fmt: skip
    src[:] = np.arange(200, dtype="int16").reshape(20, 10)
    reader = ZarrSource(url=str(tmp_path / "v2.zarr")).open()
    for unset in (ArrayLayout(), ArrayLayout(zarr_format=None, compression=None)):  # Python, the CLI
        assert unset.given("zarr_format") is None and unset.zarr_format == 3
        assert target_metadata(unset, reader).zarr_format == 2
    shown = ArrayLayout.model_validate(ArrayLayout().model_dump(mode="json"))  # the form sends its defaults
    meta = target_metadata(shown, reader)
    assert meta.zarr_format == 3 and meta.codecs[-1]["name"] == "zstd"


def _deployments() -> dict[str, dict[str, Any]]:
    spec = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())
    return {d["name"]: d for d in spec["deployments"]}


def _nightly_batches(execution: Execution) -> int:
    params = _deployments()["ingest-nightly"]["parameters"]
    reader = PARAM.validate_python(params["source"]).open()
    meta = target_metadata(ArrayLayout(**params["layout"]), reader)
    ref = TargetRef(store=StoreRef(url="memory://nightly"), path=params["array"], shape=meta.shape,
                    chunks=meta.chunks, fingerprint="f", incarnation="i")  # fmt: skip
    return len(plan_batches(ref, np.dtype(meta.dtype).itemsize, execution))


def test_the_shipped_deployments_make_a_batch_for_every_worker() -> None:
    deployments = _deployments()
    nightly = deployments["ingest-nightly"]["parameters"]
    execution = Execution(**nightly["execution"])
    assert _nightly_batches(execution) >= execution.max_workers
    # copy and verify read the array ingest-nightly lands, with the same execution
    assert deployments["copy"]["parameters"]["source"] == nightly["destination"]
    assert deployments["verify-hourly"]["parameters"]["destination"] == nightly["destination"]
    for name in ("copy", "verify-hourly"):
        assert Execution(**deployments[name]["parameters"]["execution"]) == execution, name
    # the control: the default batch size (64 MiB) makes one batch of the nightly field, which no worker shares
    assert _nightly_batches(execution.model_copy(update={"batch_bytes": Execution().batch_bytes})) == 1
