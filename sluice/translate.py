"""Driver exceptions into the error tree (sluice/errors.py), once, at the edge.

The stage tasks run each stage body inside `translating`, so whatever escapes leaves as a
`SluiceError` naming the file and the stage: connection loss and the SQLSTATEs that may pass on
retry are transient, anything else from the database is terminal, and an unknown exception is
terminal too (never loop on a bug). The CLI words an error for a person with `one_line`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import redis.exceptions
from psycopg import errors as pgerrors

from sluice.errors import SluiceError, TerminalError, TransientError

_TRANSIENT_SQLSTATE = (
    pgerrors.SerializationFailure,
    pgerrors.DeadlockDetected,
    pgerrors.LockNotAvailable,
    pgerrors.AdminShutdown,
    pgerrors.CrashShutdown,
    pgerrors.CannotConnectNow,
    pgerrors.QueryCanceled,  # statement or lock timeout
    pgerrors.TooManyConnections,
)


def translate(exc: BaseException, *, file: str, stage: str) -> SluiceError:
    """Map a driver exception to the tree. Unknown exceptions are terminal: never loop on a bug."""
    if isinstance(exc, SluiceError):
        return exc.at(file=file, stage=stage)
    name = type(exc).__name__
    if _is_transient_db(exc):
        return TransientError(
            f"database unavailable ({name}: {_first_line(exc)})",
            file=file,
            stage=stage,
            hint="retried automatically; check that PostgreSQL is up",
        )
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return TransientError(
            f"Redis unavailable ({name}: {_first_line(exc)})",
            file=file,
            stage=stage,
            hint="retried automatically; check that Redis is up",
        )
    if isinstance(exc, psycopg.Error):
        return TerminalError(
            f"database rejected the data ({name}: {_first_line(exc)})",
            file=file,
            stage=stage,
            hint="fix the file or the table, then replay it",
        )
    return TerminalError(
        f"unexpected {name}: {_first_line(exc)}",
        file=file,
        stage=stage,
        hint="this is a bug in Sluice; report it with the file",
    )


def _is_transient_db(exc: BaseException) -> bool:
    """Connection loss (no SQLSTATE) and SQLSTATE classes 08, 40, 53, 57, 58 may pass on retry."""
    if isinstance(exc, _TRANSIENT_SQLSTATE):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state[:2] in {"08", "40", "53", "57", "58"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def translating(*, file: str, stage: str) -> Iterator[None]:
    """Run a stage body; whatever escapes leaves as a SluiceError that names file and stage."""
    try:
        yield
    except SluiceError as exc:
        raise exc.at(file=file, stage=stage) from None
    except Exception as exc:
        raise translate(exc, file=file, stage=stage) from exc


def one_line(exc: BaseException) -> str:
    """An error as one line a person can act on (the CLI's); the traceback is for --debug."""
    if isinstance(exc, SluiceError):
        return str(exc)
    if isinstance(exc, psycopg.OperationalError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL unavailable ({first}); start it with `sluice services up postgres`"
    if is_redis_down(exc):
        return f"Redis unavailable ({exc}); start it with `sluice services up redis`"
    if isinstance(exc, ValueError | OSError):
        return f"{exc}"
    return f"{type(exc).__name__}: {exc} (a bug? `sluice --debug ...` shows the traceback)"


def is_redis_down(exc: BaseException) -> bool:
    return isinstance(exc, redis.exceptions.ConnectionError)
