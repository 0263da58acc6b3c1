"""The one parser of store URLs: what every backend's ``from_url``, the registry, checkpoints and the
flows' parameter validation read a URL with.

* a plain path (``data/x.zarr``, ``C:\\\\data``) or ``file:///abs/path`` / ``file://relative``: a local folder;
* ``memory://name``: the in-process store of that name;
* ``scheme://bucket/prefix`` for object stores, and for Azure also
  ``az://container@account.blob.core.windows.net/prefix`` (``abfs://``, ``abfss://``; the host may be
  ``account.dfs.core.windows.net``), which names the storage account.

Credentials, a query or a fragment in a network URL are refused with :class:`~zarrcore.errors.InvalidURL`
naming the part, never echoing it: those parts carry secrets (keys, SAS tokens), which belong in options
or the SDK's credential chain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from zarrcore.errors import InvalidURL

__all__ = ["ACCOUNT_SCHEMES", "BUCKET_SCHEMES", "ParsedURL", "parse_url", "url_scheme"]

#: Schemes whose URLs may name an account: ``scheme://container@account.host/prefix``.
ACCOUNT_SCHEMES = frozenset({"az", "abfs", "abfss"})
#: Schemes whose URLs must name a bucket (or container).
BUCKET_SCHEMES = frozenset({"s3", "gs", "gcs"}) | ACCOUNT_SCHEMES
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")


@dataclass(frozen=True, slots=True)
class ParsedURL:
    """A store URL taken apart.

    ``path`` is the filesystem path for ``file``, the store name for ``memory`` and the prefix inside
    the bucket (no leading or trailing ``/``) for object stores. ``host`` and ``account`` are set by the
    Azure form ``container@host`` only (``account`` is the host's first label).
    """

    scheme: str
    bucket: str = ""
    path: str = ""
    host: str | None = None
    account: str | None = None

    @property
    def root_url(self) -> str:
        """The URL of the bucket alone, without the path: ``scheme://bucket`` (``scheme://container@host``)."""
        return f"{self.scheme}://{self.bucket}" + (f"@{self.host}" if self.host else "")


def url_scheme(url: str) -> str:
    """The URL's scheme, lower case; ``"file"`` for a plain path (a Windows drive letter is a path)."""
    if "://" not in url:
        return "file"
    scheme = url.split("://", 1)[0].lower()
    return "file" if len(scheme) == 1 else scheme


def parse_url(url: str) -> ParsedURL:
    """Take a store URL apart by the rules above; raises :class:`~zarrcore.errors.InvalidURL`."""
    url = str(url)
    scheme = url_scheme(url)
    if scheme == "file" and url[:7].lower() != "file://":
        return ParsedURL("file", path=url)  # a plain path
    if not _SCHEME.fullmatch(scheme):
        raise InvalidURL("a store URL's scheme must be a letter then letters, digits, '+', '-' or '.'", part="scheme")
    parts = urlsplit(url)
    if scheme == "file":
        return ParsedURL("file", path=unquote(parts.netloc + parts.path))
    if scheme == "memory":
        return ParsedURL("memory", path=url.split("://", 1)[1].strip("/"))
    userinfo, at, host = parts.netloc.rpartition("@")
    if at and (scheme not in ACCOUNT_SCHEMES or ":" in userinfo):
        raise InvalidURL(
            "store URLs must not carry credentials; pass them as options or through the SDK's credential chain",
            part="credentials",
        )
    if scheme in BUCKET_SCHEMES:
        if parts.query:
            raise InvalidURL("store URLs must not carry a query (it may hold a token); pass options", part="query")
        if parts.fragment:
            raise InvalidURL("store URLs must not carry a fragment", part="fragment")
    bucket = userinfo if at else host
    if scheme in BUCKET_SCHEMES and (not bucket or ":" in bucket):
        if ":" in bucket:
            raise InvalidURL(f"the bucket of a {scheme}:// URL cannot hold ':' (credentials or a port?)", part="bucket")
        raise InvalidURL(f"no bucket or container in store URL {url!r}", part="bucket")
    account: str | None = None
    if at:
        account = host.split(".", 1)[0]
        if not account or ":" in host:
            raise InvalidURL(
                f"the account host of a {scheme}:// URL must be a host name such as "
                "account.blob.core.windows.net",
                part="account",
            )
    return ParsedURL(scheme, bucket=bucket, path=parts.path.strip("/"), host=host if at else None, account=account)
