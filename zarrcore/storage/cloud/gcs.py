"""Google Cloud Storage, through google-cloud-storage.

* URLs: ``gs://bucket/prefix`` (``gcs://`` too). Credentials: ``credentials=`` (a google-auth
  credentials object, a JSON key file path or its parsed dict), ``anonymous=True`` for public
  buckets, else Application Default Credentials. ``STORAGE_EMULATOR_HOST`` selects an emulator
  (anonymous), as the SDK defines it.
* One retry layer: every SDK call gets ``retry=None`` and runs under the store's
  :class:`~zarrcore.retry.RetryPolicy`. A listing retries each page on its own.
* ``put(mode="create")`` sends ``ifGenerationMatch=0`` (412 -> ``AlreadyExists``). Objects up to 8 MiB
  go through the single-request multipart upload; larger ones through the SDK's resumable upload.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from zarrcore.errors import AccessDenied, StoreError, TransientStoreError
from zarrcore.retry import RetryPolicy
from zarrcore.storage.base import ByteRange, OffsetRequest, RangeRequest, SuffixRequest
from zarrcore.storage.cloud.base import Classified, CloudStore, Page, missing_sdk, short
from zarrcore.storage.cloud.http import classify_status
from zarrcore.storage.cloud.redact import register_secret, safe_endpoint

try:
    import google.auth
    import google.auth.exceptions as gax
    import requests
    from google.api_core import exceptions as gx
    from google.auth.credentials import AnonymousCredentials, Credentials
    from google.cloud import storage
    from google.cloud.storage.exceptions import DataCorruption
except ImportError as exc:
    raise missing_sdk("google-cloud-storage", "gcs") from exc

__all__ = ["GCSStore"]

_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    gax.TransportError,
    DataCorruption,
    ConnectionError,
    TimeoutError,
)


def _load_credentials(credentials: Credentials | str | os.PathLike[str] | Mapping[str, Any]) -> Credentials:
    if isinstance(credentials, Credentials):
        return credentials
    if isinstance(credentials, Mapping):
        register_secret(credentials.get("private_key"), credentials.get("refresh_token"))
        return google.auth.load_credentials_from_dict(dict(credentials))[0]
    return google.auth.load_credentials_from_file(os.fspath(credentials))[0]


class GCSStore(CloudStore):
    """Objects under ``prefix`` in a GCS bucket. One client and connection pool, shared by all threads.

    ``max_pool_connections`` should be at least the number of threads using the store at once.
    """

    scheme = "gs"
    schemes = ("gs", "gcs")
    log_prefixes = ("google", "urllib3", "requests")

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        project: str | None = None,
        credentials: Credentials | str | os.PathLike[str] | Mapping[str, Any] | None = None,
        anonymous: bool = False,
        endpoint_url: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_pool_connections: int = 32,
        retry: RetryPolicy | None = None,
        read_only: bool = False,
        list_page_size: int = 1000,
    ) -> None:
        super().__init__(bucket, prefix, retry=retry, read_only=read_only, list_page_size=list_page_size)
        creds = AnonymousCredentials() if anonymous else None
        if credentials is not None and not anonymous:
            creds = _load_credentials(credentials)
        register_secret(getattr(creds, "token", None))
        try:
            self._client = storage.Client(
                project=project,
                credentials=creds,
                client_options={"api_endpoint": endpoint_url} if endpoint_url else None,
            )
        except gax.DefaultCredentialsError as exc:
            raise AccessDenied(
                f"no Google credentials for {self.url}: set GOOGLE_APPLICATION_CREDENTIALS, run "
                "`gcloud auth application-default login`, or pass credentials=... or anonymous=True",
                store=self.url,
            ) from exc
        # Recent SDKs fetch bucket metadata in a background thread for tracing attributes: an extra,
        # unretried request per bucket from a thread we do not control. The SDK skips it when unset.
        if getattr(self._client, "_bucket_metadata_cache", None) is not None:
            self._client._bucket_metadata_cache = None
        # Size the client's HTTP pool to the concurrency in use (requests keeps 10 per host by default).
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max_pool_connections)
        for scheme in ("https://", "http://"):
            self._client._http.mount(scheme, adapter)
        self._bucket = self._client.bucket(bucket)
        self._timeout = (connect_timeout, read_timeout)
        self.endpoint_url: str = self._client.api_endpoint
        self._protect_logs()

    def _describe(self) -> dict[str, object]:
        return {"endpoint_url": safe_endpoint(self.endpoint_url), "project": self._client.project}

    def _get_versioned(self, name: str, byte_range: ByteRange | None, version: str | None) -> tuple[bytes, str | None]:
        start: int | None = None
        end: int | None = None
        if isinstance(byte_range, RangeRequest):
            start, end = byte_range.start, byte_range.end - 1
        elif isinstance(byte_range, OffsetRequest):
            start = byte_range.offset
        elif isinstance(byte_range, SuffixRequest):
            start = -byte_range.suffix  # the SDK sends "bytes=-N"
        blob = self._bucket.blob(name)
        try:
            data = blob.download_as_bytes(
                start=start, end=end, raw_download=True, timeout=self._timeout, retry=None,
                if_generation_match=int(version) if version is not None else None,
            )  # fmt: skip
        except gx.RequestRangeNotSatisfiable:
            return b"", version  # the range starts at or past the end
        return bytes(data), str(blob.generation) if blob.generation is not None else None

    def _put(self, name: str, data: bytes, create: bool) -> None:
        self._bucket.blob(name).upload_from_string(
            data,
            content_type="application/octet-stream",
            if_generation_match=0 if create else None,
            timeout=self._timeout,
            retry=None,
        )

    def _delete(self, name: str) -> None:
        try:
            self._bucket.delete_blob(name, timeout=self._timeout, retry=None)
        except gx.NotFound:
            pass

    def _size(self, name: str) -> int:
        blob = self._bucket.blob(name)
        blob.reload(timeout=self._timeout, retry=None)
        return int(blob.size or 0)

    def _list_page(self, prefix: str, delimiter: str | None, token: str | None) -> Page:
        blobs = self._client.list_blobs(
            self._bucket,
            prefix=prefix or None,
            delimiter=delimiter,
            page_token=token,
            page_size=self.list_page_size,
            fields="items(name),prefixes,nextPageToken",
            timeout=self._timeout,
            retry=None,
        )
        page = next(blobs.pages, None)
        if page is None:
            return [], [], None
        names = [blob.name for blob in page]
        return names, list(page.prefixes), blobs.next_page_token

    def _classify(self, exc: Exception) -> Classified:
        if isinstance(exc, gx.GoogleAPICallError) and isinstance(exc.code, int):
            details = next((e for e in getattr(exc, "errors", None) or () if isinstance(e, dict)), {})
            code = str(details.get("reason") or type(exc).__name__)
            reason = f"HTTP {exc.code} {code}: {short(details.get('message', ''))}".rstrip(": ")
            return classify_status(exc.code, "TooManyRequests" if code == "rateLimitExceeded" else code), reason
        if isinstance(exc, gax.RefreshError) and getattr(exc, "retryable", False):
            return TransientStoreError, f"{type(exc).__name__}: {short(exc)}"
        if isinstance(exc, gax.DefaultCredentialsError | gax.RefreshError):
            return AccessDenied, f"{type(exc).__name__}: {short(exc)}"
        if isinstance(exc, _TRANSPORT_ERRORS):
            return TransientStoreError, f"{type(exc).__name__}: {short(exc)}"
        return StoreError, f"{type(exc).__name__}: {short(exc)}"

    def close(self) -> None:
        self._client.close()
        self._client._http.close()
