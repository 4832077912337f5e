"""Loads take a slot of the global concurrency limit on TimescaleDB writers (Prefect's API)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sluice import load as sink
from sluice.checkpoints import Keys
from sluice.read import fingerprint
from tasks.load import WRITERS_LIMIT
from tests.data import weather_csv

pytestmark = [pytest.mark.services, pytest.mark.flow]


def test_a_load_waits_while_the_writers_limit_is_full(
    ingest: Any, db: Any, home: Path, redis_client: Any, sink_keys: Keys
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency

    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=WRITERS_LIMIT, limit=1)
        )
    path = weather_csv(home / "inbox" / "limited" / "a.csv", rows=200)
    file_id, _ = fingerprint(path)
    states: list[Any] = []
    try:
        with concurrency(WRITERS_LIMIT, occupy=1, strict=True):  # another worker is writing
            runner = threading.Thread(target=lambda: states.append(ingest(path)))
            runner.start()
            # prepare (read..transform of a small file) stored its result: only load is left
            prepared = f"{sink_keys.prefix}result:prepare:*:{file_id}:*"
            deadline = time.monotonic() + 300
            while not redis_client.keys(prepared) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert redis_client.keys(prepared)  # every stage before load is done ...
            time.sleep(3)
            assert runner.is_alive()  # ... and the load waits for the writer slot
            assert not sink.is_loaded(db, file_id)
        runner.join(timeout=120)
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(WRITERS_LIMIT)

    assert states and states[0].is_completed()
    assert sink.is_loaded(db, file_id)
