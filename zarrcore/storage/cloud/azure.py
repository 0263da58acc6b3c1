"""Azure Blob Storage, through azure-storage-blob.

* URLs: ``az://container/prefix`` (``abfs://``, ``abfss://`` too), or
  ``az://container@account.blob.core.windows.net/prefix``, which names the account.
* Credentials, first match wins: ``connection_string=`` (else ``AZURE_STORAGE_CONNECTION_STRING`` when
  no account is given); or an account (``account_url=``, ``account_name=`` or
  ``AZURE_STORAGE_ACCOUNT_NAME``) with ``anonymous=True`` (public containers), ``credential=`` (any
  azure credential), ``account_key=`` / ``AZURE_STORAGE_KEY``, ``sas_token=`` /
  ``AZURE_STORAGE_SAS_TOKEN``, else ``DefaultAzureCredential`` (needs ``zarrcore[azure-identity]``).
* One retry layer: the SDK's retry policy is off (``retry_total=0``) and every request runs under the
  store's :class:`~zarrcore.retry.RetryPolicy`. (The SDK's downloader still re-reads a response body
  that breaks mid-transfer up to 3 times; that is hard-wired in azure-storage-blob.)
* ``put(mode="create")`` is ``overwrite=False``, sent as ``If-None-Match: *`` (409 -> ``AlreadyExists``).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from zarrcore.errors import AccessDenied, StoreError, TransientStoreError
from zarrcore.retry import RetryPolicy
from zarrcore.storage.base import ByteRange, OffsetRequest, RangeRequest, SuffixRequest
from zarrcore.storage.cloud.base import Classified, CloudStore, Page, missing_sdk, short
from zarrcore.storage.cloud.http import classify_status
from zarrcore.storage.cloud.redact import register_secret, safe_endpoint

try:
    import requests
    from azure.core import MatchConditions
    from azure.core.credentials import AzureSasCredential
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )
    from azure.core.pipeline.transport import RequestsTransport
    from azure.storage.blob import BlobPrefix, ContainerClient
except ImportError as exc:
    raise missing_sdk("azure-storage-blob", "azure") from exc

__all__ = ["AzureBlobStore"]


def _connection_string_secrets(conn: str) -> list[str]:
    fields = dict(part.split("=", 1) for part in conn.split(";") if "=" in part)
    return [conn, *(fields.get(k, "") for k in ("AccountKey", "SharedAccessSignature"))]


def _default_credential() -> Any:
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:
        raise missing_sdk("azure-identity", "azure-identity") from exc
    return DefaultAzureCredential()


class AzureBlobStore(CloudStore):
    """Blobs under ``prefix`` in an Azure container. One client and connection pool, shared by all threads.

    ``max_pool_connections`` should be at least the number of threads using the store at once.
    """

    scheme = "az"
    schemes = ("az", "abfs", "abfss")
    log_prefixes = ("azure", "urllib3", "requests")

    def __init__(
        self,
        container: str,
        prefix: str = "",
        *,
        connection_string: str | None = None,
        account_url: str | None = None,
        account_name: str | None = None,
        credential: Any = None,
        account_key: str | None = None,
        sas_token: str | None = None,
        anonymous: bool = False,
        api_version: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_pool_connections: int = 32,
        retry: RetryPolicy | None = None,
        read_only: bool = False,
        list_page_size: int = 1000,
    ) -> None:
        super().__init__(container, prefix, retry=retry, read_only=read_only, list_page_size=list_page_size)
        env = os.environ
        account_name = account_name or (None if account_url else env.get("AZURE_STORAGE_ACCOUNT_NAME"))
        if connection_string is None and account_url is None and account_name is None and not anonymous:
            connection_string = env.get("AZURE_STORAGE_CONNECTION_STRING")
        account_key = account_key or env.get("AZURE_STORAGE_KEY")
        sas_token = sas_token or env.get("AZURE_STORAGE_SAS_TOKEN")
        register_secret(account_key, sas_token, credential if isinstance(credential, str) else None)
        if connection_string:
            register_secret(*_connection_string_secrets(connection_string))

        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max_pool_connections)
        for scheme in ("https://", "http://"):
            self._session.mount(scheme, adapter)
        options: dict[str, Any] = {
            "transport": RequestsTransport(
                session=self._session,
                session_owner=False,
                connection_timeout=connect_timeout,
                read_timeout=read_timeout,
            ),
            "retry_total": 0,
        }
        if api_version:
            options["api_version"] = api_version

        if connection_string:
            self._client = ContainerClient.from_connection_string(
                connection_string, container, credential=credential, **options
            )
        else:
            if account_url is None:
                if not account_name:
                    raise ValueError(
                        f"no Azure account for {self.url}: pass connection_string=, account_url= or account_name=, "
                        "or set AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_NAME"
                    )
                account_url = f"https://{account_name}.blob.core.windows.net"
            if anonymous:
                credential = None
            elif credential is None and account_key:
                credential = {"account_name": account_name, "account_key": account_key} if account_name else account_key
            elif credential is None and sas_token:
                credential = AzureSasCredential(sas_token.lstrip("?"))
            elif credential is None:
                credential = _default_credential()
            self._client = ContainerClient(account_url, container, credential=credential, **options)
        self.account_name: str | None = self._client.account_name
        parts = urlsplit(self._client.primary_endpoint)
        self.endpoint_url = safe_endpoint(f"{parts.scheme}://{parts.netloc}")
        self._protect_logs()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AzureBlobStore:
        """``az://container/prefix``, or ``az://container@account.blob.core.windows.net/prefix`` which
        names the account (``account_name=``; ``account_url=`` may still give another endpoint for it)."""
        parsed = cls.parse(url)
        if parsed.account and "connection_string" not in options:
            options.setdefault("account_name", parsed.account)
        return cls(parsed.bucket, parsed.path, **options)

    def _describe(self) -> dict[str, object]:
        return {"account": self.account_name, "endpoint_url": self.endpoint_url}

    def _get_versioned(self, name: str, byte_range: ByteRange | None, version: str | None) -> tuple[bytes, str | None]:
        offset: int | None = None
        length: int | None = None
        if isinstance(byte_range, RangeRequest):
            offset, length = byte_range.start, byte_range.end - byte_range.start
        elif isinstance(byte_range, OffsetRequest):
            offset = byte_range.offset
        elif isinstance(byte_range, SuffixRequest):
            # Blob storage has no suffix ranges: read the size (and ETag), then the tail of that very blob.
            props = self._client.get_blob_client(name).get_blob_properties()
            offset, version = max(0, int(props.size) - byte_range.suffix), version or props.etag
        condition = {"etag": version, "match_condition": MatchConditions.IfNotModified} if version else {}
        try:
            download = self._client.download_blob(name, offset=offset, length=length, max_concurrency=1, **condition)
            return bytes(download.readall()), download.properties.etag
        except HttpResponseError as exc:
            if offset is not None and exc.status_code == 416:  # the range starts at or past the end
                return b"", version
            raise

    def _put(self, name: str, data: bytes, create: bool) -> None:
        self._client.upload_blob(name, data, length=len(data), overwrite=not create, max_concurrency=1)

    def _delete(self, name: str) -> None:
        try:
            self._client.delete_blob(name, delete_snapshots="include")
        except ResourceNotFoundError:
            pass

    def _size(self, name: str) -> int:
        return int(self._client.get_blob_client(name).get_blob_properties().size)

    def _list_page(self, prefix: str, delimiter: str | None, token: str | None) -> Page:
        names: list[str] = []
        prefixes: list[str] = []
        where = {"name_starts_with": prefix or None, "results_per_page": self.list_page_size}
        if delimiter:
            listing = self._client.walk_blobs(delimiter=delimiter, **where)
        else:
            listing = self._client.list_blob_names(**where)
        pages = listing.by_page(continuation_token=token)
        for item in next(pages, ()):
            if isinstance(item, str):
                names.append(item)
            else:
                (prefixes if isinstance(item, BlobPrefix) else names).append(item.name)
        return names, prefixes, pages.continuation_token

    def _classify(self, exc: Exception) -> Classified:
        if isinstance(exc, HttpResponseError) and exc.status_code:
            code = str(getattr(exc.error_code, "value", exc.error_code) or "")
            if not code and exc.response is not None:
                code = exc.response.headers.get("x-ms-error-code", "")
            return classify_status(exc.status_code, code), f"HTTP {exc.status_code} {code}".rstrip()
        if isinstance(exc, ClientAuthenticationError):
            return AccessDenied, f"{type(exc).__name__}: {short(exc)}"
        if isinstance(exc, ServiceRequestError | ServiceResponseError | HttpResponseError | ConnectionError):
            # HttpResponseError without a status wraps a response body that broke mid-transfer.
            return TransientStoreError, f"{type(exc).__name__}: {short(exc)}"
        return StoreError, f"{type(exc).__name__}: {short(exc)}"

    def close(self) -> None:
        self._client.close()
        self._session.close()
