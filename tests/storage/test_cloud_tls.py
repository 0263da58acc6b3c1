"""Object stores over https, against moto, fake-gcs-server and Azurite behind TLS with a certificate of their
own on 127.0.0.1: trusting a private CA, refusing an untrusted certificate at once, what S3 signs."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from tests.fixtures.servers import S3Server
from zarrcore.errors import AlreadyExists, StoreError, TransientStoreError
from zarrcore.retry import RetryPolicy
from zarrcore.storage import Store


def round_trip(store: Store) -> None:
    """Writes, a refused create and reads, all over https."""
    store.put("a/b", b"over tls")
    store.put("meta", b"first", mode="create")
    with pytest.raises(AlreadyExists):
        store.put("meta", b"second", mode="create")
    assert store.get("a/b") == b"over tls" and store.get("meta") == b"first"


def refused_at_once(store: Store) -> str:
    """A put through a store that does not trust the certificate: a permanent StoreError, raised before
    any retry (the store's policy would sleep 1 s first); returns its message."""
    t0 = time.monotonic()
    with pytest.raises(StoreError) as info:
        store.put("k", b"never stored")
    assert time.monotonic() - t0 < 1.0, "a certificate that fails the check must not be retried"
    assert not isinstance(info.value, TransientStoreError)
    return str(info.value)


#: Retries that would show: 1 s before each.
SLOW = RetryPolicy(attempts=5, base_delay=1.0, max_delay=1.0)


@pytest.fixture
def tls_bucket(s3_tls_server: S3Server) -> str:
    return s3_tls_server.new_bucket()


def test_a_ca_bundle_makes_a_private_certificate_trusted(s3_tls_server: S3Server, tls_bucket: str) -> None:
    store = s3_tls_server.store(tls_bucket, "p", verify=s3_tls_server.ca_bundle)
    assert store.endpoint_url.startswith("https://127.0.0.1:")
    round_trip(store)
    assert sorted(store.list()) == ["a/b", "meta"]


def test_aws_ca_bundle_is_honoured(
    s3_tls_server: S3Server, tls_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", s3_tls_server.ca_bundle)
    store = s3_tls_server.store(tls_bucket, "env")
    store.put("k", b"v")
    assert store.get("k") == b"v"


def test_an_untrusted_certificate_fails_at_once_with_a_clear_error(
    s3_tls_server: S3Server, tls_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    message = refused_at_once(s3_tls_server.store(tls_bucket, "p", retry=SLOW))
    assert "certificate" in message and "verify=" in message and "AWS_CA_BUNDLE" in message
    trusted = s3_tls_server.store(tls_bucket, "p", verify=s3_tls_server.ca_bundle)
    assert not trusted.exists("k")  # nothing was written


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verify_false_skips_the_check(s3_tls_server: S3Server, tls_bucket: str) -> None:
    store = s3_tls_server.store(tls_bucket, "p", verify=False)
    store.put("k", b"v")
    assert store.get("k") == b"v"


@pytest.mark.parametrize("verify", ["/nonexistent/ca.pem", 3, "yes"])
def test_verify_is_validated(s3_tls_server: S3Server, tls_bucket: str, verify: Any) -> None:
    with pytest.raises(ValueError, match="verify"):
        s3_tls_server.store(tls_bucket, "p", verify=verify)


@pytest.mark.parametrize(
    ("payload_signing", "checksums", "content_sha256"),
    [
        (None, "when_required", "sha256"),  # no checksum header: botocore signs the body even over https
        (False, "when_required", "UNSIGNED-PAYLOAD"),
        (True, "when_required", "sha256"),
        (None, "when_supported", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),  # https + a CRC trailer: unsigned
    ],
)
def test_what_is_signed_over_https(
    s3_tls_server: S3Server, tls_bucket: str, payload_signing: bool | None, checksums: str, content_sha256: str
) -> None:
    """The documented rule of ``payload_signing`` and ``checksums`` on the transport users run: https."""
    store = s3_tls_server.store(tls_bucket, "sig", verify=s3_tls_server.ca_bundle, payload_signing=payload_signing,
                                checksums=checksums)  # fmt: skip
    sent: list[dict[str, Any]] = []
    events = store._client.meta.events
    events.register("before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers)))
    body = bytes(range(256)) * 64
    store.put("k", body)
    assert store.get("k") == body
    headers = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in sent[0].items()}
    expected = hashlib.sha256(body).hexdigest() if content_sha256 == "sha256" else content_sha256
    assert headers["x-amz-content-sha256"] == expected
    assert ("x-amz-trailer" in headers) is (checksums == "when_supported")


# -- GCS and Azure over https -----------------------------------------------------------------------


@pytest.fixture(params=["gcs", "azure"])
def tls_backend(request: pytest.FixtureRequest) -> tuple[str, Any, str]:
    """``(backend, server over https, fresh bucket or container)``."""
    server = request.getfixturevalue(f"{request.param}_tls_server")
    bucket = server.new_bucket() if request.param == "gcs" else server.new_container()
    return request.param, server, bucket


def test_gcs_and_azure_trust_a_private_ca_through_requests_ca_bundle(
    tls_backend: tuple[str, Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, server, bucket = tls_backend
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_bundle)
    store = server.store(bucket, "p")
    assert server.process.endpoint.startswith("https://")
    round_trip(store)


def test_gcs_and_azure_refuse_an_untrusted_certificate_at_once(
    tls_backend: tuple[str, Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, server, bucket = tls_backend
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    message = refused_at_once(server.store(bucket, "p", retry=SLOW))
    assert "certificate" in message and "REQUESTS_CA_BUNDLE" in message
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_bundle)
    assert not server.store(bucket, "p").exists("k")  # nothing was written
