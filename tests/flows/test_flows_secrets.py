"""A canary secret sent through every way credentials can reach the flows, then looked for everywhere
the runs leave something: refused where flow parameters would store it (a storage option, URL user
info), accepted from the environment, a credentials file and a Prefect Secret block (the block alone
authenticates ``zarrflow`` to moto, and verify, copy and append run on it too). The canary must be
absent from the Prefect API (flow runs, task runs, logs, artifacts, events, blocks), the server's
database file, the CLI's output and every object in the bucket. Each search is shown to work by a
control: the run given the secret in its environment names its array after a second canary, put
where nothing is secret, and the same search finds that one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterTimestamp
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

from flows.append import append
from flows.copy import copy_array
from flows.credentials import BLOCK_OPTION, CredentialsError, open_options
from flows.ingest import ingest
from flows.sources import ZarrSource
from flows.stores import StoreRef
from flows.validation import ParameterError, check_parameters
from flows.verify import verify
from tests.fixtures.flowkit import run_flow, wait_until
from tests.fixtures.netcdf_files import netcdf_bytes
from tests.fixtures.paths import REPO
from zarrcore.errors import InvalidURL
from zarrcore.storage import check_url

SECRET = f"canarysecret{uuid.uuid4().hex}"
CONTROL = f"canarycontrol{uuid.uuid4().hex}"
SOURCE = "synthetic:8x8:float32:1"
#: No credentials at all unless a case gives some: no AWS_* keys, no files, no instance metadata.
NO_AWS = {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials", "AWS_CONFIG_FILE": "/nonexistent/config",
          "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip


@dataclass
class Cli:
    """One ``zarrflow`` process (output to files: no pipe can fill up), its exit status and output."""

    name: str
    proc: subprocess.Popen[bytes]
    folder: Path
    rc: int | None = None
    out: str = ""
    err: str = ""

    def finish(self, timeout: float = 120) -> None:
        self.rc = self.proc.wait(timeout)
        self.out, self.err = ((self.folder / f"{self.name}.{w}").read_text() for w in ("out", "err"))

    @property
    def flow_run_id(self) -> UUID | None:
        found = re.search(r"\(flow run ([0-9a-f-]{36})\)", self.out)
        return UUID(found[1]) if found else None


@dataclass
class Scenario:
    bucket: str
    options: dict[str, Any]
    block: str
    started: float
    clis: dict[str, Cli] = field(default_factory=dict)
    runs: dict[str, UUID] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)


def _env(api: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(NO_AWS, PREFECT_API_URL=api, PYTHONPATH=str(REPO), PREFECT_LOGGING_LEVEL="INFO", COLUMNS="200")
    return {**env, **extra}


def _cli(folder: Path, name: str, args: list[str], env: dict[str, str]) -> Cli:
    with open(folder / f"{name}.out", "wb") as out, open(folder / f"{name}.err", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "flows.cli", *args], cwd=REPO, env=env, stdout=out, stderr=err)
    return Cli(name, proc, folder)


@pytest.fixture(scope="module")
def scenario(prefect_api: str, s3_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """Every run of the module, once: the CLI processes in parallel, then the in-process flows."""
    bucket = s3_server.new_bucket()
    options = {"endpoint_url": s3_server.endpoint_url, "region": s3_server.region, "addressing_style": "path"}
    block = f"s3-canary-{uuid.uuid4().hex[:12]}"
    Secret(value=json.dumps({"access_key_id": "AKIABLOCKKEY", "secret_access_key": SECRET})).save(block)
    folder = tmp_path_factory.mktemp("secrets")
    credentials = folder / "credentials"
    credentials.write_text(f"[default]\naws_access_key_id = AKIAFILEKEY\naws_secret_access_key = {SECRET}\n")
    s = Scenario(bucket, options, block, time.time())
    opts = [a for k, v in options.items() for a in ("--option", f"{k}={v}")]
    s.clis = {c.name: c for c in [
        _cli(folder, "refused-option", ["ingest", SOURCE, f"s3://{bucket}/refused-option.zarr", *opts,
                                "--option", f"secret_access_key={SECRET}"], _env(prefect_api)),
        _cli(folder, "refused-url", ["ingest", SOURCE, f"s3://AKIAURLKEY:{SECRET}@{bucket}/refused-url.zarr", *opts],
             _env(prefect_api)),
        _cli(folder, "environment", ["ingest", SOURCE, f"s3://{bucket}/environment.zarr", "--array", CONTROL, *opts],
             _env(prefect_api, AWS_ACCESS_KEY_ID="AKIAENVKEY", AWS_SECRET_ACCESS_KEY=SECRET)),
        _cli(folder, "file", ["ingest", SOURCE, f"s3://{bucket}/file.zarr", *opts],
             _env(prefect_api, AWS_SHARED_CREDENTIALS_FILE=str(credentials))),
        _cli(folder, "block", ["ingest", SOURCE, f"s3://{bucket}/block.zarr", *opts, "--credentials-block", block],
             _env(prefect_api)),
    ]}  # fmt: skip
    try:
        with pytest.MonkeyPatch.context() as mp:
            for k in [k for k in os.environ if k.startswith("AWS_")]:
                mp.delenv(k)
            for k, v in NO_AWS.items():
                mp.setenv(k, v)
            _in_process(s, s3_server)
            for cli in s.clis.values():
                cli.finish()
            for name in ("environment", "file", "block"):
                assert s.clis[name].rc == 0, f"{name}: {s.clis[name].out}\n{s.clis[name].err}"
                s.runs[name] = s.clis[name].flow_run_id  # type: ignore[assignment]
            # the copy needs the array the block run wrote
            state, s.runs["copy"] = run_flow(copy_array, source=f"s3://{bucket}/block.zarr", source_path="data",
                                             destination=f"s3://{bucket}/copy.zarr", array="data",
                                             source_storage_options=options, storage_options=options,
                                             credentials_block=block, source_credentials_block=block)  # fmt: skip
            assert state.is_completed(), state.message
            state, s.runs["verify"] = run_flow(verify, destination=f"s3://{bucket}/copy.zarr", array="data",
                                               source={"kind": "zarr", "url": f"s3://{bucket}/block.zarr",
                                                       "path": "data", "storage_options": options,
                                                       "credentials_block": block},
                                               storage_options=options, credentials_block=block)  # fmt: skip
            assert state.is_completed(), state.message
            s.results["verify"] = state.result()
        EventsWorker.drain_all()
        _settle(s)
        yield s
    finally:
        for cli in s.clis.values():
            if cli.proc.poll() is None:
                cli.proc.kill()
                cli.proc.wait(10)


def _in_process(s: Scenario, s3_server: Any) -> None:
    """While the CLI processes run: what a store opened without credentials does, and an append whose
    files and dataset are read and written with the block's credentials only."""
    bare = StoreRef.of(f"s3://{s.bucket}/bare", s.options).open()
    with pytest.raises(Exception) as refused:
        bare.put("probe", b"x")
    s.results["bare"] = refused.value
    blocked = StoreRef.of(f"s3://{s.bucket}/opened", {**s.options, BLOCK_OPTION: s.block}).open()
    blocked.put("probe", b"x")
    s.results["opened"] = blocked.get("probe")
    s3_server.client().put_object(Bucket=s.bucket, Key="raw/day-1.nc", Body=netcdf_bytes("2001-01-01", 4, ny=4, nx=8))
    state, s.runs["append"] = run_flow(append, source=f"s3://{s.bucket}/raw/*.nc", destination=f"s3://{s.bucket}/ds.zarr",
                                       layout={"chunks": {"time": 4}}, storage_options=s.options,
                                       source_storage_options=s.options, credentials_block=s.block,
                                       source_credentials_block=s.block)  # fmt: skip
    assert state.is_completed(), state.message
    s.results["append"] = state.result()


def _settle(s: Scenario) -> None:
    """Wait until the API has every run's final state event and the control run's logs and artifacts."""
    finals = {str(run) for run in s.runs.values()}

    def settled() -> bool:
        done = {e["resource"]["prefect.resource.id"].split(".")[-1] for e in _events(s)
                if e["event"] in ("prefect.flow-run.Completed", "prefect.flow-run.Failed")}  # fmt: skip
        return finals <= done and CONTROL in _dump(_logs(s)) and CONTROL in _dump(_artifacts())

    wait_until(settled, timeout=60, interval=0.5, what="the runs' events, logs and artifacts in the API")


# -- what the API and the store hold ------------------------------------------------------------------


def _dump(items: list[Any]) -> str:
    return "\n".join(i if isinstance(i, str) else json.dumps(_plain(i), default=str, sort_keys=True) for i in items)


def _plain(item: Any) -> Any:
    return item.model_dump(mode="json") if hasattr(item, "model_dump") else item


def _read(method: str, **filters: Any) -> list[Any]:
    """Everything a client ``read_*`` method returns, page by page."""
    out: list[Any] = []
    with get_client(sync_client=True) as client:
        while page := getattr(client, method)(offset=len(out), limit=200, **filters):
            out.extend(page)
            if len(page) < 200:
                break
    return out


def _flow_runs() -> list[Any]:
    return _read("read_flow_runs")


def _task_runs() -> list[Any]:
    return _read("read_task_runs")


def _logs(s: Scenario) -> list[Any]:
    return _read("read_logs", log_filter=LogFilter(timestamp=LogFilterTimestamp(
        after_=datetime.fromtimestamp(s.started - 5, UTC))))  # fmt: skip


def _artifacts() -> list[Any]:
    return _read("read_artifacts")


def _blocks() -> list[Any]:
    return _read("read_block_documents", include_secrets=False)


def _events(s: Scenario) -> list[dict[str, Any]]:
    """Every event since the scenario started, through the REST API (``POST /events/filter``, then pages)."""
    since = datetime.fromtimestamp(s.started - 5, UTC).isoformat()
    api = os.environ.get("PREFECT_API_URL") or str(get_client(sync_client=True).api_url)
    with httpx.Client(timeout=30) as http:
        page = http.post(f"{api.rstrip('/')}/events/filter",
                         json={"filter": {"occurred": {"since": since}}, "limit": 50}).json()  # fmt: skip
        events = list(page["events"])
        while page.get("next_page"):
            page = http.get(page["next_page"]).json()
            events.extend(page["events"])
    return events


def _database() -> str:
    url = str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value())
    path = Path(url.split(":///", 1)[1])
    return "".join(p.read_bytes().decode("latin-1") for p in (path, Path(f"{path}-wal")) if p.exists())


def _objects(s: Scenario, s3_server: Any) -> list[str]:
    """Every object in the bucket: its key and its bytes."""
    client, out = s3_server.client(), []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s.bucket):
        for obj in page.get("Contents", []):
            body = client.get_object(Bucket=s.bucket, Key=obj["Key"])["Body"].read()
            out.append(f"{obj['Key']}\n{body.decode('latin-1')}")
    return out


def _absent_but_control_seen(text: str, where: str) -> None:
    assert CONTROL in text, f"the control canary is not in {where}: this search would not find the secret either"
    assert SECRET not in text, f"the secret is in {where}"


# -- the tests ----------------------------------------------------------------------------------------


def test_refused_credentials_exit_2_with_one_line_and_create_no_flow_run(scenario: Scenario) -> None:
    refusals = (
        ("refused-option", "error: invalid parameters for flow 'ingest': storage_options: "),
        ("refused-url", "error: destination (not shown: it may hold a secret): "),  # zarrflow's own URL check
    )
    for name, start in refusals:
        cli = scenario.clis[name]
        assert cli.rc == 2, f"{name}: {cli.out}\n{cli.err}"
        lines = [line for line in cli.err.splitlines() if line.strip()]
        assert not cli.out.strip() and len(lines) == 1, cli.out + cli.err
        assert lines[0].startswith(start) and "credentials" in lines[0], cli.err
        assert SECRET not in cli.out + cli.err
    runs = _dump(_flow_runs())
    assert "refused-option.zarr" not in runs and "refused-url.zarr" not in runs
    assert "environment.zarr" in runs  # the same search sees a run that was created


def test_environment_file_and_block_credentials_each_land_the_array(scenario: Scenario) -> None:
    for name in ("environment", "file", "block"):
        cli = scenario.clis[name]
        assert cli.rc == 0 and f"ingest completed (flow run {scenario.runs[name]})" in cli.out
    assert scenario.results["verify"]["arrays"][0]["problems"] == 0
    assert scenario.results["append"]["landed"]


def test_the_block_alone_authenticates_the_store(scenario: Scenario) -> None:
    """With no credentials anywhere else a store cannot write to moto; naming the block, it can."""
    assert "credential" in str(scenario.results["bare"]).lower(), scenario.results["bare"]
    assert scenario.results["opened"] == b"x"
    assert SECRET not in str(scenario.results["bare"])
    assert open_options({**scenario.options, BLOCK_OPTION: scenario.block})["secret_access_key"] == SECRET


def test_secret_absent_from_flow_runs_and_task_runs(scenario: Scenario) -> None:
    _absent_but_control_seen(_dump(_flow_runs()), "the flow runs (with their parameters)")
    _absent_but_control_seen(_dump(_task_runs()), "the task runs")


def test_secret_absent_from_logs_artifacts_and_blocks(scenario: Scenario) -> None:
    _absent_but_control_seen(_dump(_logs(scenario)), "the logs")
    _absent_but_control_seen(_dump(_artifacts()), "the artifacts")
    blocks = _dump(_blocks())
    _absent_but_control_seen(blocks, "the block documents (secrets obfuscated)")
    assert scenario.block in blocks  # the ledger blocks name the credentials block, nothing more


def test_secret_absent_from_events(scenario: Scenario) -> None:
    _absent_but_control_seen(_dump(_events(scenario)), "the events")


def test_secret_absent_from_the_server_database_file(scenario: Scenario) -> None:
    _absent_but_control_seen(_database(), "the Prefect server's database file")


def test_secret_absent_from_the_cli_output(scenario: Scenario) -> None:
    output = "\n".join(c.out + c.err for c in scenario.clis.values())
    _absent_but_control_seen(output, "the CLI's stdout and stderr")


def test_secret_absent_from_every_stored_object(scenario: Scenario, s3_server: Any) -> None:
    objects = _objects(scenario, s3_server)
    assert any(o.startswith("copy.zarr/") for o in objects) and any(o.startswith("ds.zarr/") for o in objects)
    _absent_but_control_seen("\n".join(objects), "the bucket's objects (keys and bytes)")


# -- the same guarantees without a server ---------------------------------------------------------


@pytest.mark.parametrize(
    "parameters",
    [
        {"storage_options": {"secret_access_key": SECRET}},
        {"destination": f"s3://AKIAURLKEY:{SECRET}@b/x.zarr"},
        {"results_storage_options": {"session_token": SECRET}},
        {"source": {"kind": "zarr", "url": f"gs://user:{SECRET}@b/x.zarr"}},
        {"source": {"kind": "zarr", "url": "s3://b/x.zarr", "storage_options": {"password": SECRET}}},
        {"credentials_block": f"NOT A NAME {SECRET}"},
        {"layout": {"chunks": [SECRET]}},
    ],
    ids=lambda parameters: "-".join(parameters),  # the secret is random: ids must not carry it
)
def test_a_refused_parameter_is_never_in_the_error_nor_the_logs(parameters: dict[str, Any]) -> None:
    """Through Prefect's own entry point (the engine calls ``validate_parameters``), nothing is echoed."""
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("prefect").addHandler(handler)
    try:
        with pytest.raises(ParameterError) as refused:
            ingest.validate_parameters({"source": {"kind": "synthetic", "shape": [4]}, "destination": "x.zarr",
                                        **parameters})  # fmt: skip
    finally:
        logging.getLogger("prefect").removeHandler(handler)
    assert SECRET not in str(refused.value) and SECRET not in repr(refused.value)
    assert "invalid parameters for flow 'ingest'" in str(refused.value)
    assert not any(SECRET in r for r in records), records


def test_every_flow_checks_its_parameters_the_same_way() -> None:
    cases = [(copy_array, {"source": "a.zarr", "destination": "b.zarr"}), (verify, {"destination": "b.zarr"}),
             (append, {"source": "*.nc", "destination": "d"})]  # fmt: skip
    for flow_fn, params in cases:
        check_parameters(flow_fn, params)
        with pytest.raises(ParameterError) as refused:
            check_parameters(flow_fn, {**params, "storage_options": {"account_key": SECRET}})
        assert "storage_options" in str(refused.value) and SECRET not in str(refused.value)


@pytest.mark.parametrize("url", [f"s3://AKIA:{SECRET}@b/x", f"gs://u:{SECRET}@b/x",
                                 f"az://acct:{SECRET}@acct.blob.core.windows.net/c", f"s3://b/x?X-Amz-Signature={SECRET}",
                                 f"az://c/x?sig={SECRET}", f"s3://{SECRET}:1@b/x"],
                         ids=lambda url: url.replace(SECRET, "SECRET"))  # fmt: skip
def test_url_errors_never_carry_the_secret(url: str) -> None:
    with pytest.raises(InvalidURL) as refused:
        check_url(url)
    assert SECRET not in str(refused.value) and SECRET not in repr(refused.value)


def test_models_built_directly_hide_their_input() -> None:
    with pytest.raises(ValueError) as refused:
        ZarrSource(url=f"s3://AKIA:{SECRET}@b/x.zarr", storage_options={"secret": SECRET})
    assert SECRET not in str(refused.value)


def test_a_block_holding_an_object_or_its_json_text_gives_the_options(prefect_api: str) -> None:
    value = f"other{uuid.uuid4().hex}"  # not SECRET: Prefect's API returns JSON-object secrets unhidden
    as_text, as_object = f"as-text-{uuid.uuid4().hex[:8]}", f"as-object-{uuid.uuid4().hex[:8]}"
    Secret(value=json.dumps({"secret_access_key": value})).save(as_text)
    Secret(value={"secret_access_key": value}).save(as_object)
    for name in (as_text, as_object):
        assert open_options({BLOCK_OPTION: name, "region": "r"}) == {"region": "r", "secret_access_key": value}
    assert open_options({"region": "r"}) == {"region": "r"}


def test_a_block_that_is_missing_or_not_options_fails_without_its_value(prefect_api: str) -> None:
    value = f"other{uuid.uuid4().hex}"
    for bad in (value, f"[{json.dumps(value)}]", f"{{{value}"):
        name = f"not-options-{uuid.uuid4().hex[:8]}"
        Secret(value=bad).save(name)
        with pytest.raises(CredentialsError) as wrong:
            open_options({BLOCK_OPTION: name})
        assert "JSON object" in str(wrong.value) and value not in str(wrong.value)
    with pytest.raises(CredentialsError) as missing:
        open_options({BLOCK_OPTION: f"missing-{uuid.uuid4().hex[:8]}"})
    assert "cannot be read" in str(missing.value)
    both = f"both-{uuid.uuid4().hex[:8]}"
    Secret(value=json.dumps({"endpoint_url": value})).save(both)
    with pytest.raises(CredentialsError) as clash:
        open_options({BLOCK_OPTION: both, "endpoint_url": "http://127.0.0.1:1"})
    assert "['endpoint_url']" in str(clash.value) and value not in str(clash.value)
