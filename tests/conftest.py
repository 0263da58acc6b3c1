"""Shared test configuration. Server fixtures live in tests/fixtures/ and are loaded as plugins."""

import os
import tempfile

# Prefect must never touch the developer's profile or phone home from tests. Each pytest-xdist worker
# gets a home of its own (a worker inherits the environment of the process that started it).
_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker or "PREFECT_HOME" not in os.environ:
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix=f"zarrcore-prefect-home-{_worker or 'main'}-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

pytest_plugins = ["tests.fixtures.servers", "tests.fixtures.prefect"]
