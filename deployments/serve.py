"""Serve the zarrflow deployments from this process, without a work pool or a worker.

    python deployments/serve.py        # or: zarrflow serve

The deployments (names, schedules, default parameters, tags) are read from ``prefect.yaml`` beside
this file, so serving and ``prefect deploy`` always offer the same flows with the same settings.
Runs execute in this process until it is stopped (Ctrl-C).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from prefect import serve  # noqa: E402
from prefect.flows import Flow  # noqa: E402
from prefect.schedules import Cron, Interval, Schedule  # noqa: E402

__all__ = ["load_deployments", "main"]


def _flow(entrypoint: str) -> Flow[..., Any]:
    """``flows/ingest.py:ingest`` -> the flow object in module ``flows.ingest``."""
    path, _, name = entrypoint.partition(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, name)  # type: ignore[no-any-return]


def _schedule(entry: dict[str, Any]) -> Schedule:
    if "cron" in entry:
        return Cron(entry["cron"], timezone=entry.get("timezone"))
    return Interval(entry["interval"], timezone=entry.get("timezone"))


def load_deployments(config: Path = ROOT / "deployments" / "prefect.yaml") -> list[Any]:
    """The deployments declared in ``prefect.yaml``, ready for :func:`prefect.serve`."""
    spec = yaml.safe_load(config.read_text())
    out = []
    for d in spec["deployments"]:
        out.append(
            _flow(d["entrypoint"]).to_deployment(
                name=d["name"],
                description=d.get("description"),
                tags=d.get("tags"),
                parameters=d.get("parameters") or {},
                schedules=[_schedule(s) for s in d.get("schedules") or []],
                enforce_parameter_schema=d.get("enforce_parameter_schema", True),
            )
        )
    return out


def main() -> None:
    serve(*load_deployments())


if __name__ == "__main__":
    main()
