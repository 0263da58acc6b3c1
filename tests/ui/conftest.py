"""Fixtures of the UI tests: a Prefect server that serves its UI (the session's test server runs with
the UI off), the zarrflow deployments on it, and headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.flowkit import wait_until
from tests.fixtures.paths import REPO
from tests.fixtures.servers import free_port

CHROMIUM = Path("/usr/bin/chromium")
POOL = "zarrflow-process"


class UIServer:
    """A ``prefect server start`` with the UI on 127.0.0.1, on its own database and home, without the
    background services (no schedules, no automations: nothing the test does needs them, and fewer writers
    keep SQLite from answering 'database is locked' on a busy machine)."""

    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = f"{self.url}/api"
        self.env = {
            **os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": self.api, "PYTHONPATH": str(REPO),
            "PWD": str(REPO), "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
            "PREFECT_SERVER_DATABASE_TIMEOUT": "30",  # SQLite waits out a busy machine's locks
            "PREFECT_API_LOG_RETRYABLE_ERRORS": "true",  # a 503's cause goes to server.log
            "PREFECT_UI_ENABLED": "true", "PREFECT_UI_API_URL": self.api,
            "PREFECT_WORKER_QUERY_SECONDS": "1",
        }  # fmt: skip
        self.log = home / "server.log"
        self._out = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port),
             "--no-services"],
            cwd=REPO, env=self.env, stdout=self._out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def healthy(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()[-3000:]
        try:
            return httpx.get(f"{self.api}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.api}{path}", timeout=10)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = httpx.post(f"{self.api}{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def prefect(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    def stop(self) -> None:
        stop_process(self.process)
        self._out.close()


def stop_process(process: subprocess.Popen[Any]) -> None:
    """Stop a process this suite started, by its PID."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIServer]:
    """A Prefect server with its UI, the process work pool and the deployments of deployments/prefect.yaml."""
    server = UIServer(tmp_path_factory.mktemp("prefect-ui"))
    try:
        wait_until(server.healthy, timeout=90, interval=0.25, what="the Prefect server with the UI to start")
        server.post("/work_pools/", {"name": POOL, "type": "process"})
        deploy = server.prefect("deploy", "--all", "--prefect-file", "deployments/prefect.yaml")
        assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (``make test`` installs it; Playwright downloads no browser)."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make chromium` (part of `make test`) installs it"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    """A page that reaches 127.0.0.1 only (the UI's analytics and fonts are refused)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1600})
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("http://127.0.0.1")
                  else route.abort())  # fmt: skip
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()
