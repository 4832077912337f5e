"""The sink's PostgreSQL connections, reused within a process.

A new backend costs the server ~15-20 ms of CPU before its first query (fork, authentication,
TimescaleDB's loader, the catalog caches), more than a small file's queries: a 1,000-row file
opened six connections (fingerprint, profile, validate, load, relay, the backlog gauge) and the
sink's PostgreSQL spent 0.17-0.22 s of CPU on it (docs/decisions.md). `connect(dsn)` lends an
idle connection of this process instead, and takes it back when the block ends:

- only a connection that is idle, autocommit and healthy goes back; one left in a transaction,
  broken, or from before a fork is closed (a callers' `SET LOCAL` ends with its transaction;
  nothing here sets session state);
- a lent connection is checked with an empty query first (a restarted server or a terminated
  backend is found here, not in the caller's first statement), and replaced if it fails;
- at most MAX_IDLE idle connections per DSN, none idle longer than IDLE_S or older than
  LIFETIME_S: a quiet process holds few backends, and none forever.

No background thread: stale connections are closed when the next one is lent.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

Conn = psycopg.Connection[tuple[Any, ...]]

MAX_IDLE = 8  # idle connections kept per DSN (serve's run threads, the sensor, the relay)
IDLE_S = 60.0  # an idle connection unused this long is closed rather than lent
LIFETIME_S = 600.0  # a connection this old is closed rather than kept

_lock = threading.Lock()
_idle: dict[str, list[_Idle]] = {}
_pid = os.getpid()


@dataclass(slots=True)
class _Idle:
    conn: Conn
    born: float
    since: float


def open_new(dsn: str) -> Conn:
    """A connection of its own (not lent, not kept): autocommit, named `sluice`."""
    return psycopg.connect(dsn, application_name="sluice", autocommit=True)


@contextmanager
def connect(dsn: str) -> Iterator[Conn]:
    """An autocommit connection to `dsn` for the block, reused from this process's idle ones."""
    born, conn = _lend(dsn)
    try:
        yield conn
    finally:
        _give_back(dsn, conn, born)


def _lend(dsn: str) -> tuple[float, Conn]:
    now = time.monotonic()
    while (idle := _take(dsn, now)) is not None:
        try:
            idle.conn.execute("")  # one round trip: is the backend still there?
        except psycopg.Error:
            idle.conn.close()
            continue
        return idle.born, idle.conn
    return now, open_new(dsn)


def _take(dsn: str, now: float) -> _Idle | None:
    """The most recently returned usable idle connection; stale ones are closed on the way."""
    with _lock:
        _forget_parent()
        kept = _idle.get(dsn, [])
        while kept:
            idle = kept.pop()
            if now - idle.since <= IDLE_S and now - idle.born <= LIFETIME_S:
                return idle
            idle.conn.close()
    return None


def _give_back(dsn: str, conn: Conn, born: float) -> None:
    reusable = (
        not conn.closed
        and not conn.broken
        and conn.autocommit
        and conn.info.transaction_status == TransactionStatus.IDLE
        and time.monotonic() - born <= LIFETIME_S
    )
    with _lock:
        forked = _forget_parent()
        kept = _idle.setdefault(dsn, [])
        if reusable and not forked and len(kept) < MAX_IDLE:
            kept.append(_Idle(conn, born, time.monotonic()))
            return
    if not forked:  # closing a parent's connection would end the parent's session
        conn.close()


def _forget_parent() -> bool:
    """After a fork the parent's connections are not ours to use or close (under `_lock`):
    True once, in a new child process."""
    global _pid
    if os.getpid() == _pid:
        return False
    _idle.clear()
    _pid = os.getpid()
    return True


def close_idle() -> int:
    """Close this process's idle connections (tests, shutdown); returns how many."""
    with _lock:
        _forget_parent()
        conns = [idle.conn for kept in _idle.values() for idle in kept]
        _idle.clear()
    for conn in conns:
        conn.close()
    return len(conns)


atexit.register(close_idle)
