"""The validation stage: the baseline and dataset suites, run on a staged file, as a report.

Suites are plain data built by `sluice.validate.suites` (the baseline the schema implies, and the
dataset's versioned GX 1.x suite file); `validate_table` runs them on a table, mapping each
result to a small `ExpectationResult`. `run` is the stage as tasks/validate.py uses it
(`sluice.validate.verdict` words its report); it streams the staged file through
`sluice.validate.chunks`, so its memory grows with the file only by the columns that
whole-file expectations (row count, key uniqueness, column aggregates) read (see there).
The baseline's expectation types run natively (`sluice.validate.checks`: pyarrow.compute, no lock);
the others on Great Expectations (`sluice.validate.gx`), which is imported only when a suite has
one (seconds, once per process) and whose evaluations share one process-wide lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.contracts import (
    Expectation,
    InferredSchema,
    Profile,
    Staged,
    ValidationReport,
)
from sluice.errors import SchemaConflict, TerminalError
from sluice.validate import checks, chunks
from sluice.validate.gx import GxSuite
from sluice.validate.suites import baseline_suite, load_suite

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

    from sluice.datasets import DatasetRules

STAGE = "validate"
log = logging.getLogger(__name__)

VALIDATE_ROWS = 500_000  # rows per chunk that row-local expectations are validated on


# --- validation ------------------------------------------------------------------------------


def validate_table(
    table: pa.Table, expectations: Sequence[Expectation], *, native: bool = True
) -> ValidationReport:
    """Run the expectations on the table, whole (no chunks).

    Each result is an ExpectationResult (same order as `expectations`): success,
    unexpected_count (0 where GX counts none) and up to SAMPLE_SIZE distinct unexpected values
    as text from GX's partial_unexpected_list (null as "null"); an aggregate expectation that
    fails gives its observed value ("observed ..."), one GX could not evaluate (e.g. a missing
    column) fails with "error: <message>". min_value/max_value of an expectation on a date or
    timestamp column are converted to that column's kind (ISO strings, dates, naive or aware
    datetimes are accepted; naive means UTC for timestamptz). Raises ValueError for an unknown
    expectation type or kwargs GX rejects, before any data is converted. `native=False` runs
    every expectation on GX, the baseline's types too (the contract tests compare the two).
    """
    if not expectations:
        return ValidationReport(rows=table.num_rows)
    prepared = _Prepared(expectations, table.schema, native=native)
    parts = prepared.evaluate(table, tuple(range(len(expectations))))
    return ValidationReport(
        rows=table.num_rows, results=tuple(parts[i].result for i in range(len(expectations)))
    )


class _Prepared:
    """A suite ready to run on any table of one file's columns, and its plan: the expectations
    `checks` evaluates natively, the others on GX (imported only if there are any)."""

    def __init__(
        self,
        expectations: Sequence[Expectation],
        schema: Any,
        collect: frozenset[int] = frozenset(),
        *,
        native: bool = True,
    ) -> None:
        self.expectations = tuple(expectations)
        self.collect = collect  # suite indices whose unexpected rows (file indices) are wanted
        found = {
            i: checks.check_for(e, schema) if native else None for i, e in enumerate(expectations)
        }
        self.native = {i: check for i, check in found.items() if check is not None}
        rest = [i for i in found if i not in self.native]
        self.gx = GxSuite(self.expectations, rest, schema, collect) if rest else None
        self.plan = chunks.plan(self.expectations, [self._scope(i) for i in found])

    def _scope(self, index: int) -> chunks.Scope:
        check = self.native.get(index)
        if check is not None:
            return check.scope
        assert self.gx is not None
        return self.gx.scope(index)

    def evaluate(
        self, table: pa.Table, indices: tuple[int, ...], first_row: int = 0
    ) -> dict[int, chunks.Part]:
        """The expectations at `indices` on the table (whose first row is the file's row
        `first_row`, 0-based), as Parts by suite index (`chunks.Evaluate`). Native checks take
        no lock; GX's run under its process-wide lock."""
        parts = {
            i: checks.evaluate(self.native[i], table, first_row, i in self.collect)
            for i in indices
            if i in self.native
        }
        rest = tuple(i for i in indices if i not in self.native)
        if rest:
            assert self.gx is not None
            parts.update(self.gx.evaluate(table, rest, first_row))
        return parts


# --- the stage: what tasks/validate.py calls ---------------------------------------------------


def run(
    staged: Staged,
    schema: InferredSchema,
    rules: DatasetRules,
    batch_rows: int,
    *,
    profile: Profile | None = None,
    history: Sequence[Profile] = (),
    rows_path: Path | None = None,
) -> ValidationReport:
    """Validate the staged file, typed as inferred, against baseline + the dataset's suite.

    `staged` is the raw file or the profile's typed copy (then the casts cost nothing). Key
    names in the rules may be source or target names; suite files name target columns. The
    file streams past once: row-local expectations run on chunks of VALIDATE_ROWS rows, the
    others on the whole file's projection onto the columns they name (uniqueness needs all
    rows of the key at once), so memory grows with the file only by those columns.
    With a profile, its drift from `history` is part of the report. In row-level mode
    (`on_error: rows` or `on_missing_time: rows`, `rows_path` given) the unexpected rows of
    the error expectations it covers are collected and, where that saves the file, written to
    `rows_path` (sluice.validate.reject).
    """
    from sluice.validate import drift, reject

    suite = _suite(schema, rules)
    started = time.perf_counter()
    batches = chunks.iter_typed(staged, schema, rules.time_zone, batch_rows)
    first = next(batches)  # the typed schema, which min/max bounds are converted to
    collect = reject.collected(suite, schema.time_column, rules) if rows_path else frozenset()
    try:
        prepared = _Prepared(suite, first.schema, collect)
    except ValueError as exc:  # unknown expectation type or kwargs GX rejects
        raise TerminalError(f"dataset suite unusable: {exc}", hint=_SUITE_HINT) from exc
    validated = chunks.validate_batches(
        chain([first], batches),
        first.schema,
        prepared.plan,
        prepared.evaluate,
        rows=VALIDATE_ROWS,
        sample_size=chunks.SAMPLE_SIZE,
    )
    report = replace(validated.report, mode=rules.on_error)
    if profile is not None:
        findings = drift.compare(profile, history, rules.drift)
        report = replace(report, drift=findings, history=len(history))
    if collect and rows_path is not None:
        report = reject.set_aside(report, validated.rows, staged, rows_path, batch_rows)
    failed = sum(not r.success for r in report.results)
    seconds = time.perf_counter() - started
    log.info(
        "%d rows, %d expectations, %d failed, %d drift findings, %d rows set aside, %.2f s",
        report.rows,
        len(suite),
        failed,
        len(report.drift),
        report.rejected.rows if report.rejected else 0,
        seconds,
    )
    return report


def run_batches(
    batches: Iterator[pa.RecordBatch],
    typed: pa.Schema,
    schema: InferredSchema,
    rules: DatasetRules,
) -> chunks.Validated:
    """The suite over typed batches (`typed` their schema) as they pass, in file mode: what
    sluice.onepass runs while the rows stream to the COPY (drift and the verdict come after)."""
    suite = _suite(schema, rules)
    try:
        prepared = _Prepared(suite, typed)
    except ValueError as exc:  # unknown expectation type or kwargs GX rejects
        raise TerminalError(f"dataset suite unusable: {exc}", hint=_SUITE_HINT) from exc
    return chunks.validate_batches(
        batches,
        typed,
        prepared.plan,
        prepared.evaluate,
        rows=VALIDATE_ROWS,
        sample_size=chunks.SAMPLE_SIZE,
    )


def _suite(schema: InferredSchema, rules: DatasetRules) -> tuple[Expectation, ...]:
    """The baseline the schema implies, then the dataset's suite file."""
    suite = baseline_suite(schema, _key_names(schema, rules.key))
    if rules.suite:
        try:
            suite += load_suite(Path(rules.suite), rules.suite_text)
        except (OSError, ValueError) as exc:
            raise TerminalError(f"dataset suite unusable: {exc}", hint=_SUITE_HINT) from exc
    return suite


_SUITE_HINT = "fix the dataset's suite file (see datasets.yaml), then replay the file"


def _key_names(schema: InferredSchema, key: Sequence[str]) -> list[str]:
    """The rules' key (source or target names) as target column names."""
    names = []
    for wanted in key:
        found = [c.name for c in schema.columns if wanted in (c.source, c.name)]
        if not found:
            raise SchemaConflict(
                f"key column {wanted!r} is not in the file",
                hint=f"columns are {[c.source for c in schema.columns]}; fix key in datasets.yaml",
            )
        names.append(found[0])
    return names
