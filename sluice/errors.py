"""One error tree with a retry axis. Pure: no driver is imported here, so any module may raise
these at no cost; driver exceptions become them in sluice/translate.py, once, at the edge.

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
