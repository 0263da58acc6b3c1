"""The README's Python examples run as written."""

import re

import numpy as np

from tests.fixtures.paths import REPO

README = REPO / "README.md"


def test_readme_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 3
    ns: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), ns)
    out = capsys.readouterr().out
    assert "(1000, 1000) (250, 250) float32 8" in out  # 8 of 16 chunks hold data, NaN chunks are not stored
    assert "temperature (365, 10) float64" in out
    assert "{'lat': 4, 'lon': 8, 'time': 72}" in out and ns["ds"].extent == 72 and len(ns["ds"].landed()) == 3
    np.testing.assert_array_equal(ns["z"][:], np.arange(10_000, dtype="<i4").reshape(100, 100))
