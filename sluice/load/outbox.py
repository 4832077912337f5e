"""The transactional outbox: events written in the sink's transaction, relayed once to Redis.

The table `sluice.outbox` is part of the catalog `catalog.ensure_catalog` creates; a partial index
on its undelivered rows keeps the relay's claim cheap however many delivered rows it keeps.

`add` inserts an event in the caller's transaction (load.run adds `sluice.file.loaded` next to
the ledger row and the COPY), so an event exists exactly when what it reports committed.
`relay` later claims undelivered rows in id order (`FOR UPDATE SKIP LOCKED`: concurrent relays
never handle one row), appends each to the sink's Redis stream (`Keys.events`), calls an optional
`publish` callback (Prefect events) and marks the rows delivered.

Never twice to the stream, even when a relay dies between XADD and the UPDATE: one Lua script
does the XADD together with `SET <sent key of event_id> <stream id> NX EX <ttl>`, and
returns the stored stream id without appending when that key exists. A row whose delivery
failed is retried; `publish` may then see an event again and must be idempotent: every event
carries `event_id`, a uuid5 of its row, which Prefect deduplicates on.

The sent key is named after `event_id` (derived from the row's id, file, event and creation
time) rather than the bare id, so a database recreated with a restarted id sequence never has
its new events taken for ones already sent.

Keys, scoped to the sink (sluice/state/checkpoints.py, `P` = `sluice:{<sink>}:`)
    P events                     stream of delivered events          capped at STREAM_MAXLEN
    P outbox:sent:<event_id>     stream id of one appended event      TTL: SENT_TTL_S
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import redis
from psycopg.types.json import Jsonb

from sluice.catalog import ensure_catalog
from sluice.state.checkpoints import Keys
from sluice.translate import translating

STAGE = "relay"
LOADED = "sluice.file.loaded"
QUARANTINED = "sluice.file.quarantined"
STREAM_MAXLEN = 100_000
SENT_TTL_S = 7 * 24 * 3600
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "sluice:outbox")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
log = logging.getLogger(__name__)

# KEYS[1] sent key, KEYS[2] stream; ARGV[1] maxlen, ARGV[2] ttl, ARGV[3..] field, value, ...
_XADD_ONCE = """
local sent = redis.call('GET', KEYS[1])
if sent then
    return sent
end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[1], id, 'NX', 'EX', ARGV[2])
return id
"""

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One outbox row as the relay hands it on; `event_id` is stable across redeliveries."""

    id: int
    event: str
    file_id: str
    dataset: str
    created_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def event_id(self) -> uuid.UUID:
        return event_id(self.id, self.file_id, self.event, self.created_at)


def event_id(outbox_id: int, file_id: str, event: str, created_at: datetime) -> uuid.UUID:
    """A uuid5 of the row: the same for every delivery of it, different for any other row."""
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    return uuid.uuid5(_NAMESPACE, f"{outbox_id}:{file_id}:{event}:{micros}")


def stream_fields(event: OutboxEvent) -> dict[str, str]:
    """The stream entry of an event: flat strings, the payload as sorted JSON."""
    return {
        "event": event.event,
        "event_id": str(event.event_id),
        "outbox_id": str(event.id),
        "file_id": event.file_id,
        "dataset": event.dataset,
        "created_at": event.created_at.astimezone(UTC).isoformat(),
        "payload": json.dumps(dict(event.payload), sort_keys=True, default=str),
    }


def add(conn: Conn, event: str, *, file_id: str, dataset: str, payload: Mapping[str, Any]) -> int:
    """Insert an event in the caller's transaction; it is relayed only if that commits."""
    row = conn.execute(
        "INSERT INTO sluice.outbox (event, file_id, dataset, payload) "
        "VALUES (%s, %s, %s, %s) RETURNING id",
        (event, file_id, dataset, Jsonb(dict(payload))),
    ).fetchone()
    assert row is not None  # INSERT ... RETURNING returns the row
    return int(row[0])


def record(
    conn: Conn, event: str, *, file_id: str, dataset: str, payload: Mapping[str, Any]
) -> int:
    """Insert an event in a transaction of its own (e.g. `sluice.file.quarantined`)."""
    ensure_catalog(conn)
    with conn.transaction():
        return add(conn, event, file_id=file_id, dataset=dataset, payload=payload)


def pending(conn: Conn) -> int:
    """How many events wait for the relay."""
    ensure_catalog(conn)
    row = conn.execute("SELECT count(*) FROM sluice.outbox WHERE delivered_at IS NULL").fetchone()
    return int(row[0]) if row else 0


def claim(conn: Conn, limit: int) -> list[OutboxEvent]:
    """Lock up to `limit` undelivered rows, oldest first, skipping rows another relay holds.

    Call inside a transaction: the locks last until it ends."""
    rows = conn.execute(
        "SELECT id, event, file_id, dataset, created_at, payload FROM sluice.outbox "
        "WHERE delivered_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,),
    ).fetchall()
    return [
        OutboxEvent(
            id=int(id_), event=ev, file_id=file_id, dataset=ds, created_at=at, payload=payload
        )
        for id_, ev, file_id, ds, at, payload in rows
    ]


def xadd_once(r: redis.Redis, keys: Keys, event: OutboxEvent) -> str:
    """Append the event to the stream unless it was appended before; returns its stream id."""
    args: list[str | int] = [STREAM_MAXLEN, SENT_TTL_S]
    for name, value in stream_fields(event).items():
        args += [name, value]
    names = [keys.sent(event.event_id), keys.events]
    entry = r.register_script(_XADD_ONCE)(keys=names, args=args)
    return entry.decode() if isinstance(entry, bytes) else str(entry)


def relay(
    conn: Conn,
    r: redis.Redis,
    keys: Keys,
    *,
    limit: int = 500,
    publish: Callable[[OutboxEvent], None] | None = None,
) -> int:
    """Deliver up to `limit` undelivered events (one transaction); returns how many.

    Events delivered before a failure are marked delivered, the rest stay undelivered for the
    next relay, and the failure is raised as a SluiceError (Redis or database down: transient).
    `conn` is an autocommit connection, as `catalog.connect` opens."""
    with translating(file="sluice.outbox", stage=STAGE):
        ensure_catalog(conn)
        with conn.transaction():
            delivered, failure = _deliver(r, keys, claim(conn, limit), publish)
            _mark(conn, delivered)
        if failure is not None:
            log.warning("relayed %d events, then failed: %s", len(delivered), failure)
            raise failure
    return len(delivered)


def _deliver(
    r: redis.Redis,
    keys: Keys,
    events: list[OutboxEvent],
    publish: Callable[[OutboxEvent], None] | None,
) -> tuple[list[tuple[int, str]], Exception | None]:
    """Publish in order until one fails; the (id, stream id) of the delivered ones."""
    delivered: list[tuple[int, str]] = []
    for event in events:
        try:
            stream_id = xadd_once(r, keys, event)
            if publish is not None:
                publish(event)
        except Exception as exc:  # stop here; this and later rows stay undelivered
            return delivered, exc
        delivered.append((event.id, stream_id))
    return delivered, None


def _mark(conn: Conn, delivered: list[tuple[int, str]]) -> None:
    if not delivered:
        return
    ids, stream_ids = zip(*delivered, strict=True)
    conn.execute(
        "UPDATE sluice.outbox AS o SET delivered_at = now(), stream_id = d.stream_id "
        "FROM unnest(%s::bigint[], %s::text[]) AS d(id, stream_id) WHERE o.id = d.id",
        (list(ids), list(stream_ids)),
    )
