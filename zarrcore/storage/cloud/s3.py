"""Amazon S3 and S3-compatible servers, through boto3.

* URLs: ``s3://bucket/prefix``. Options are the constructor's keywords; anything omitted comes from
  boto3's standard chain (``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``, ``AWS_REGION``, profiles,
  environment keys, SSO, container and instance roles).
* One retry layer: botocore's retries are off (``total_max_attempts=1``) and every request runs under
  the store's :class:`~zarrcore.retry.RetryPolicy`. A listing retries each page on its own.
* ``put(mode="create")`` is ``PutObject`` with ``If-None-Match: *`` (412 -> ``AlreadyExists``).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Literal

from zarrcore.errors import AccessDenied, StoreError, TransientStoreError
from zarrcore.retry import RetryPolicy
from zarrcore.storage.base import ByteRange
from zarrcore.storage.cloud.base import Classified, CloudStore, Page, missing_sdk, short
from zarrcore.storage.cloud.http import classify_status, http_range
from zarrcore.storage.cloud.redact import register_secret, safe_endpoint

try:
    import boto3
    import botocore.exceptions as bx
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.handlers import convert_body_to_file_like_object
except ImportError as exc:
    raise missing_sdk("boto3", "s3") from exc

__all__ = ["S3Store"]

AddressingStyle = Literal["auto", "path", "virtual"]

_TRANSPORT_ERRORS = (bx.ConnectionError, bx.HTTPClientError, bx.IncompleteReadError, ConnectionError, TimeoutError)


class S3Store(CloudStore):
    """Objects under ``prefix`` in an S3 bucket. One boto3 client, shared by all threads.

    ``max_pool_connections`` should be at least the number of threads using the store at once.
    ``anonymous=True`` sends unsigned requests (public buckets). ``checksums`` sets when botocore adds
    CRC checksums to requests and validates them on responses: ``"when_required"`` (the default, as
    botocore did before 1.36, and what S3-compatible servers that reject the newer headers need) or
    ``"when_supported"``. Chunk integrity end to end is the flows' content-hash manifest either way.
    ``payload_signing`` sets whether the SigV4 signature covers a SHA-256 of each request body: ``None``
    (the default) leaves botocore's rule (signed over http, and over https unless a checksum header is
    sent); ``False`` sends ``UNSIGNED-PAYLOAD`` and saves hashing every body (over https TLS still
    protects it; over plain http only ``checksums="when_supported"`` does); ``True`` always signs.
    ``verify`` is how an https endpoint's certificate is checked: ``None`` (the default) uses botocore's
    rule (``AWS_CA_BUNDLE``, else the bundled CA certificates), a path names a CA bundle (a server with a
    private CA, e.g. MinIO), ``False`` skips the check (an encrypted but unauthenticated connection).
    A certificate that fails the check is an error at once, never retried.
    """

    scheme = "s3"
    schemes = ("s3",)
    log_prefixes = ("boto3", "botocore", "s3transfer", "urllib3")
    tls_hint = "to trust a private CA, pass verify=<CA bundle path> or set AWS_CA_BUNDLE"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        profile: str | None = None,
        anonymous: bool = False,
        addressing_style: AddressingStyle | None = None,
        use_accelerate_endpoint: bool = False,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_pool_connections: int = 32,
        retry: RetryPolicy | None = None,
        read_only: bool = False,
        list_page_size: int = 1000,
        checksums: Literal["when_required", "when_supported"] = "when_required",
        payload_signing: bool | None = None,
        verify: bool | str | None = None,
    ) -> None:
        super().__init__(bucket, prefix, retry=retry, read_only=read_only, list_page_size=list_page_size)
        if checksums not in ("when_required", "when_supported"):
            raise ValueError(f"checksums must be 'when_required' or 'when_supported', got {checksums!r}")
        if addressing_style not in (None, "auto", "path", "virtual"):
            raise ValueError(f"addressing_style must be 'auto', 'path' or 'virtual', got {addressing_style!r}")
        if payload_signing not in (None, True, False):
            raise ValueError(f"payload_signing must be None, True or False, got {payload_signing!r}")
        if verify is True:
            verify = None
        if not (verify is None or verify is False or isinstance(verify, str)):
            raise ValueError(f"verify must be None, False or a CA bundle path, got {verify!r}")
        if isinstance(verify, str) and not os.path.isfile(verify):
            raise ValueError(f"verify: no CA bundle file at {verify!r}")
        register_secret(
            access_key_id,
            secret_access_key,
            session_token,
            *(os.environ.get(v) for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")),
        )
        s3_options: dict[str, Any] = {"use_accelerate_endpoint": use_accelerate_endpoint}
        if addressing_style:
            s3_options["addressing_style"] = addressing_style
        if payload_signing is not None:
            s3_options["payload_signing_enabled"] = payload_signing
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_pool_connections,
            request_checksum_calculation=checksums,
            response_checksum_validation=checksums,
            s3=s3_options,
            **({"signature_version": UNSIGNED} if anonymous else {}),
        )
        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            region_name=region,
            profile_name=profile,
        )
        self._client = session.client("s3", endpoint_url=endpoint_url, config=config, verify=verify)
        # botocore wraps a bytes body in a BytesIO, then copies it out block by block for the SHA-256
        # and again for the socket, after an Expect: 100-continue round trip. As bytes it is hashed in
        # place and sent with one sendall; our retries send the same bytes again.
        self._client.meta.events.unregister("before-parameter-build.s3.PutObject", convert_body_to_file_like_object)
        self.endpoint_url: str = self._client.meta.endpoint_url
        self.region: str | None = self._client.meta.region_name
        self._protect_logs()

    def _describe(self) -> dict[str, object]:
        return {"endpoint_url": safe_endpoint(self.endpoint_url), "region": self.region}

    def _get_versioned(self, name: str, byte_range: ByteRange | None, version: str | None) -> tuple[bytes, str | None]:
        extra = {"Range": http_range(byte_range)} if byte_range is not None else {}
        if version is not None:
            extra["IfMatch"] = version
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=name, **extra)
        except bx.ClientError as exc:
            if byte_range is not None and _status(exc) == 416:  # the range starts at or past the end
                return b"", version
            raise
        with contextlib.closing(response["Body"]) as body:
            return bytes(body.read()), response.get("ETag")

    def _put(self, name: str, data: bytes, create: bool) -> None:
        extra = {"IfNoneMatch": "*"} if create else {}
        self._client.put_object(Bucket=self.bucket, Key=name, Body=data, **extra)

    def _delete(self, name: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=name)

    def _size(self, name: str) -> int:
        return int(self._client.head_object(Bucket=self.bucket, Key=name)["ContentLength"])

    def _list_page(self, prefix: str, delimiter: str | None, token: str | None) -> Page:
        extra: dict[str, str] = {}
        if delimiter:
            extra["Delimiter"] = delimiter
        if token:
            extra["ContinuationToken"] = token
        page = self._client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=self.list_page_size, **extra)
        names = [obj["Key"] for obj in page.get("Contents", ())]
        prefixes = [p["Prefix"] for p in page.get("CommonPrefixes", ())]
        return names, prefixes, page.get("NextContinuationToken") if page.get("IsTruncated") else None

    def _classify(self, exc: Exception) -> Classified:
        if isinstance(exc, bx.ClientError):
            status = _status(exc)
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            reason = f"HTTP {status} {code}: {short(error.get('Message', ''))}".rstrip(": ")
            if status == 409 and code == "ConditionalRequestConflict":
                # A concurrent conditional write was in flight; S3 asks to retry, which then resolves.
                return TransientStoreError, reason
            return classify_status(status, code), reason
        if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError | bx.NoAuthTokenError):
            return AccessDenied, f"{short(exc)}; configure AWS credentials or pass anonymous=True for public buckets"
        if isinstance(exc, _TRANSPORT_ERRORS):
            return TransientStoreError, f"{type(exc).__name__}: {short(exc)}"
        return StoreError, f"{type(exc).__name__}: {short(exc)}"

    def close(self) -> None:
        self._client.close()


def _status(exc: bx.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
