"""The layering contract (``[tool.importlinter]`` in pyproject.toml) holds, and it does catch a bad import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.paths import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.fixture
def copy_of_repo(tmp_path: Path) -> Path:
    for name in ("zarrcore", "flows", "deployments"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_contract() -> None:
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "message"),
    [
        ("zarrcore/grid.py", "import prefect", "zarrcore.grid -> prefect"),
        ("zarrcore/array.py", "import flows.tasks", "zarrcore.array -> flows.tasks"),
        ("zarrcore/storage/cloud/gcs.py", "import zarrcore.storage.cloud.s3",
         "zarrcore.storage.cloud.gcs -> zarrcore.storage.cloud.s3"),
        ("flows/tasks.py", "import zarrcore.grid", "flows.tasks -> zarrcore.grid"),
        ("flows/stores.py", "import deployments.serve", "flows.stores -> deployments.serve"),
    ],
)  # fmt: skip
def test_a_bad_import_breaks_the_contract_and_is_named(copy_of_repo: Path, module: str, bad_import: str,
                                                       message: str) -> None:  # fmt: skip
    with open(copy_of_repo / module, "a") as f:
        f.write(f"\n{bad_import}  # noqa\n")
    result = _lint(copy_of_repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout
    assert message in result.stdout
