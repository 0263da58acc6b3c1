"""Stores on every backend for the claim tests, and writer processes on them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from zarrcore.storage import LocalStore, Store

CHILD = Path(__file__).with_name("claim_child.py")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Backend:
    store: Store
    options: dict[str, Any]

    @property
    def url(self) -> str:
        return self.store.url


@pytest.fixture(params=["local", "s3", "gcs", "azure"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A store on each backend, with the URL and options another process opens it by."""
    if request.param == "local":
        yield Backend(LocalStore(tmp_path / "store"), {})
        return
    server = request.getfixturevalue(f"{request.param}_server")
    store = request.getfixturevalue(f"{request.param}_store")
    yield Backend(store, server.options())


class Writer:
    """One writer process (tests/claims/claim_child.py) we started; stopped through its own PID."""

    def __init__(self, backend: Backend, path: str, owner: str, **cfg: Any) -> None:
        config = {"url": backend.url, "options": backend.options, "path": path, "owner": owner, **cfg}
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), json.dumps(config)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env,
        )
        self.owner = owner

    def line(self) -> str:
        out = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not out:
            self.proc.wait(30)
            raise AssertionError(f"writer {self.owner} ended early: {self.proc.stderr.read()}")  # type: ignore[union-attr]
        return out.strip()

    def ready(self) -> Writer:
        assert self.line() == "ready"
        return self

    def send(self, text: str) -> None:
        self.proc.stdin.write(text + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def result(self) -> dict[str, Any]:
        return json.loads(self.line())  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


@pytest.fixture
def writers() -> Iterator[list[Writer]]:
    """Writers started by a test are collected here and stopped at its end."""
    started: list[Writer] = []
    yield started
    for w in started:
        w.stop()
