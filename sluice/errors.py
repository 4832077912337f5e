"""One error tree with a retry axis; driver exceptions are translated here, once, at the edge.

    SluiceError                  every error Sluice raises on purpose: file, stage, hint
    ├── StagingLost              a cached stage result points at staged data that is gone:
    │                            the flow forgets the file's stage results and stages it again
    ├── DeadLetterError          (sluice/state/dlq.py) a dead letter cannot be found or replayed as
    │                            asked; nothing was changed
    ├── ConfigError              datasets.yaml is wrong: the run fails, the file stays put
    ├── TransientError           may succeed on retry: retried with backoff, never quarantined
    │     │ connection refused/reset, serialization failure, deadlock, lock timeout,
    │     │ admin shutdown, Redis down, file still being written
    │     └── FileBusy           another run held the file's lock past this run's wait
    └── TerminalError            retrying cannot help: the file is quarantined with the hint
          ├── UnreadableFile     not a format we read, bad encoding, malformed rows
          ├── SchemaConflict     no time column, or a type the existing table cannot take
          └── ValidationFailed   an `error` expectation of the dataset's suite failed

The message a person sees is `"<file>: <stage>: <what> — <hint>"`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import redis.exceptions
from psycopg import errors as pgerrors


class SluiceError(Exception):
    """An error that knows which file and stage it belongs to and what a person can do."""

    def __init__(self, message: str, *, file: str = "", stage: str = "", hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.stage = stage
        self.hint = hint

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.stage) if part)
        text = f"{where}: {self.message}" if where else self.message
        return f"{text} — {self.hint}" if self.hint else text

    def __reduce__(self) -> tuple[object, ...]:
        # Keep keyword fields through pickling (Prefect persists exceptions of failed tasks).
        return (_rebuild, (type(self), self.message, self.file, self.stage, self.hint))

    def at(self, *, file: str, stage: str) -> SluiceError:
        """Fill in file and stage where the raiser did not know them."""
        self.file = self.file or file
        self.stage = self.stage or stage
        return self


def _rebuild(cls: type[SluiceError], message: str, file: str, stage: str, hint: str) -> SluiceError:
    return cls(message, file=file, stage=stage, hint=hint)


class StagingLost(SluiceError):
    """Staged data of an earlier attempt is gone; retrying the same stage cannot bring it back."""


class ConfigError(SluiceError):
    """Sluice's own configuration is wrong (datasets.yaml, a suite path): the run fails and the
    file stays where it is; neither retried nor quarantined, since the file is not at fault."""


class TransientError(SluiceError):
    """Retrying later may succeed."""


class FileBusy(TransientError):
    """Another run held the file longer than this run would wait for it."""


class TerminalError(SluiceError):
    """Retrying cannot succeed: the file goes to quarantine."""


class UnreadableFile(TerminalError):
    """The bytes are not a file Sluice reads."""


class SchemaConflict(TerminalError):
    """The file's columns do not fit a hypertable, or not the existing one."""


class ValidationFailed(TerminalError):
    """An `error` expectation failed."""


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
