"""Test configuration: isolated settings for this session, set before any Sluice module reads them.

Services tests use the local Redis and PostgreSQL+TimescaleDB that `scripts/services.sh up`
starts, with a database and a Redis DB of their own. Without the services they are skipped
loudly, or fail when SLUICE_REQUIRE_SERVICES=1 (as `make test` and CI set it).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="sluice-test-"))
TEST_DB = f"sluice_test_{os.getpid()}"
PG_PORT = os.environ.get("SLUICE_PG_PORT", "55432")  # the ports scripts/services.sh uses
REDIS_PORT = os.environ.get("SLUICE_REDIS_PORT", "56379")
REDIS_DB = os.environ.get("SLUICE_TEST_REDIS_DB", "15")  # sessions side by side: one DB each
ADMIN_DSN = f"postgresql://postgres@127.0.0.1:{PG_PORT}/postgres"
os.environ.update(
    SLUICE_HOME=str(_HOME),
    SLUICE_DATABASE_URL=f"postgresql://sluice@127.0.0.1:{PG_PORT}/{TEST_DB}",
    SLUICE_REDIS_URL=f"redis://127.0.0.1:{REDIS_PORT}/{REDIS_DB}",
    SLUICE_DATASETS=str(_HOME / "datasets.yaml"),
    SLUICE_PREFECT_API_URL="http://127.0.0.1:9/api",  # never a developer's running server
    SLUICE_START_SERVICES="false",  # a test that needs services has them; none is started
    SLUICE_RETRIES="2",
    SLUICE_RETRY_BACKOFF_S="0.1",
    SLUICE_LOCK_TIMEOUT_S="1",
    PREFECT_SERVER_ANALYTICS_ENABLED="false",
)

pytest_plugins = ["tests.fix_services", "tests.fix_prefect", "tests.fix_stack", "tests.fix_browser"]

# The suite's three parts, by folder: `make unit` (no services), `make integration` (the local
# services, Prefect's ephemeral API), `make slow` (private stacks, real Prefect servers, wheels).
_PART = {"unit": "unit", "integration": "integration"}  # any other folder: slow
_TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.relative_to(_TESTS).parts[0]
        item.add_marker(_PART.get(folder, "slow"))
