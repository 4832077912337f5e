"""Row-level mode (`on_error: rows`, and `on_missing_time: rows` for the time column's checks):
which failed expectations a file survives by setting rows aside, the rows file they go to, and
the row numbers later stages skip.

`collected` says which expectations are handled row by row: every `error` one under
`on_error: rows`; the time column's not-null and range checks (a row without a valid time)
under `on_missing_time`, which follows `on_error` unless the dataset sets it. So a file whose
rules say `on_error: file, on_missing_time: rows` sets its rows without a time aside and
still fails as a whole on any other failed expectation.

A failed `error` expectation is handled row by row when validation named its unexpected rows
(a map expectation: not null, between, in set, regex, unique...; natively or by GX) and, if
it has a `mostly`, that share still held: `mostly` is then the limit beyond which the whole
file fails. An aggregate (row count, mean, max...) has no rows and fails the file in either
mode. The rows go, with the expectations each one failed, to
`quarantine/<dataset>/<file_id>.rows.parquet`; enrich drops them by row number, so `_row`
keeps each loaded row's place in the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sluice.contracts import Expectation, ExpectationResult, Rejected, Staged, ValidationReport
from sluice.datasets import DatasetRules
from sluice.errors import StagingLost
from sluice.staging import iter_batches, read_schema, write_batches

ROW = "_row"  # 1-based row number in the file, as enrich numbers rows
FAILED = "_failed"  # the expectations the row failed, "; "-separated
TIME_CHECKS = frozenset(
    {"expect_column_values_to_not_be_null", "expect_column_values_to_be_between"}
)


def rows_path(quarantine: Path, dataset: str, file_id: str) -> Path:
    return quarantine / dataset / f"{file_id}.rows.parquet"


def name(exp: Expectation) -> str:
    """`expect_column_values_to_not_be_null(ts)`: how an expectation is named to people."""
    kwargs = dict(exp.kwargs)
    columns = kwargs.get("column_list")
    if exp.column is not None:
        target = exp.column
    elif isinstance(columns, tuple | list):
        target = ", ".join(str(c) for c in columns)
    else:
        target = "table"
    return f"{exp.type}({target})"


def collected(
    suite: tuple[Expectation, ...], time_column: str, rules: DatasetRules
) -> frozenset[int]:
    """The suite's `error` expectations whose failing rows are set aside instead of failing
    the file (see the module's docstring)."""

    def mode(exp: Expectation) -> str:
        on_time = exp.column == time_column and exp.type in TIME_CHECKS
        return rules.time_mode if on_time else rules.on_error

    return frozenset(i for i, e in enumerate(suite) if e.severity == "error" and mode(e) == "rows")


def _handled(result: ExpectationResult, rows: Any) -> bool:
    if result.expectation.severity != "error" or not result.unexpected_count or rows is None:
        return False
    if len(rows) != result.unexpected_count:
        return False  # only some of them were named: cannot split the file exactly
    return "mostly" not in dict(result.expectation.kwargs) or result.success


def set_aside(
    report: ValidationReport,
    rows: Mapping[int, Any],
    staged: Staged,
    path: Path,
    batch_rows: int,
) -> ValidationReport:
    """Write the rows of the failed error expectations to `path` and mark those results, when
    that is all that fails the file and some rows remain; otherwise the report as it was."""
    handled = [i for i, r in enumerate(report.results) if _handled(r, rows.get(i))]
    if not handled:
        return report
    others = [r for i, r in enumerate(report.results) if r.fails_file and i not in handled]
    rejected = np.unique(np.concatenate([rows[i] for i in handled]))
    if others or report.drift_errors or len(rejected) >= report.rows:
        return report  # the file fails as a whole (every row, maybe)
    names = {i: name(report.results[i].expectation) for i in handled}
    batches = _rejected_batches(staged, batch_rows, rejected, {names[i]: rows[i] for i in handled})
    schema = _schema(staged)
    write_batches(path, schema, batches)
    results = tuple(
        replace(r, rows_rejected=True) if i in handled else r for i, r in enumerate(report.results)
    )
    return replace(report, results=results, rejected=Rejected(len(rejected), str(path)))


def _schema(staged: Staged) -> pa.Schema:
    source = read_schema(staged)
    return pa.schema([*source, pa.field(ROW, pa.int64()), pa.field(FAILED, pa.string())])


def _rejected_batches(
    staged: Staged, batch_rows: int, rejected: np.ndarray, by_name: Mapping[str, np.ndarray]
) -> Iterator[pa.RecordBatch]:
    """The rejected rows of each batch with their row number and failed expectations."""
    first = 0
    schema = _schema(staged)
    for batch in iter_batches(staged, batch_rows):
        lo, hi = np.searchsorted(rejected, [first, first + batch.num_rows])
        picked = rejected[lo:hi]
        if len(picked):
            sets = _sets(by_name, picked)
            failed = ["; ".join(n for n in by_name if row in sets[n]) for row in picked.tolist()]
            taken = batch.take(pa.array(picked - first))
            columns = [*taken.columns, pa.array(picked + 1), pa.array(failed, pa.string())]
            yield pa.RecordBatch.from_arrays(columns, schema=schema)
        first += batch.num_rows


def _sets(by_name: Mapping[str, np.ndarray], picked: np.ndarray) -> dict[str, set[int]]:
    return {n: set(failing[np.isin(failing, picked)].tolist()) for n, failing in by_name.items()}


def rejected_rows(rejected: Rejected | None) -> np.ndarray:
    """The rejected rows' 1-based numbers, sorted (empty without rejected rows).

    Raises StagingLost when the rows file is gone: the file is validated (and split) again.
    """
    if rejected is None or not rejected.rows:
        return np.empty(0, dtype=np.int64)
    if not Path(rejected.path).is_file():
        raise StagingLost(
            f"the rejected rows file {rejected.path} is gone",
            hint="the file is validated again automatically",
        )
    numbers = pq.read_table(rejected.path, columns=[ROW]).column(ROW).to_numpy()
    return np.sort(np.asarray(numbers, dtype=np.int64))


def keep_mask(first: int, count: int, rejected: np.ndarray) -> np.ndarray | None:
    """For rows numbered first..first+count-1: True where kept; None when all are kept."""
    lo, hi = np.searchsorted(rejected, [first, first + count])
    if lo == hi:
        return None
    mask = np.ones(count, dtype=bool)
    mask[rejected[lo:hi] - first] = False
    return mask
