"""Frozen dataclasses passed between stages: small, hashable references, never tables.

Every stage returns one of these; Prefect persists them to Redis as task results, so they
must stay small (URIs, counts, column descriptions) and picklable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sluice.datasets import DatasetRules

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
Severity = Literal["error", "warn"]
ErrorMode = Literal["file", "rows"]  # a failed error expectation fails the file, or its rows
Ragged = Literal["error", "pad"]  # a row short of fields refuses the file, or reads as nulls
DriftCheck = Literal["null_ratio", "mean_shift", "new_categories", "time_order"]


@dataclass(frozen=True, slots=True)
class FileRef:
    """One file version: where it is, what it holds (content hash) and which dataset it feeds."""

    path: str
    file_id: str  # sha256 hex digest of the file's bytes
    dataset: str  # safe identifier; the target table's name
    size: int
    rules_hash: str  # hash of the dataset rules in force; part of every cache key
    sink: str = ""  # id of the sink it loads into (sluice/ledger.py): scopes its Redis keys
    rules: DatasetRules | None = None  # the rules read once, at fingerprint, for the whole run

    @property
    def in_force(self) -> DatasetRules:
        """The dataset rules of this run: read at fingerprint, never again during the run, so
        every stage works under the rules whose hash is in its cache key."""
        if self.rules is None:
            raise ValueError(f"{self.path}: FileRef carries no rules (made outside fingerprint)")
        return self.rules


@dataclass(frozen=True, slots=True)
class Staged:
    """A staged Parquet file: a local path or fsspec URL (sluice/staging.py), what it holds."""

    uri: str
    rows: int
    columns: tuple[str, ...]
    # enrich's output: the lineage columns are added as the rows are read (sluice.enrich.batches)
    lineage: Lineage | None = None


@dataclass(frozen=True, slots=True)
class Lineage:
    """Lineage columns computed as staged rows are read, rather than written in a copy: the
    file's id, its arrival, and the rows row-level validation set aside (left out)."""

    file_id: str
    ingested_at: datetime
    rejected: Rejected | None = None


@dataclass(frozen=True, slots=True)
class Column:
    """A column of the staged data: its source name, target name and PostgreSQL type."""

    source: str  # name as it appears in the file's header
    name: str  # safe snake_case identifier used in the table
    pg_type: PgType
    nullable: bool
    scale: int = 0  # digits after the point, for numeric
    text_format: str = ""  # how text converts: "" ISO-like, "slash", "rfc2822", "epoch_s", ...
    parts: tuple[str, ...] = ()  # a time made of these staged columns (sluice/schema/timeparts.py)


@dataclass(frozen=True, slots=True)
class Guess:
    """A choice Sluice made about a file where a dataset rule could have made it instead.

    Every guess is in the run's summary (with the rule that overrides it); the notable ones,
    those that change what a plain reading of the file would load, are in the run's note too,
    which `sluice ingest` prints under the file's line."""

    what: str  # "header", "footer", "ragged rows", "time", "sheet", "columns", ...
    detail: str  # for people: "line 3, 2 metadata lines kept"
    rule: str  # the rule that decides instead: "header_row: 3"
    notable: bool = True


@dataclass(frozen=True, slots=True)
class FileMeta:
    """What a file says besides its rows: the lines above the header (and the `key: value`
    pairs read from them) and the footer below the rows. Stored with the file's ledger row."""

    preamble: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()  # ("Time Zone", "-7"), ...
    footer: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.preamble or self.fields or self.footer)


@dataclass(frozen=True, slots=True)
class InferredSchema:
    """Column types inferred from the whole file, and the column the hypertable partitions on."""

    columns: tuple[Column, ...]
    time_column: str  # Column.name of the time column, or "_ingested_at" where the file has none
    note: str = ""  # what a person should know: the notable guesses, a missing time column
    guesses: tuple[Guess, ...] = ()  # how the file was read and typed, where a rule could say
    meta: FileMeta = FileMeta()

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Bin:
    """One histogram bin: [lower, upper) as text (ISO for times), and its row count."""

    lower: str
    upper: str
    count: int


@dataclass(frozen=True, slots=True)
class ColumnProfile:
    """Statistics of one column; numbers are None (and tuples empty) where they do not apply."""

    name: str
    pg_type: PgType
    count: int
    nulls: int
    distinct: int  # exact while `distinct_exact`, else a lower bound (profile.DISTINCT_CAP)
    min: str | None = None
    max: str | None = None
    mean: float | None = None  # numbers only (finite values)
    stddev: float | None = None
    distinct_exact: bool = True
    top: tuple[tuple[str, int], ...] = ()  # categories (text, boolean): most frequent first
    histogram: tuple[Bin, ...] = ()  # numbers and times

    @property
    def null_ratio(self) -> float:
        return self.nulls / self.count if self.count else 0.0

    @property
    def categories_complete(self) -> bool:
        """`top` lists every value of the column (the set a new category is judged against)."""
        return self.distinct_exact and len(self.top) == self.distinct


@dataclass(frozen=True, slots=True)
class TimeProfile:
    """The time column's span, order and gaps (stretches without a row)."""

    column: str
    start: str | None  # ISO; None when the column has no value
    end: str | None
    ordered: bool  # rows come in non-decreasing time order
    step_s: float | None  # typical interval between consecutive distinct times
    gaps: int  # stretches longer than profile.GAP_STEPS steps without a row
    largest_gaps: tuple[tuple[str, str], ...] = ()  # (from, to), largest first
    resolution_s: float = 0.0  # gaps are found to within this (histogram bin width)


@dataclass(frozen=True, slots=True)
class Profile:
    rows: int
    columns: tuple[ColumnProfile, ...]
    time: TimeProfile | None = None
    typed: Staged | None = None  # the staged file cast to the inferred types, for later stages

    def column(self, name: str) -> ColumnProfile | None:
        for col in self.columns:
            if col.name == name:
                return col
        return None


@dataclass(frozen=True, slots=True)
class Expectation:
    """One expectation of a suite: a Great Expectations type name and its keyword arguments."""

    type: str  # e.g. "expect_column_values_to_not_be_null"
    kwargs: tuple[tuple[str, object], ...] = ()
    severity: Severity = "error"

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
    rows_rejected: bool = False  # row-level mode: its unexpected rows went to the rows file

    @property
    def fails_file(self) -> bool:
        return self.expectation.severity == "error" and not self.success and not self.rows_rejected


@dataclass(frozen=True, slots=True)
class DriftFinding:
    """One way a file's profile differs from its dataset's recent history."""

    check: DriftCheck
    column: str
    severity: Severity
    message: str  # for people: what moved, from what to what
    score: float = 0.0  # the measure compared with the rule's threshold


@dataclass(frozen=True, slots=True)
class Rejected:
    """Rows set aside in row-level mode: how many, and the Parquet file that holds them."""

    rows: int
    path: str  # quarantine/<dataset>/<file_id>.rows.parquet


@dataclass(frozen=True, slots=True)
class ValidationReport:
    rows: int
    results: tuple[ExpectationResult, ...] = field(default_factory=tuple)
    mode: ErrorMode = "file"  # the dataset's `on_error` rule
    rejected: Rejected | None = None
    drift: tuple[DriftFinding, ...] = ()
    history: int = 0  # files of the dataset's history the drift checks compared with

    @property
    def success(self) -> bool:
        return not self.failures and not self.drift_errors

    @property
    def failures(self) -> tuple[ExpectationResult, ...]:
        """Failed `error` expectations that fail the file (rejected rows aside)."""
        return tuple(r for r in self.results if r.fails_file)

    @property
    def drift_errors(self) -> tuple[DriftFinding, ...]:
        return tuple(d for d in self.drift if d.severity == "error")

    @property
    def rows_kept(self) -> int:
        return self.rows - (self.rejected.rows if self.rejected else 0)


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
