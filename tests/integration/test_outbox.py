"""The outbox against real TimescaleDB and Redis: written with the load, relayed exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from sluice import catalog, enrich, load, read, schema, transform
from sluice.contracts import FileRef, LoadReport
from sluice.datasets import DatasetRules
from sluice.errors import TransientError
from sluice.load import outbox
from sluice.settings import Settings
from sluice.state.checkpoints import Keys

pytestmark = pytest.mark.services

Conn = psycopg.Connection[Any]


@pytest.fixture
def clean(db: Conn, redis_client: redis.Redis, sink_keys: Keys) -> Iterator[None]:
    """An empty outbox and no stream or sent keys: each test counts its own events."""
    catalog.ensure_catalog(db)
    db.execute("DELETE FROM sluice.outbox")
    redis_client.delete(sink_keys.events, *redis_client.scan_iter(sink_keys.sent("*")))
    yield


def _load(conn: Conn, tmp_path: Path, name: str, text: str, dataset: str) -> LoadReport:
    """The engine's stages, read to load, on one file (no Prefect: the outbox is the subject).

    The ledger outlives a test: a file's content must be unique to the test, or it is a
    duplicate of another test's file."""
    rules = DatasetRules(name=dataset)
    path = tmp_path / name
    path.write_text(text)
    file_id, size = read.fingerprint(path)
    ref = FileRef(str(path), file_id, dataset, size, rules.digest())
    staging = tmp_path / "staging"
    raw = read.run(ref, rules, staging, 1000)
    inferred = schema.infer(raw, rules, 1000)
    ready = transform.run(ref, enrich.run(ref, raw), inferred, rules, staging, 1000)
    return load.run(
        conn, ref, ready, inferred, rules, schema_name="public", lock_timeout_s=5, batch_rows=1000
    )


def _rows(db: Conn, dataset: str) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT event, file_id, payload, delivered_at, stream_id FROM sluice.outbox "
        "WHERE dataset = %s ORDER BY id",
        (dataset,),
    ).fetchall()


def _record(db: Conn, n: int, dataset: str = "relayed") -> list[int]:
    return [
        outbox.record(
            db,
            outbox.QUARANTINED,
            file_id=f"file-{i}",
            dataset=dataset,
            payload={"path": f"/inbox/{dataset}/{i}.csv", "reason": "bad bytes"},
        )
        for i in range(n)
    ]


def _stream(r: redis.Redis, keys: Keys) -> list[tuple[str, dict[str, str]]]:
    return [
        (entry.decode(), {k.decode(): v.decode() for k, v in fields.items()})
        for entry, fields in r.xrange(keys.events)
    ]


def _undelivered(db: Conn) -> list[int]:
    rows = db.execute(
        "SELECT id FROM sluice.outbox WHERE delivered_at IS NULL ORDER BY id"
    ).fetchall()
    return [int(row[0]) for row in rows]


def test_a_load_commits_its_loaded_event_with_the_rows(
    db: Conn, clean: None, tmp_path: Path
) -> None:
    csv = "day,count,src\n2024-01-01,1,loaded\n2024-01-02,2,loaded\n"
    report = _load(db, tmp_path, "a.csv", csv, "obx_loaded")
    file_id = read.fingerprint(tmp_path / "a.csv")[0]

    [(event, row_file, payload, delivered_at, stream_id)] = _rows(db, "obx_loaded")

    assert report.outcome == "loaded"
    assert (event, row_file, delivered_at, stream_id) == (outbox.LOADED, file_id, None, None)
    assert payload == {
        "file_id": file_id,
        "dataset": "obx_loaded",
        "table": "public.obx_loaded",
        "rows": 2,
        "path": str(tmp_path / "a.csv"),
        "size": len(csv),
        "created": True,
        "added_columns": [],
        "widened_columns": [],
    }


def test_evolution_is_in_the_loaded_payload(db: Conn, clean: None, tmp_path: Path) -> None:
    _load(db, tmp_path, "a.csv", "day,count,src\n2024-01-01,1,evolved\n", "obx_evolved")
    _load(db, tmp_path, "b.csv", "day,count,extra\n2024-01-02,2.5,evolved\n", "obx_evolved")

    payloads = [row[2] for row in _rows(db, "obx_evolved")]

    assert [(p["created"], p["added_columns"], p["widened_columns"]) for p in payloads] == [
        (True, [], []),
        (False, ["extra"], ["count"]),
    ]


def test_a_duplicate_load_adds_no_second_event(db: Conn, clean: None, tmp_path: Path) -> None:
    csv = "day,count,src\n2024-01-01,1,dup\n"
    _load(db, tmp_path, "a.csv", csv, "obx_dup")

    again = _load(db, tmp_path, "a-again.csv", csv, "obx_dup")

    assert again.outcome == "duplicate"
    assert len(_rows(db, "obx_dup")) == 1


def test_a_failed_copy_leaves_no_event(db: Conn, clean: None, tmp_path: Path) -> None:
    _load(db, tmp_path, "a.csv", "day,count,src\n2024-01-01,1,bad\n", "obx_bad")
    db.execute("ALTER TABLE public.obx_bad ADD CONSTRAINT small CHECK (count < 100)")

    with pytest.raises(psycopg.errors.CheckViolation):
        _load(db, tmp_path, "b.csv", "day,count,src\n2024-01-02,500,bad\n", "obx_bad")

    bad_id = read.fingerprint(tmp_path / "b.csv")[0]
    assert len(_rows(db, "obx_bad")) == 1  # the first file's event only
    assert not catalog.is_loaded(db, bad_id)


def test_an_event_rolls_back_with_a_load_that_fails_at_commit(
    db: Conn, clean: None, tmp_path: Path
) -> None:
    """A deferred trigger on the outbox fails the commit after the event was inserted."""
    db.execute(
        "CREATE FUNCTION public.obx_refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$"
    )
    db.execute(
        "CREATE CONSTRAINT TRIGGER obx_refuse AFTER INSERT ON sluice.outbox "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.dataset = 'obx_doomed') "
        "EXECUTE FUNCTION public.obx_refuse()"
    )
    try:
        with pytest.raises(psycopg.errors.RaiseException, match="refused at commit"):
            _load(db, tmp_path, "a.csv", "day,count,src\n2024-01-01,1,doomed\n", "obx_doomed")
    finally:
        db.execute("DROP TRIGGER obx_refuse ON sluice.outbox")
        db.execute("DROP FUNCTION public.obx_refuse()")

    assert _rows(db, "obx_doomed") == []
    assert not catalog.is_loaded(db, read.fingerprint(tmp_path / "a.csv")[0])
    table = db.execute("SELECT to_regclass('public.obx_doomed')").fetchone()
    assert table == (None,)


def test_add_belongs_to_the_callers_transaction(db: Conn, clean: None) -> None:
    with db.transaction(force_rollback=True):
        outbox.add(db, outbox.QUARANTINED, file_id="f", dataset="obx_rolled", payload={})

    assert _rows(db, "obx_rolled") == []


def test_record_commits_on_its_own(db: Conn, clean: None, database: str) -> None:
    event_id = outbox.record(
        db, outbox.QUARANTINED, file_id="f1", dataset="obx_q", payload={"reason": "bad"}
    )

    with psycopg.connect(database) as other:
        row = other.execute(
            "SELECT event, file_id, payload FROM sluice.outbox WHERE id = %s", (event_id,)
        ).fetchone()
    assert row == (outbox.QUARANTINED, "f1", {"reason": "bad"})
    assert outbox.pending(db) == 1


def test_relay_publishes_each_event_once_in_order_and_marks_it_delivered(
    db: Conn,
    clean: None,
    redis_client: redis.Redis,
    sink_keys: Keys,
) -> None:
    ids = _record(db, 3)
    published: list[outbox.OutboxEvent] = []

    relayed = outbox.relay(db, redis_client, sink_keys, publish=published.append)
    again = outbox.relay(db, redis_client, sink_keys, publish=published.append)

    assert (relayed, again, outbox.pending(db)) == (3, 0, 0)
    entries = _stream(redis_client, sink_keys)
    assert [int(fields["outbox_id"]) for _, fields in entries] == ids
    assert [e.id for e in published] == ids
    first = entries[0][1]
    assert (first["event"], first["file_id"], first["dataset"]) == (
        outbox.QUARANTINED,
        "file-0",
        "relayed",
    )
    assert first["event_id"] == str(published[0].event_id)
    assert '"reason": "bad bytes"' in first["payload"]
    marks = db.execute("SELECT id, stream_id FROM sluice.outbox ORDER BY id").fetchall()
    assert marks == [(int(fields["outbox_id"]), entry) for entry, fields in entries]
    ttl = redis_client.ttl(sink_keys.sent(published[0].event_id))
    assert 0 < ttl <= outbox.SENT_TTL_S


def test_relay_takes_at_most_limit_events(
    db: Conn, clean: None, redis_client: redis.Redis, sink_keys: Keys
) -> None:
    ids = _record(db, 5)

    assert outbox.relay(db, redis_client, sink_keys, limit=2) == 2
    assert _undelivered(db) == ids[2:]


def test_a_relay_that_died_after_xadd_does_not_publish_twice(
    db: Conn,
    clean: None,
    redis_client: redis.Redis,
    sink_keys: Keys,
) -> None:
    [event_id] = _record(db, 1)
    with db.transaction():  # a relay appends, then dies before its UPDATE
        [event] = outbox.claim(db, 10)
        crashed_entry = outbox.xadd_once(redis_client, sink_keys, event)
    assert _undelivered(db) == [event_id]
    published: list[outbox.OutboxEvent] = []

    assert outbox.relay(db, redis_client, sink_keys, publish=published.append) == 1

    entries = _stream(redis_client, sink_keys)
    assert [entry for entry, _ in entries] == [crashed_entry]
    assert [e.event_id for e in published] == [event.event_id]  # idempotent on event_id
    row = db.execute("SELECT stream_id FROM sluice.outbox WHERE id = %s", (event_id,)).fetchone()
    assert row == (crashed_entry,)


class _Crash(BaseException):
    """Stands for the process dying: nothing in the relay catches it."""


def test_a_relay_killed_in_its_batch_leaves_the_rest_for_the_next(
    db: Conn,
    clean: None,
    redis_client: redis.Redis,
    sink_keys: Keys,
) -> None:
    ids = _record(db, 3)

    def die_at_second(event: outbox.OutboxEvent) -> None:
        if event.id == ids[1]:
            raise _Crash

    with pytest.raises(_Crash):
        outbox.relay(db, redis_client, sink_keys, publish=die_at_second)
    assert _undelivered(db) == ids  # the transaction never committed

    assert outbox.relay(db, redis_client, sink_keys) == 3
    assert [int(f["outbox_id"]) for _, f in _stream(redis_client, sink_keys)] == ids  # each once


def test_a_failed_publish_keeps_what_was_delivered_before_it(
    db: Conn,
    clean: None,
    redis_client: redis.Redis,
    sink_keys: Keys,
) -> None:
    ids = _record(db, 3)

    def fail_at_second(event: outbox.OutboxEvent) -> None:
        if event.id == ids[1]:
            raise ConnectionError("Prefect API down")

    with pytest.raises(Exception, match="Prefect API down"):
        outbox.relay(db, redis_client, sink_keys, publish=fail_at_second)

    assert _undelivered(db) == ids[1:]
    published: list[int] = []
    assert outbox.relay(db, redis_client, sink_keys, publish=lambda e: published.append(e.id)) == 2
    assert published == ids[1:]
    assert [int(f["outbox_id"]) for _, f in _stream(redis_client, sink_keys)] == ids


def test_concurrent_relays_publish_each_event_exactly_once(
    db: Conn,
    clean: None,
    database: str,
    settings: Settings,
    redis_client: redis.Redis,
    sink_keys: Keys,
) -> None:
    ids = _record(db, 200)
    published: list[int] = []
    start = threading.Barrier(4)

    def relay_all() -> int:
        url = settings.redis_url.get_secret_value()
        with psycopg.connect(database, autocommit=True) as conn, redis.Redis.from_url(url) as r:
            start.wait()
            total = 0
            while count := outbox.relay(
                conn, r, sink_keys, limit=7, publish=lambda e: published.append(e.id)
            ):
                total += count
            return total

    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda _: relay_all(), range(4)))

    assert sum(counts) == 200
    assert sorted(published) == ids
    entries = _stream(redis_client, sink_keys)
    assert sorted(int(f["outbox_id"]) for _, f in entries) == ids
    assert outbox.pending(db) == 0


def test_redis_down_leaves_events_undelivered_until_a_later_relay(
    db: Conn,
    clean: None,
    redis_client: redis.Redis,
    sink_keys: Keys,
) -> None:
    ids = _record(db, 2)
    down = redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=1)

    with pytest.raises(TransientError, match="Redis unavailable"):
        outbox.relay(db, down, sink_keys)

    assert _undelivered(db) == ids
    assert outbox.relay(db, redis_client, sink_keys) == 2
    assert _undelivered(db) == []
    assert len(_stream(redis_client, sink_keys)) == 2


@pytest.mark.flow
def test_relay_outbox_flow_delivers_to_the_stream_and_prefect(
    prefect_api: None,
    db: Conn,
    clean: None,
    redis_client: redis.Redis,
    sink_keys: Keys,
) -> None:
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
    from prefect.events.worker import EventsWorker

    from flows.relay_outbox import relay_outbox
    from tasks.relay import emit

    ids = _record(db, 3, dataset="obx_flow")

    state = relay_outbox(return_state=True)

    assert state.is_completed(), state.message
    assert state.result() == 3
    assert _undelivered(db) == []
    assert [int(f["outbox_id"]) for _, f in _stream(redis_client, sink_keys)] == ids
    with db.transaction(force_rollback=True):
        db.execute("UPDATE sluice.outbox SET delivered_at = NULL WHERE id = %s", (ids[0],))
        [first] = outbox.claim(db, 1)
    emit(first)  # a redelivery after a failed relay: Prefect keeps one event of an id
    EventsWorker.drain_all()
    events = _prefect_events(
        EventFilter(
            event=EventNameFilter(name=[outbox.QUARANTINED]),
            resource=EventResourceFilter(id=[f"sluice.file.file-{i}" for i in range(3)]),
        )
    )
    assert sorted(str(e.id) for e in events) == sorted(_event_id(db, i) for i in ids)
    by_file = {e.resource.id: e for e in events}
    zero = by_file["sluice.file.file-0"]
    assert zero.resource.get("prefect.resource.name") == "0.csv"
    assert zero.resource.get("sluice.dataset") == "obx_flow"
    assert zero.payload == {"path": "/inbox/obx_flow/0.csv", "reason": "bad bytes"}


def _event_id(db: Conn, outbox_id: int) -> str:
    row = db.execute(
        "SELECT id, file_id, event, created_at FROM sluice.outbox WHERE id = %s", (outbox_id,)
    ).fetchone()
    assert row is not None
    return str(outbox.event_id(*row))


def _prefect_events(filter: Any, expected: int = 3, timeout_s: float = 20.0) -> list[Any]:
    """Prefect persists events asynchronously: poll until they are there."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            events = client.read_events(filter=filter, limit=50).events
            if len(events) >= expected or time.monotonic() > deadline:
                return events
            time.sleep(0.2)


def test_a_catalog_older_than_the_outbox_gets_it(db: Conn, database: str, clean: None) -> None:
    db.execute("DROP TABLE sluice.outbox")  # a database whose catalog predates the outbox

    # a process connecting to it (ensure_ddl checks once per connection: `db` has checked)
    with psycopg.connect(database, autocommit=True) as fresh:
        catalog.ensure_catalog(fresh)

    index = db.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'sluice' AND tablename = 'outbox' "
        "AND indexname = 'outbox_undelivered'"
    ).fetchone()
    assert index is not None and "WHERE (delivered_at IS NULL)" in index[0]
    assert outbox.pending(db) == 0
