"""The sink's connections on a real PostgreSQL: reused within a process, and only when healthy."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

import psycopg
import pytest

from sluice import connections


@pytest.fixture(autouse=True)
def no_idle() -> Iterator[None]:
    """Each test starts and ends with no idle connection of this process."""
    connections.close_idle()
    yield
    connections.close_idle()


def _backend(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def test_a_connection_is_lent_again_after_its_block(database: str) -> None:
    with connections.connect(database) as first:
        pid = _backend(first)
        assert first.autocommit
    with connections.connect(database) as second:
        assert _backend(second) == pid
        assert second is first


def test_connections_in_use_at_once_are_distinct(database: str) -> None:
    with connections.connect(database) as a, connections.connect(database) as b:
        assert _backend(a) != _backend(b)


def test_a_connection_left_in_a_transaction_is_closed_not_lent(database: str) -> None:
    with connections.connect(database) as conn:
        pid = _backend(conn)
        conn.execute("BEGIN")  # a caller that did not finish its transaction
    assert conn.closed
    with connections.connect(database) as again:
        assert _backend(again) != pid


def test_a_failed_block_with_its_transaction_rolled_back_keeps_the_connection(
    database: str,
) -> None:
    with pytest.raises(psycopg.errors.UndefinedTable):
        with connections.connect(database) as conn, conn.transaction():
            pid = _backend(conn)
            conn.execute("SELECT * FROM no_such_table")
    with connections.connect(database) as again:
        assert _backend(again) == pid
        assert again.execute("SELECT 1").fetchone() == (1,)


def test_a_terminated_backend_is_replaced_when_lent(database: str, db: psycopg.Connection) -> None:
    with connections.connect(database) as conn:
        pid = _backend(conn)
    db.execute("SELECT pg_terminate_backend(%s)", (pid,))  # a restart, an admin, a timeout

    with connections.connect(database) as again:
        assert _backend(again) != pid
    assert conn.closed


def test_old_connections_are_closed_not_lent(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connections.connect(database) as conn:
        pid = _backend(conn)
    monkeypatch.setattr(connections, "LIFETIME_S", 0.0)
    with connections.connect(database) as again:
        assert _backend(again) != pid
    assert conn.closed


def test_no_more_than_max_idle_are_kept(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connections, "MAX_IDLE", 2)
    with (
        connections.connect(database),
        connections.connect(database),
        connections.connect(database),
    ):
        pass
    assert connections.close_idle() == 2


def _child_backend(database: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    try:
        with connections.connect(database) as conn:
            out.put(_backend(conn))
    except BaseException as exc:  # noqa: BLE001 - the parent's assertion shows it
        out.put(repr(exc))


def test_a_forked_child_opens_its_own_and_leaves_the_parents_alone(database: str) -> None:
    with connections.connect(database) as conn:
        parent = _backend(conn)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child_backend, args=(database, out))
    child.start()
    child.join(30)
    got = out.get(timeout=5)  # (its exit code is not the subject: in a process Prefect's
    assert isinstance(got, int), got  # threads ran in, a forked child's exit may fail)
    assert got != parent
    with connections.connect(database) as again:  # the parent's session survived the child
        assert _backend(again) == parent
