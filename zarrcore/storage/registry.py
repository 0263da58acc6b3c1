"""URL schemes to store factories. Cloud backends are registered by import path, so importing
zarrcore never imports a cloud SDK. URLs are read by the one parser, :mod:`zarrcore.storage.urls`."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

from zarrcore.errors import InvalidURL, StoreError
from zarrcore.storage.base import Store
from zarrcore.storage.urls import ParsedURL, parse_url, url_scheme

__all__ = ["check_url", "open_store", "register", "registered_schemes", "resolve", "unregister"]

StoreFactory = Callable[..., Store]

_lock = threading.Lock()
_factories: dict[str, StoreFactory | str] = {
    "memory": "zarrcore.storage.memory:MemoryStore.from_url",
    "file": "zarrcore.storage.local:LocalStore.from_url",
    "s3": "zarrcore.storage.cloud.s3:S3Store.from_url",
    "gs": "zarrcore.storage.cloud.gcs:GCSStore.from_url",
    "gcs": "zarrcore.storage.cloud.gcs:GCSStore.from_url",
    "az": "zarrcore.storage.cloud.azure:AzureBlobStore.from_url",
    "abfs": "zarrcore.storage.cloud.azure:AzureBlobStore.from_url",
    "abfss": "zarrcore.storage.cloud.azure:AzureBlobStore.from_url",
}


def _load(target: str) -> StoreFactory:
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def register(scheme: str, factory: StoreFactory | str, *, replace: bool = False) -> None:
    """Map a URL scheme to a factory ``factory(url, **options) -> Store``.

    ``factory`` may be a callable or a lazy ``"module:attr"`` import path.
    """
    scheme = scheme.lower().rstrip(":/")
    with _lock:
        if scheme in _factories and not replace:
            raise ValueError(f"scheme {scheme!r} is already registered; pass replace=True to override")
        _factories[scheme] = factory


def unregister(scheme: str) -> None:
    """Remove a scheme (no error if absent)."""
    with _lock:
        _factories.pop(scheme.lower(), None)


def registered_schemes() -> list[str]:
    """The schemes ``open_store`` understands."""
    return sorted(_factories)


def check_url(url: str) -> ParsedURL:
    """``url`` taken apart by :func:`~zarrcore.storage.urls.parse_url`, after checking that a store is
    registered for its scheme; raises :class:`~zarrcore.errors.InvalidURL` naming the wrong part.
    Nothing is opened: this is the check to run on a URL before any I/O."""
    scheme = url_scheme(url)
    with _lock:
        known = scheme in _factories
    if not known:
        raise InvalidURL(f"unknown URL scheme {scheme!r}; known: {', '.join(registered_schemes())}", part="scheme")
    return parse_url(url)


def resolve(scheme: str) -> StoreFactory:
    """The factory for a scheme, importing a lazily registered backend on first use."""
    with _lock:
        factory = _factories.get(scheme)
    if factory is None:
        raise StoreError(f"no store registered for URL scheme {scheme!r}; known: {', '.join(registered_schemes())}")
    if isinstance(factory, str):
        factory = _load(factory)
        with _lock:
            _factories[scheme] = factory
    return factory


def open_store(url: str | Store, **options: Any) -> Store:
    """Return the store for ``url`` (``s3://bucket/prefix``, ``file:///path``, a plain path, ...).

    A :class:`Store` passed in is returned as it is.
    """
    if isinstance(url, Store):
        if options:
            raise TypeError("options cannot be applied to an already opened store")
        return url
    url = str(url)
    factory = resolve(url_scheme(url))
    parse_url(url)  # the one rule for every scheme (credentials in a URL are refused, never echoed)
    return factory(url, **options)
