"""Every ```python block of docs/cloud-patterns.md runs, each in a fresh namespace and a temp folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fixtures.paths import REPO

DOC = REPO / "docs" / "cloud-patterns.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def test_the_doc_has_examples_for_each_topic() -> None:
    text = DOC.read_text()
    assert len(BLOCKS) >= 8
    for topic in ("stream_chunks", "write_stream", "Checkpoint", "RetryPolicy", "on_error", "telemetry.attach",
                  "zarrcore.otel.instrument", "read_timeout"):  # fmt: skip
        assert any(topic in block for block in BLOCKS), topic
    for heading in ("Chunk sizing", "Retries", "Timeouts", "Partial failures", "resume", "Idempotency",
                    "Per-backend", "Telemetry"):  # fmt: skip
        assert heading in text, heading


@pytest.mark.parametrize("number", range(len(BLOCKS)), ids=[f"block{n + 1}" for n in range(len(BLOCKS))])
def test_example_runs(number: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = compile(BLOCKS[number], f"{DOC.name}[python block {number + 1}]", "exec")
    exec(code, {"__name__": f"cloud_patterns_block_{number + 1}"})
