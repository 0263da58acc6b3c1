"""The source as one flat form: ``kind`` (a choice with a default) and every kind's fields side by side.

The Prefect UI renders a flat model as plain inputs, where the discriminated union :data:`SourceSpec`
becomes a JSON editor or a row of class-named tabs. :data:`SourceParam` is what a flow declares: its
JSON schema (the UI's form and the server's check) is :class:`SourceForm`, and validation turns a form,
a source object of the union's shape or a source model into the kind's own model, so flows receive one
of the models of :data:`SourceSpec` and every existing caller keeps working.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, GetJsonSchemaHandler, TypeAdapter
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from flows.sources.base import SourceModel
from flows.sources.netcdf import NetcdfArraySource
from flows.sources.npy import NpySource
from flows.sources.npz import NpzSource
from flows.sources.parquet import ParquetSource
from flows.sources.synthetic import SyntheticSource
from flows.sources.zarr import ZarrSource

__all__ = ["SourceForm", "SourceKind", "SourceParam", "SourceSpec", "KIND_MODELS"]

SourceSpec = Annotated[
    NpySource | NpzSource | ParquetSource | ZarrSource | SyntheticSource | NetcdfArraySource,
    Field(discriminator="kind", description="Where the data comes from; 'kind' selects the source type."),
]
KIND_MODELS: dict[str, type[SourceModel]] = {
    get_args(model.model_fields["kind"].annotation)[0]: model for model in get_args(get_args(SourceSpec)[0])
}
SourceKind = Literal["synthetic", "npy", "npz", "parquet", "zarr", "netcdf"]
_SPEC: TypeAdapter[Any] = TypeAdapter(SourceSpec)


class SourceForm(BaseModel):
    """Where the data comes from: pick the kind, then fill the fields that kind uses (the others stay empty)."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True, title="Source")

    kind: SourceKind = Field(
        "synthetic", title="Kind", description="Source type: synthetic (generated data), npy, npz (a member of an "
        "archive), parquet (a table), zarr (an array on any store) or netcdf (one variable of a NetCDF4/HDF5 file).",
    )  # fmt: skip
    path: str = Field("", title="Path", description="npy, npz, parquet: path of the file, readable by every worker. "
                      "zarr: path of the array inside the store ('' when the URL is the array).")  # fmt: skip
    url: str = Field("", title="URL", description="zarr: store URL of the array (a path, s3://bucket/prefix, gs://, "
                     "az://). netcdf: path or store URL of the file.")  # fmt: skip
    key: str = Field("", title="Archive member", description="npz: name of the array inside the archive.")
    variable: str = Field("", title="Variable", description="netcdf: the variable to land ('group/var' in groups).")
    columns: list[str] = Field(
        [], title="Columns", description="parquet: columns to land, in order; empty: every integer, float and "
        "boolean column (and string columns with table layout 'columns').",
    )  # fmt: skip
    layout: Literal["matrix", "columns"] = Field(
        "matrix", title="Table layout", description="parquet: 'matrix', one 2-D array (rows x columns); 'columns', "
        "a group with one 1-D array per column.",
    )  # fmt: skip
    shape: list[Annotated[int, Field(ge=0)]] = Field(
        [], title="Shape", description="synthetic: shape of the generated array, e.g. [4096, 4096]."
    )
    dtype: str = Field("float32", title="Data type", description="synthetic: NumPy dtype (float32, int16, uint8, ...).")
    seed: int = Field(0, ge=0, title="Seed", description="synthetic: the same seed always gives the same values.")
    pattern: Literal["smooth", "noise"] = Field(
        "smooth", title="Pattern", description="synthetic: 'smooth' sine waves plus a little noise, or 'noise'."
    )
    chunks: list[Annotated[int, Field(ge=1)]] = Field(
        [], title="Source chunks", description="synthetic: natural chunk shape, used when the layout gives none."
    )
    storage_options: dict[str, Any] = Field(
        {}, title="Storage options", description="zarr, netcdf: non-secret options of the source's store."
    )
    credentials_block: str = Field(
        "", title="Credentials block", description="zarr, netcdf: name of a Prefect Secret block holding the "
        "source store's credentials.",
    )  # fmt: skip

    def spec(self) -> SourceModel:
        """The kind's own source model (its validation applies); a field of another kind that is not
        empty is refused, naming it, so a form never lands something other than what it shows."""
        model = KIND_MODELS[self.kind]
        own = set(model.model_fields) - {"kind"}
        stray = sorted(n for n in self.model_fields_set - own - {"kind"} if getattr(self, n) != _default(n))
        if stray:
            raise ValueError(f"{', '.join(stray)}: not used by a {self.kind} source (it uses {', '.join(sorted(own))})")
        data: dict[str, Any] = {"kind": self.kind}
        for name in own & self.model_fields_set:
            value = getattr(self, name)
            if model.model_fields[name].is_required() and value == "":
                raise ValueError(f"a {self.kind} source needs {name}")
            if value in ("", []) and not model.model_fields[name].is_required():
                continue  # empty: the kind's own default
            data[name] = value
        return _SPEC.validate_python(data)  # type: ignore[no-any-return]


def _default(name: str) -> Any:
    return SourceForm.model_fields[name].get_default(call_default_factory=True)


def _to_model(value: Any) -> Any:
    if isinstance(value, SourceModel):
        return value
    if isinstance(value, dict):
        return SourceForm.model_validate(value).spec()
    if isinstance(value, SourceForm):
        return value.spec()
    return value  # anything else: refused by the union, which names what it expected


class _FormSchema:
    """Gives the annotated type the JSON schema of :class:`SourceForm`."""

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return handler(SourceForm.__pydantic_core_schema__)


SourceParam = Annotated[SourceSpec, BeforeValidator(_to_model), _FormSchema()]
"""A flow's source parameter: shown and checked as :class:`SourceForm`, received as a model of :data:`SourceSpec`."""
