"""Frozen dataclasses passed between stages: small, hashable references, never tables.

Every stage returns one of these; Prefect persists them to Redis as task results, so they
must stay small (URIs, counts, column descriptions) and picklable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PgType = Literal[
    "boolean",
    "bigint",
    "double precision",
    "text",
    "date",
    "timestamp",
    "timestamptz",
    "jsonb",
    "time",
    "numeric",
]
Outcome = Literal["loaded", "duplicate", "quarantined", "failed"]


@dataclass(frozen=True, slots=True)
class FileRef:
    """One file version: where it is, what it holds (content hash) and which dataset it feeds."""

    path: str
    file_id: str  # sha256 hex digest of the file's bytes
    dataset: str  # safe identifier; the target table's name
    size: int
    rules_hash: str  # hash of the dataset rules in force; part of every cache key


@dataclass(frozen=True, slots=True)
class Staged:
    """A staged Parquet file: a local path (an fsspec URL later) and what it holds."""

    uri: str
    rows: int
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Column:
    """A column of the staged data: its source name, target name and PostgreSQL type."""

    source: str  # name as it appears in the file's header
    name: str  # safe snake_case identifier used in the table
    pg_type: PgType
    nullable: bool
    scale: int = 0  # digits after the point, for numeric
    text_format: str = ""  # how text converts: "" ISO-like, "slash", "rfc2822", "epoch_s", ...


@dataclass(frozen=True, slots=True)
class InferredSchema:
    """Column types inferred from the whole file, and the column the hypertable partitions on."""

    columns: tuple[Column, ...]
    time_column: str  # Column.name of the time column, or "_ingested_at" where the file has none
    note: str = ""  # what a person should know about the inference (e.g. no time column)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class ColumnProfile:
    """Statistics of one column; numbers are None where they do not apply."""

    name: str
    pg_type: PgType
    count: int
    nulls: int
    distinct: int  # exact up to profile.DISTINCT_CAP, then a lower bound
    min: str | None = None
    max: str | None = None
    mean: float | None = None
    stddev: float | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    rows: int
    columns: tuple[ColumnProfile, ...]


@dataclass(frozen=True, slots=True)
class Expectation:
    """One expectation of a suite: a Great Expectations type name and its keyword arguments."""

    type: str  # e.g. "expect_column_values_to_not_be_null"
    kwargs: tuple[tuple[str, object], ...] = ()
    severity: Literal["error", "warn"] = "error"

    @property
    def column(self) -> str | None:
        value = dict(self.kwargs).get("column")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class ExpectationResult:
    expectation: Expectation
    success: bool
    unexpected_count: int = 0
    sample: tuple[str, ...] = ()  # a few unexpected values, as text


@dataclass(frozen=True, slots=True)
class ValidationReport:
    rows: int
    results: tuple[ExpectationResult, ...] = field(default_factory=tuple)

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results if r.expectation.severity == "error")

    @property
    def failures(self) -> tuple[ExpectationResult, ...]:
        return tuple(r for r in self.results if not r.success and r.expectation.severity == "error")


@dataclass(frozen=True, slots=True)
class LoadReport:
    table: str  # schema-qualified, for people: "public.weather"
    rows: int
    outcome: Outcome
    chunks: int = 0
    created: bool = False  # this load created the hypertable
    added_columns: tuple[str, ...] = ()
    widened_columns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """How one file's run ended: what `sluice ingest` prints and the flow returns."""

    path: str
    outcome: Outcome
    rows: int
    file_id: str
    seconds: float
    table: str = ""
    message: str = ""  # the reason for a quarantined file; a note for a loaded one
