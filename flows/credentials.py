"""Store credentials from a Prefect ``Secret`` block, named in the parameters and read where a store is opened.

A flow's parameters are stored by Prefect in plain text, so they may name a credentials block but never
hold a credential. The block's value is a JSON object of store options (``access_key_id`` and
``secret_access_key`` for S3, ``credentials`` for GCS, ``connection_string``, ``account_key`` or
``sas_token`` for Azure), best saved as a string: Prefect's API hides a string secret from reads
without secrets but returns a JSON-object value as it is. The name travels with a store's options
under :data:`BLOCK_OPTION` (in flow parameters, task inputs, result-storage blocks and cache keys there
is only the name); the value is read by :func:`open_options`, called by :mod:`flows.stores` alone,
right before ``zarrcore.open_store``.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field

__all__ = ["BLOCK_OPTION", "CredentialsBlock", "CredentialsError", "with_credentials", "open_options"]

#: The option under which a store's options carry the name of its credentials block.
BLOCK_OPTION = "credentials_block"

#: Prefect block names: lowercase letters, digits and dashes.
_BLOCK_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


class CredentialsError(ValueError):
    """A credentials block cannot be read or does not hold store options; never carries its value."""


def _check_name(value: str | None) -> str | None:
    if value is not None and not _BLOCK_NAME.fullmatch(value):
        raise ValueError("a credentials block name has lowercase letters, digits and dashes only (a Secret block)")
    return value


CredentialsBlock = Annotated[
    str | None,
    AfterValidator(_check_name),
    Field(
        description="Name of a Prefect Secret block whose value is a JSON object of the store's secret options "
        "(e.g. access_key_id and secret_access_key). Read when the store is opened; never stored with the run.",
    ),
]


def with_credentials(options: dict[str, Any], block: str | None) -> dict[str, Any]:
    """``options`` naming the credentials ``block`` (a copy; ``options`` unchanged when ``block`` is None)."""
    return dict(options) if block is None else {**options, BLOCK_OPTION: block}


def open_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options ``zarrcore.open_store`` takes: those given, with the named block's options merged in."""
    if BLOCK_OPTION not in options:
        return options
    rest = {k: v for k, v in options.items() if k != BLOCK_OPTION}
    name = str(options[BLOCK_OPTION])
    secret = _load(name)
    both = sorted(set(secret) & set(rest))
    if both:
        raise CredentialsError(f"credentials block {name!r} and the storage options both set {both}")
    return {**rest, **secret}


def _load(name: str) -> dict[str, Any]:
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(name, _sync=True).get()  # type: ignore[call-overload]
    except Exception as exc:  # what went wrong, never the value (there is none here, or it is malformed)
        raise CredentialsError(
            f"credentials block {name!r} cannot be read ({type(exc).__name__}): create it with "
            f"Secret(value={{...}}).save({name!r}) on the Prefect server of the run"
        ) from None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None  # the message below, never the decoder's (it quotes the text)
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise CredentialsError(
            f"credentials block {name!r} must hold a JSON object of store options, "
            f'e.g. {{"secret_access_key": "..."}} (as a string), not {type(value).__name__}'
        )
    return value
