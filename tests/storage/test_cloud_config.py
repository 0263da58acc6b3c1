"""Cloud store configuration: explicit options, each SDK's environment chain, anonymous access,
missing SDKs, and secrets that never leak into repr, URLs, errors, logs or telemetry."""

from __future__ import annotations

import datetime
import hashlib
import logging
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

import pytest

from tests.fixtures.faultproxy import FaultProxy
from tests.fixtures.servers import REPO, AzureServer, GCSServer, S3Server, free_port
from zarrcore import telemetry
from zarrcore.errors import (
    AccessDenied,
    AlreadyExists,
    InvalidKey,
    InvalidURL,
    NotFound,
    ReadOnlyError,
    StoreError,
    TransientStoreError,
)
from zarrcore.retry import NO_RETRY, RetryPolicy
from zarrcore.storage import open_store
from zarrcore.storage.cloud.azure import AzureBlobStore
from zarrcore.storage.cloud.gcs import GCSStore
from zarrcore.storage.cloud.s3 import S3Store
from zarrcore.storage.registry import check_url
from zarrcore.storage.urls import ParsedURL, parse_url

# ------------------------------------------------------------------------------ URLs and options


def test_urls_map_to_bucket_and_prefix() -> None:
    s3 = S3Store.from_url("s3://bucket/a/b/", endpoint_url="http://127.0.0.1:9", region="us-east-1")
    assert (s3.bucket, s3.prefix, s3.url) == ("bucket", "a/b", "s3://bucket/a/b")
    assert S3Store.from_url("s3://bucket", region="us-east-1").url == "s3://bucket"
    gcs = GCSStore.from_url("gcs://bucket/p", anonymous=True, endpoint_url="http://127.0.0.1:9")
    assert (gcs.bucket, gcs.prefix, gcs.url) == ("bucket", "p", "gs://bucket/p")
    az = AzureBlobStore.from_url("az://container@myaccount.blob.core.windows.net/p/q", anonymous=True)
    assert (az.bucket, az.prefix, az.url, az.account_name) == ("container", "p/q", "az://container/p/q", "myaccount")
    assert az.endpoint_url == "https://myaccount.blob.core.windows.net"
    for bad in ("s3:///p", "s3://bucket/../x", "gs://b/a//b", "az://c/./p"):
        with pytest.raises(ValueError):
            open_store(bad)
    with pytest.raises(ValueError):
        S3Store.from_url("gs://bucket/p")


def test_registry_resolves_cloud_schemes() -> None:
    assert type(open_store("s3://b/p", region="us-east-1")) is S3Store
    assert type(open_store("gs://b/p", anonymous=True)) is GCSStore
    assert type(open_store("gcs://b/p", anonymous=True)) is GCSStore
    for url in ("az://c/p", "abfs://c/p", "abfss://c/p"):
        assert type(open_store(url, account_name="acct", anonymous=True)) is AzureBlobStore


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("data/x.zarr", ParsedURL("file", path="data/x.zarr")),
        ("C:\\data\\x.zarr", ParsedURL("file", path="C:\\data\\x.zarr")),
        ("file:///tmp/a%20b", ParsedURL("file", path="/tmp/a b")),
        ("memory://name/", ParsedURL("memory", path="name")),
        ("S3://bucket/a/b/", ParsedURL("s3", bucket="bucket", path="a/b")),
        ("gs://bucket", ParsedURL("gs", bucket="bucket")),
        ("az://c@acct.blob.core.windows.net/p/q",
         ParsedURL("az", bucket="c", path="p/q", host="acct.blob.core.windows.net", account="acct")),
        ("abfss://c@acct.dfs.core.windows.net/p",
         ParsedURL("abfss", bucket="c", path="p", host="acct.dfs.core.windows.net", account="acct")),
        ("abfs://c/p", ParsedURL("abfs", bucket="c", path="p")),
    ],
)  # fmt: skip
def test_one_parser_takes_store_urls_apart(url: str, parsed: ParsedURL) -> None:
    assert parse_url(url) == parsed
    assert check_url(url) == parsed


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("s3://AKIAZARRCORE:topsecret@bucket/p", "credentials"),
        ("s3://AKIAZARRCORE@bucket/p", "credentials"),
        ("az://user:topsecret@acct.blob.core.windows.net/p", "credentials"),
        ("az://c/p?sv=1&sig=topsecret", "query"),
        ("gs://b/p#topsecret", "fragment"),
        ("s3:///p", "bucket"),
        ("s3://b:topsecret/p", "bucket"),
        ("az://c@/p", "account"),
        ("az://c@host:10000/p", "account"),
        ("nosuch://bucket/x", "scheme"),
    ],
)
def test_bad_urls_name_the_wrong_part_without_echo(url: str, part: str) -> None:
    with pytest.raises(InvalidURL) as info:
        check_url(url)
    assert info.value.part == part and "topsecret" not in str(info.value)
    if part != "scheme":
        with pytest.raises(InvalidURL) as info:
            open_store(url)
        assert info.value.part == part and "topsecret" not in str(info.value)


def test_azure_url_forms_reach_one_container(azure_server: AzureServer, azure_container: str) -> None:
    """``abfss://`` and the account form ``az://container@account.blob.core.windows.net`` open the same
    container as ``az://container``; the account URL says which account, ``account_url=`` where it is."""
    plain = open_store(f"az://{azure_container}/p", **azure_server.options())
    plain.put("k", b"v")
    abfss = open_store(f"abfss://{azure_container}/p", **azure_server.options())
    assert type(abfss) is AzureBlobStore and abfss.get("k") == b"v"
    account_form = f"az://{azure_container}@{azure_server.account}.blob.core.windows.net/p"
    by_account = open_store(account_form, account_url=azure_server.account_url, account_key=azure_server.key)
    assert by_account.account_name == azure_server.account and by_account.get("k") == b"v"
    by_account.put("k2", b"w")
    assert plain.get("k2") == b"w"
    for store in (plain, abfss, by_account):
        store.close()


def test_explicit_s3_options(s3_server: S3Server, s3_bucket: str) -> None:
    store = s3_server.store(s3_bucket, "opts", max_pool_connections=64, connect_timeout=3, read_timeout=7)
    config = store._client.meta.config
    assert (config.max_pool_connections, config.connect_timeout, config.read_timeout) == (64, 3, 7)
    assert config.retries["total_max_attempts"] == 1  # the SDK never retries; zarrcore.retry does
    assert config.s3["addressing_style"] == "path"
    store.put("k", b"v")
    assert store.get("k") == b"v"
    virtual = S3Store("b", region="eu-west-1", addressing_style="virtual", use_accelerate_endpoint=True)
    assert virtual._client.meta.config.s3 == {"addressing_style": "virtual", "use_accelerate_endpoint": True}
    assert virtual.region == "eu-west-1"
    with pytest.raises(ValueError):
        S3Store("b", addressing_style="sideways")  # type: ignore[arg-type]


@pytest.fixture(params=["s3", "gcs", "azure"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _server_and_bucket(backend: str, request: pytest.FixtureRequest) -> tuple[Any, str]:
    server = request.getfixturevalue(f"{backend}_server")
    return server, server.new_container() if backend == "azure" else server.new_bucket()


def _endpoint(backend: str, url: str) -> dict[str, str]:
    return {"endpoint" if backend == "azure" else "endpoint_url": url}


def test_pool_is_sized_to_the_concurrency(
    backend: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """With ``max_pool_connections`` >= threads, urllib3 never discards connections; with fewer, it does."""
    server, bucket = _server_and_bucket(backend, request)
    server.store(bucket, "pool").put("k", b"v")

    def hammer(pool_size: int) -> str:
        caplog.clear()
        store = server.store(bucket, "pool", max_pool_connections=pool_size)
        with caplog.at_level(logging.WARNING, logger="urllib3"), ThreadPoolExecutor(16) as pool:
            assert set(pool.map(lambda _: store.get("k"), range(160))) == {b"v"}
        store.close()
        return caplog.text

    assert "Connection pool is full" not in hammer(16)
    assert "Connection pool is full" in hammer(2)


def test_read_only(backend: str, request: pytest.FixtureRequest) -> None:
    server, bucket = _server_and_bucket(backend, request)
    server.store(bucket, "ro").put("k", b"v")
    store = server.store(bucket, "ro", read_only=True)
    assert store.get("k") == b"v"
    for write in (lambda: store.put("k", b"w"), lambda: store.delete("k")):
        with pytest.raises(ReadOnlyError):
            write()
    assert store.get("k") == b"v"


def test_invalid_keys_fail_before_any_io(backend: str, request: pytest.FixtureRequest) -> None:
    server = request.getfixturevalue(f"{backend}_server")
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    store = server.store("bucket", "p", retry=NO_RETRY, connect_timeout=1, **_endpoint(backend, dead))
    for key in ("..", "/abs", "a\\b", "a//b", ""):
        for operation in (store.get, store.size, store.delete, lambda k: store.put(k, b"x")):
            with pytest.raises(InvalidKey):
                operation(key)
    with pytest.raises(TransientStoreError):  # a valid key does reach the (dead) network
        store.get("valid")


# ------------------------------------------------------------------------------ environment chains


def test_s3_environment_chain(
    s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = open_store(f"s3://{s3_bucket}/env")
    assert store.endpoint_url == s3_server.endpoint_url  # type: ignore[attr-defined]
    store.put("k", b"from env")
    assert store.get("k") == b"from env"


def test_s3_profile_chain(s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "config").write_text(
        f"[profile zarrcore]\nregion = us-east-1\nendpoint_url = {s3_server.endpoint_url}\n"
    )
    (tmp_path / "credentials").write_text(
        f"[zarrcore]\naws_access_key_id = {s3_server.access_key}\naws_secret_access_key = {s3_server.secret_key}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    store = S3Store(s3_bucket, "profile", profile="zarrcore")
    store.put("k", b"from profile")
    assert store.get("k") == b"from profile"


def test_s3_without_credentials_is_access_denied(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    store = S3Store("bucket", endpoint_url=s3_server.endpoint_url, region="us-east-1")
    with pytest.raises(AccessDenied, match="anonymous=True"):
        store.get("k")


def test_gcs_storage_emulator_host(gcs_server: GCSServer, gcs_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint_url)
    store = open_store(f"gs://{gcs_bucket}/env")
    store.put("k", b"from env")
    assert store.get("k") == b"from env"


def test_gcs_without_credentials_is_access_denied(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud ADC file
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    with pytest.raises(AccessDenied, match="GOOGLE_APPLICATION_CREDENTIALS"):
        GCSStore("bucket")


def test_azure_connection_string_from_env(
    azure_server: AzureServer, azure_container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_server.connection_string())
    store = open_store(f"az://{azure_container}/env")
    store.put("k", b"from env")
    assert store.get("k") == b"from env"


def test_azure_account_key_and_sas(
    azure_server: AzureServer, azure_container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_KEY", azure_server.key)
    keyed = AzureBlobStore(azure_container, "k", account_url=azure_server.account_url)
    keyed.put("k", b"with key")
    monkeypatch.delenv("AZURE_STORAGE_KEY")
    sas = AzureBlobStore(
        azure_container, "k", account_url=azure_server.account_url, sas_token=_sas(azure_server, azure_container)
    )
    assert sas.get("k") == b"with key"
    assert sorted(sas.list()) == ["k"]


def test_azure_falls_back_to_default_azure_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    store = AzureBlobStore("c", account_name="acct")  # builds the credential; no request is made
    assert type(store._client.credential).__name__ == "DefaultAzureCredential"
    with pytest.raises(ValueError, match="AZURE_STORAGE_CONNECTION_STRING"):
        monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME", raising=False)
        AzureBlobStore("c")


def _sas(server: AzureServer, container: str) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        server.account,
        container,
        account_key=server.key,
        permission=ContainerSasPermissions(read=True, write=True, list=True, delete=True),
        expiry=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1),
    )


# ------------------------------------------------------------------------------ anonymous access


def _public_bucket(backend: str, server: Any) -> str:
    if backend == "azure":
        return str(server.new_container(public_access="container"))
    bucket = str(server.new_bucket())
    if backend == "s3":
        server.client().put_bucket_acl(Bucket=bucket, ACL="public-read")
    return bucket


def test_anonymous_access_to_public_buckets(
    backend: str, request: pytest.FixtureRequest, fault_proxy: Callable[..., FaultProxy]
) -> None:
    server = request.getfixturevalue(f"{backend}_server")
    bucket = _public_bucket(backend, server)
    server.store(bucket, "pub").put("data", b"public bytes")
    proxy = fault_proxy(server.process.endpoint)
    if backend == "s3":
        store: Any = S3Store(bucket, "pub", endpoint_url=proxy.url, region="us-east-1", anonymous=True)
    elif backend == "gcs":
        store = GCSStore(bucket, "pub", endpoint_url=proxy.url, anonymous=True)
    else:
        store = AzureBlobStore(bucket, "pub", account_url=f"{proxy.url}/{server.account}", anonymous=True)
    assert store.get("data") == b"public bytes"
    assert list(store.list()) == ["data"]
    assert proxy.requests == 2
    assert not any(k.lower() == "authorization" for seen in proxy.seen for k in seen.headers)  # unsigned


# ------------------------------------------------------------------------------ missing SDKs


def test_missing_sdks_give_an_install_hint() -> None:
    script = textwrap.dedent(
        """
        import sys
        import zarrcore
        sdks = ("boto3", "botocore", "google.cloud.storage", "azure.storage.blob")
        print("IMPORTED", [m for m in sdks if m in sys.modules])
        for module, url in [("boto3", "s3://b/p"), ("google.cloud.storage", "gs://b/p"),
                            ("azure.storage.blob", "az://c/p")]:
            sys.modules[module] = None
            try:
                zarrcore.open_store(url)
            except ImportError as exc:
                print("HINT", exc)
        del sys.modules["azure.storage.blob"]  # the SDK is back, but not azure-identity
        sys.modules["azure.identity"] = None
        from zarrcore.storage.cloud.azure import AzureBlobStore
        try:
            AzureBlobStore("c", account_name="acct")
        except ImportError as exc:
            print("HINT", exc)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "IMPORTED []" in out  # import zarrcore imports no cloud SDK
    for extra in ("s3", "gcs", "azure", "azure-identity"):
        assert f"pip install 'zarrcore[{extra}]'" in out, out


# ------------------------------------------------------------------------------ secrets


S3_SECRETS = {
    "access_key_id": "AKIAZARRCORESECRET01",
    "secret_access_key": "zarrcore/Secret+Key=abc123XYZ",
    "session_token": "FwoGZXIvYXdzEzarrcoreSessionToken/abc+def==",
}
GCS_TOKEN = "ya29.zarrcore-secret-bearer-token"


@pytest.fixture
def all_events() -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    handler_id = telemetry.attach(("zarrcore",), lambda e, m, md: events.append({"event": e, **m, **md}))
    yield events
    telemetry.detach(handler_id)


def _exercise(make: Callable[..., Any], upstream: str, fault_proxy: Callable[..., FaultProxy]) -> list[str]:
    """Use a store through healthy, flaky and forbidding proxies; return every text that could leak."""
    texts: list[str] = []
    healthy = make(upstream, NO_RETRY)
    # Every request through "flaky" fails once (a 503 or a reset), then goes through.
    flaky_proxy = fault_proxy(upstream, faults={"503": 0.5, "reset": 0.5}, max_consecutive=1)
    flaky = make(flaky_proxy.url, RetryPolicy(base_delay=0.001))
    for store in (healthy, flaky):
        texts += [repr(store), store.url, str(store)]
        store.put("a/k", b"v")
        assert store.get("a/k") == b"v"
        list(store.list())
    failing = [
        (healthy, lambda s: s.get("missing")),
        (make(fault_proxy(upstream, fixed_status=403).url, NO_RETRY), lambda s: s.get("a/k")),
        (make(fault_proxy(upstream, fixed_status=503).url, NO_RETRY), lambda s: s.put("a/k", b"v")),
        (make(fault_proxy(upstream, faults={"reset": 1.0}, max_consecutive=9).url, NO_RETRY), lambda s: s.size("a/k")),
    ]
    for store, operation in failing:
        with pytest.raises(StoreError) as info:
            operation(store)
        texts += ["".join(traceback.format_exception(info.value)), repr(info.value)]
    return texts


def _assert_no_secret(
    secrets: list[str], texts: list[str], caplog: pytest.LogCaptureFixture, events: list[Any]
) -> None:
    everything = "\n".join([*texts, caplog.text, *(f"{k}={v!s}" for e in events for k, v in e.items())])
    assert any(r.levelno == logging.DEBUG for r in caplog.records)  # the SDKs did log at DEBUG
    assert events, "the flaky proxy should have caused retries"
    for secret in secrets:
        for form in {secret, unquote(secret)}:
            assert form not in everything, f"secret {form[:6]}... leaked"


def _assert_the_check_would_see(
    secret: str, sdk_logger: str, texts: list[str], caplog: pytest.LogCaptureFixture, events: list[Any]
) -> None:
    """The positive control of :func:`_assert_no_secret`: a record carrying ``secret`` on the SDK's own
    logger reaches the captured logs masked (the secret is registered and the filter is on that logger),
    and the same record with the filter taken off makes the check fail."""
    logger = logging.getLogger(sdk_logger)
    assert any(r.name == sdk_logger for r in caplog.records)  # the check does capture this logger
    logger.debug("control: sending %s", secret)
    assert "control: sending ***" in caplog.text
    filters = list(logger.filters)
    for log_filter in filters:
        logger.removeFilter(log_filter)
    try:
        logger.debug("control: sending %s", secret)
    finally:
        for log_filter in filters:
            logger.addFilter(log_filter)
    with pytest.raises(AssertionError, match="leaked"):
        _assert_no_secret([secret], texts, caplog, events)


def test_s3_secrets_never_leak(
    s3_server: S3Server,
    s3_bucket: str,
    fault_proxy: Callable[..., FaultProxy],
    caplog: pytest.LogCaptureFixture,
    all_events: list[dict[str, Any]],
) -> None:
    caplog.set_level(logging.DEBUG)

    def make(endpoint: str, retry: RetryPolicy) -> S3Store:
        return S3Store(
            s3_bucket, "sec", endpoint_url=endpoint, region="us-east-1", retry=retry, read_timeout=2, **S3_SECRETS
        )

    texts = _exercise(make, s3_server.endpoint_url, fault_proxy)
    assert "x-amz-security-token:***" in caplog.text.lower()  # botocore logged it; we masked it
    _assert_no_secret(list(S3_SECRETS.values()), texts, caplog, all_events)


def test_gcs_secrets_never_leak(
    gcs_server: GCSServer,
    gcs_bucket: str,
    fault_proxy: Callable[..., FaultProxy],
    caplog: pytest.LogCaptureFixture,
    all_events: list[dict[str, Any]],
) -> None:
    from google.oauth2.credentials import Credentials

    caplog.set_level(logging.DEBUG)

    def make(endpoint: str, retry: RetryPolicy) -> GCSStore:
        creds = Credentials(token=GCS_TOKEN)
        return GCSStore(gcs_bucket, "sec", endpoint_url=endpoint, project="test", credentials=creds, retry=retry)

    texts = _exercise(make, gcs_server.endpoint_url, fault_proxy)
    _assert_no_secret([GCS_TOKEN], texts, caplog, all_events)
    # The SDK sends the token only in a header, which nothing logs; the control shows it would be seen.
    _assert_the_check_would_see(GCS_TOKEN, "urllib3.connectionpool", texts, caplog, all_events)


@pytest.mark.parametrize("auth", ["connection_string", "sas_token"])
def test_azure_secrets_never_leak(
    azure_server: AzureServer,
    azure_container: str,
    fault_proxy: Callable[..., FaultProxy],
    caplog: pytest.LogCaptureFixture,
    all_events: list[dict[str, Any]],
    auth: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    sas = _sas(azure_server, azure_container)

    def make(endpoint: str, retry: RetryPolicy) -> AzureBlobStore:
        if auth == "connection_string":
            return AzureBlobStore(
                azure_container, "sec", connection_string=azure_server.connection_string(endpoint), retry=retry
            )
        return AzureBlobStore(
            azure_container, "sec", account_url=f"{endpoint}/{azure_server.account}", sas_token=sas, retry=retry
        )

    texts = _exercise(make, azure_server.process.endpoint, fault_proxy)
    signature = sas.split("sig=")[1].split("&")[0]
    _assert_no_secret([azure_server.key, signature, sas], texts, caplog, all_events)
    if auth == "sas_token":  # urllib3 logged every request URL with the SAS in its query; we masked it
        assert any(r.name == "urllib3.connectionpool" and "?***" in r.getMessage() for r in caplog.records)
    # The account key only signs requests, so it never travels; the control shows it would be seen.
    given = azure_server.key if auth == "connection_string" else sas
    _assert_the_check_would_see(given, "urllib3.connectionpool", texts, caplog, all_events)


def test_credentials_in_urls_are_refused_without_echo() -> None:
    for url in ("s3://AKIAZARRCORE:topsecret@bucket/p", "az://c/p?sv=1&sig=topsecret", "gs://b/p#topsecret"):
        with pytest.raises(ValueError) as info:
            open_store(url)
        assert "topsecret" not in str(info.value)


def test_not_found_errors_are_key_errors(s3_store: Any) -> None:
    with pytest.raises(KeyError):
        s3_store.get("nope")
    with pytest.raises(NotFound):
        s3_store.size("nope")


@pytest.mark.parametrize("checksums", ["when_required", "when_supported"])
def test_s3_checksum_setting(s3_server: S3Server, s3_bucket: str, checksums: str) -> None:
    """By default no CRC is computed for every PUT (S3-compatible servers that reject the newer
    checksum headers keep working); ``checksums="when_supported"`` turns botocore's CRC back on."""
    store = s3_server.store(s3_bucket, "crc", checksums=checksums)
    sent: list[dict[str, str]] = []
    events = store._client.meta.events
    events.register("before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers)))
    store.put("k", b"payload")
    assert store.get("k") == b"payload"
    crc_headers = [h for h in sent[0] if h.lower().startswith("x-amz-checksum-")]
    assert bool(crc_headers) is (checksums == "when_supported")


def test_s3_checksum_setting_is_validated(s3_server: S3Server, s3_bucket: str) -> None:
    with pytest.raises(ValueError, match="checksums"):
        s3_server.store(s3_bucket, "crc", checksums="always")


@pytest.mark.parametrize("payload_signing", [None, True, False])
def test_s3_payload_signing_setting(s3_server: S3Server, s3_bucket: str, payload_signing: bool | None) -> None:
    """Over plain http botocore signs a SHA-256 of every body unless ``payload_signing=False``, which
    sends ``UNSIGNED-PAYLOAD``; the server accepts either, and create-only writes stay create-only."""
    store = s3_server.store(s3_bucket, "sig", payload_signing=payload_signing)
    sent: list[str] = []
    events = store._client.meta.events
    events.register(
        "before-send.s3.PutObject", lambda request, **_: sent.append(request.headers["X-Amz-Content-SHA256"])
    )
    body = b"payload" * 1000
    store.put("k", body)
    store.put("c", body, mode="create")
    with pytest.raises(AlreadyExists):
        store.put("c", b"other", mode="create")
    assert store.get("k") == body and store.get("c") == body
    expected = "UNSIGNED-PAYLOAD" if payload_signing is False else hashlib.sha256(body).hexdigest()
    assert [h.decode() if isinstance(h, bytes) else h for h in sent[:2]] == [expected, expected]


def test_s3_payload_signing_is_validated(s3_server: S3Server, s3_bucket: str) -> None:
    with pytest.raises(ValueError, match="payload_signing"):
        s3_server.store(s3_bucket, "sig", payload_signing="no")


@pytest.mark.parametrize("checksums", ["when_required", "when_supported"])
def test_s3_put_sends_its_bytes(s3_server: S3Server, s3_bucket: str, checksums: str) -> None:
    """A PUT hands botocore the chunk's bytes as they are (not a BytesIO copied out block by block),
    so no Expect: 100-continue round trip precedes the body, and the object arrives whole."""
    store = s3_server.store(s3_bucket, "bytes", checksums=checksums)
    sent: list[tuple[Any, dict[str, Any]]] = []
    events = store._client.meta.events
    events.register("before-send.s3.PutObject", lambda request, **_: sent.append((request.body, dict(request.headers))))
    body = bytes(range(256)) * 4096  # 1 MiB
    store.put("k", body)
    store.put("c", body, mode="create")
    assert store.get("k") == body and store.get("c") == body
    assert [b for b, _ in sent] == [body, body]
    assert all("Expect" not in headers for _, headers in sent)
