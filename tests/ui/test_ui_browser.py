"""The Prefect UI in headless Chromium, as a user drives it: the deployments page lists ours; the custom-run
form of ``ingest-nightly`` shows the source as plain fields with the layout's real defaults; a run filled
in and submitted in that form is executed by a process worker and lands the array; its artifacts tab
leads to the summary table. A failing step saves a screenshot and names it in the failure."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from flows.sources import SyntheticSource
from tests.fixtures.flowkit import wait_until
from tests.fixtures.paths import REPO
from tests.ui.conftest import POOL, UIServer, stop_process

DEPLOYMENTS = ("ingest-nightly", "verify-hourly", "copy", "append-hourly")
pytestmark = pytest.mark.timeout(240)

SOURCE_LABELS = ("Kind", "Path", "URL", "Archive member", "Variable", "Columns", "Table layout", "Shape",
                 "Data type", "Seed", "Pattern", "Source chunks")  # fmt: skip


@contextlib.contextmanager
def screenshot_on_failure(page: Any, folder: Path, step: str) -> Iterator[None]:
    """Run a step; if it fails, save the page as ``<folder>/<step>.png`` and name it in the failure."""
    try:
        yield
    except Exception as exc:
        shot = folder / f"{step}.png"
        with contextlib.suppress(Exception):
            page.screenshot(path=str(shot), full_page=True)
        raise AssertionError(f"UI step {step!r} failed (screenshot: {shot}; page {page.url}): {exc}") from exc


def field(page: Any, label: str) -> Any:
    """The form block of the field labelled ``label`` (the UI adds ' (Optional)' to fields with a default)."""
    return page.locator(
        f"xpath=//label[normalize-space()='{label}' or normalize-space()='{label} (Optional)']"
        "/ancestor::div[contains(concat(' ', @class, ' '), ' group ')][1]"
    )


def test_deployments_page_lists_ours(ui_server: UIServer, page: Any, tmp_path: Path) -> None:
    with screenshot_on_failure(page, tmp_path, "deployments-page"):
        page.goto(ui_server.url)  # the UI's own start page, then its navigation
        page.get_by_role("link", name="Deployments").first.click()
        for name in DEPLOYMENTS:
            page.get_by_role("link", name=name, exact=True).first.wait_for()
    names = {d["name"] for d in ui_server.post("/deployments/filter", {})}
    assert set(DEPLOYMENTS) <= names  # what the page listed is what is deployed


def test_a_run_filled_in_the_form_completes_and_shows_its_summary(ui_server: UIServer, page: Any,
                                                                   tmp_path: Path) -> None:  # fmt: skip
    dest = tmp_path / "from-the-form.zarr"
    run_name = f"form-run-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    with log.open("wb") as out:  # started first: its start-up overlaps the browsing
        worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL],
                                  cwd=REPO, env=ui_server.env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        with screenshot_on_failure(page, tmp_path, "custom-run-form"):
            page.goto(ui_server.url)
            page.get_by_role("link", name="Deployments").first.click()
            page.get_by_role("link", name="ingest-nightly", exact=True).first.click()
            page.get_by_role("button", name="Run", exact=True).first.click()
            page.get_by_role("menuitem", name="Custom run").click()
            for label in SOURCE_LABELS:
                field(page, label).wait_for()
            assert field(page, "Kind").locator("fieldset").inner_text().strip() == "synthetic"
            assert field(page, "Zarr Format").locator("fieldset").inner_text().strip() == "3"
            assert field(page, "Compression").locator("fieldset").inner_text().strip() == "zstd"
            shape = field(page, "Shape").locator("input")
            assert [shape.nth(i).input_value() for i in range(shape.count())] == ["4096", "4096"]
            page.screenshot(path=str(tmp_path / "the-form.png"), full_page=True)

            page.get_by_label("Run Name").fill(run_name)
            shape.nth(0).fill("1024")
            shape.nth(1).fill("2048")
            field(page, "Seed").locator("input").fill("7")
            field(page, "destination").locator("textarea").fill(str(dest))
            for _ in range(3):  # a 503 is Prefect's "retry" (SQLite busy on a loaded machine): a user clicks again
                with page.expect_response(lambda r: r.url.endswith("/create_flow_run"), timeout=45_000) as created:
                    page.get_by_role("button", name="Submit").click()
                if created.value.status != 503:
                    break
            response = created.value
            assert response.status == 201, f"creating the run: {response.status} {response.text()[:1000]}"
            page.get_by_role("link", name=run_name).first.click(timeout=45_000)  # the deployment's runs list
            page.wait_for_url("**/flow-run/**")

        def finished() -> dict[str, Any] | None:
            assert worker.poll() is None, log.read_text()[-3000:]
            runs = ui_server.post("/flow_runs/filter", {"flow_runs": {"name": {"any_": [run_name]}}})
            final = runs and runs[0]["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
            return runs[0] if final else None

        run = wait_until(finished, timeout=90, interval=0.5, what=f"flow run {run_name} to finish")
        assert run["state_type"] == "COMPLETED", f"{run['state']}\n{log.read_text()[-3000:]}"
    finally:
        stop_process(worker)

    assert run["parameters"]["source"]["shape"] == [1024, 2048]  # the form's values, not the deployment's
    expected = SyntheticSource(shape=(1024, 2048), seed=7).open().read((slice(0, 1024), slice(0, 2048)))
    np.testing.assert_array_equal(zarr.open_group(str(dest), mode="r")["field"][:], expected)

    artifacts = ui_server.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]},
                                                                   "key": {"any_": ["ingest-summary"]}}})  # fmt: skip
    columns = list(json.loads(artifacts[0]["data"])[0])
    with screenshot_on_failure(page, tmp_path, "artifacts-tab"):
        page.get_by_text("Completed").first.wait_for(timeout=30_000)
        page.get_by_role("tab", name="Artifacts").click()
        page.get_by_text("ingest-summary").first.click()
        page.locator("table").first.wait_for()
        headers = page.locator("table th").all_inner_texts()
        assert [h.strip() for h in headers][: len(columns)] == columns, headers
        assert page.locator("table td", has_text=str(dest)).count() == 1
