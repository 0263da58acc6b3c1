"""Flow parameters checked without ever echoing a value.

Prefect's own validation logs the parameters it refuses, and pydantic's messages quote the input:
both would print a credential given where it is refused (a secret-looking storage option, a URL with
user info). :func:`check_parameters` validates against the flow's signature with the same types but
hides every input, and says only where and why. The ``zarrflow`` command calls it before it creates a
flow run; :class:`CheckedFlow` calls it before Prefect's validation, for runs started any other way.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Flow
from prefect.exceptions import ParameterTypeError
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

__all__ = ["ParameterError", "CheckedFlow", "checked_flow", "check_parameters"]

P = ParamSpec("P")
R = TypeVar("R")


class ParameterError(ParameterTypeError):
    """Parameters a flow refuses; the message names each field and what is wrong, never a value."""


@functools.cache
def _model(fn: Callable[..., Any]) -> type[BaseModel]:
    hints = typing.get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {
        name: (hints.get(name, Any), ... if p.default is inspect.Parameter.empty else p.default)
        for name, p in inspect.signature(fn).parameters.items()
    }
    config = ConfigDict(extra="forbid", hide_input_in_errors=True, arbitrary_types_allowed=True)
    return create_model(f"{fn.__name__}_parameters", __config__=config, **fields)


def check_parameters(flow: Flow[..., Any], parameters: dict[str, Any]) -> None:
    """Raise :class:`ParameterError` if ``flow`` would refuse ``parameters`` (one line per field, no values)."""
    try:
        _model(flow.fn).model_validate(parameters)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in err['loc']) or '(parameters)'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_context=False, include_url=False)
        ]
        raise ParameterError(f"invalid parameters for flow {flow.name!r}: " + "; ".join(problems)) from None


class CheckedFlow(Flow[P, R]):
    """A Prefect flow whose parameters pass :func:`check_parameters` before Prefect validates them, so
    a refused run fails with a message that holds no parameter value and nothing logs them."""

    def validate_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        check_parameters(self, parameters)
        return super().validate_parameters(parameters)


def checked_flow(**options: Any) -> Callable[[Callable[P, R]], CheckedFlow[P, R]]:
    """``@flow(**options)`` making a :class:`CheckedFlow` (parameters are always validated)."""

    def decorate(fn: Callable[P, R]) -> CheckedFlow[P, R]:
        return CheckedFlow(fn, validate_parameters=True, **options)

    return decorate
