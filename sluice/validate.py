"""Great Expectations gate: the baseline and dataset suites, run on a staged file, as a report.

Suites are plain data built by `sluice.suites` (the baseline the schema implies, and the
dataset's versioned GX 1.x suite file); `validate_table` runs them with GX on a table (as
pandas), mapping each result to a small `ExpectationResult`. `run` is the stage as
tasks/validate.py uses it (`sluice.verdict` words its report); it streams the staged file through
`sluice.validate_chunks`, so its memory grows with the file only by the columns that
whole-file expectations (row count, key uniqueness, column aggregates) read (see there).

`import great_expectations` costs seconds, so `_runtime` imports it on the first validation,
once per process, and builds the ephemeral context, pandas data source, asset and batch
definition that every later call reuses. The reused asset gives every batch the same id, so
validations hold a lock, and GX's caches of the last batch and its metrics are cleared after each.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice import validate_chunks as chunks
from sluice.contracts import (
    Expectation,
    ExpectationResult,
    InferredSchema,
    Profile,
    Staged,
    ValidationReport,
)
from sluice.suites import baseline_suite, load_suite

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

    from sluice.datasets import DatasetRules

STAGE = "validate"
log = logging.getLogger(__name__)

SAMPLE_SIZE = 5  # unexpected values kept per result, distinct, as text
VALIDATE_ROWS = 500_000  # rows per chunk that row-local expectations are validated on
_PARTIAL_COUNT = 20  # unexpected values GX collects per expectation (deduplicated to SAMPLE_SIZE)
_INDEX_KEY = "sluice_index"  # set in each GX expectation's meta: results come back reordered
_BOUND_KWARGS = ("min_value", "max_value")
_NULLABLE_INT = {
    f"{u}int{bits}": f"{u.upper()}Int{bits}" for u in ("", "u") for bits in (8, 16, 32, 64)
}


def _thaw(value: object) -> object:
    """Tuples -> lists, the shape GX's pydantic models expect."""
    if isinstance(value, list | tuple):
        return [_thaw(v) for v in value]
    if isinstance(value, dict):
        return {k: _thaw(v) for k, v in value.items()}
    return value


# --- the lazily loaded GX runtime ------------------------------------------------------------


@dataclass(frozen=True)
class _Runtime:
    """What one process keeps of Great Expectations (GX is untyped at this edge: Any)."""

    gx: Any  # the great_expectations module
    datasource: Any  # PandasDatasource in the ephemeral context
    batch_definition: Any  # whole-dataframe BatchDefinition of the one DataFrameAsset
    expectation_class: Callable[[str], Any]  # registry lookup by type name
    not_found: type[Exception]  # what the registry raises for an unknown name
    map_bases: tuple[type, ...]  # GX's row-by-row (map) expectation base classes
    cross_row: tuple[type, ...]  # the classes of validate_chunks.CROSS_ROW
    lock: threading.Lock


@functools.cache
def _runtime() -> _Runtime:
    """Import GX and build the ephemeral context, once per process (seconds, then free)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no telemetry, no network
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:  # leave an explicit application setting alone
        gx_logger.setLevel(logging.WARNING)
    gx: Any = importlib.import_module("great_expectations")
    registry: Any = importlib.import_module("great_expectations.expectations.registry")
    gx_exceptions: Any = importlib.import_module("great_expectations.exceptions")
    config: Any = importlib.import_module("great_expectations.data_context.types.base")
    bases: Any = importlib.import_module("great_expectations.expectations.expectation")
    engine: Any = importlib.import_module("great_expectations.execution_engine")
    # GX md5-hashes every DataFrame under 1 GB as a batch "fingerprint" nothing reads: a pass
    # over all data per chunk. 0 turns it off (a module global read at each get_batch).
    engine.pandas_execution_engine.HASH_THRESHOLD = 0

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = config.ProgressBarsConfig(globally=False)  # no tqdm
    datasource = context.data_sources.add_pandas(name="sluice")
    asset = datasource.add_dataframe_asset(name="staged")
    batch_definition = asset.add_batch_definition_whole_dataframe(name="whole")
    return _Runtime(
        gx=gx,
        datasource=datasource,
        batch_definition=batch_definition,
        expectation_class=registry.get_expectation_impl,
        not_found=gx_exceptions.ExpectationNotFoundError,
        map_bases=(
            bases.ColumnMapExpectation,
            bases.ColumnPairMapExpectation,
            bases.MulticolumnMapExpectation,
        ),
        cross_row=tuple(registry.get_expectation_impl(name) for name in chunks.CROSS_ROW),
        lock=threading.Lock(),
    )


def _release(datasource: Any) -> None:
    """Drop the batch (the DataFrame) and metrics GX caches on the reused execution engine."""
    engine = datasource.get_execution_engine()
    manager = engine.batch_manager
    manager.reset_batch_cache()
    data_cache = getattr(manager, "_batch_data_cache", None)
    if isinstance(data_cache, dict):
        data_cache.clear()
    if hasattr(manager, "_active_batch_data_id"):
        manager._active_batch_data_id = None
    metric_cache = getattr(engine, "_metric_cache", None)
    if isinstance(metric_cache, dict):
        metric_cache.clear()


# --- validation ------------------------------------------------------------------------------


def validate_table(table: pa.Table, expectations: Sequence[Expectation]) -> ValidationReport:
    """Run the expectations with Great Expectations 1.x on the table (as pandas).

    Each result maps to an ExpectationResult (same order as `expectations`): success,
    unexpected_count (0 where GX counts none) and up to SAMPLE_SIZE distinct unexpected values
    as text from GX's partial_unexpected_list (null as "null"); an aggregate expectation that
    fails gives its observed value ("observed ..."), one GX could not evaluate (e.g. a missing
    column) fails with "error: <message>". min_value/max_value of an expectation on a date or
    timestamp column are converted to that column's kind (ISO strings, dates, naive or aware
    datetimes are accepted; naive means UTC for timestamptz). Raises ValueError for an unknown
    expectation type or kwargs GX rejects, before any data is converted.
    """
    if not expectations:
        return ValidationReport(rows=table.num_rows)
    prepared = _Prepared(_runtime(), expectations, table.schema)
    parts = prepared.evaluate(table, tuple(range(len(expectations))))
    return ValidationReport(
        rows=table.num_rows, results=tuple(parts[i].result for i in range(len(expectations)))
    )


class _Prepared:
    """A suite as GX expectations, run on any table of one file's columns (one GX suite object
    per set of expectations, built on first use: chunks of a file reuse it)."""

    def __init__(
        self,
        rt: _Runtime,
        expectations: Sequence[Expectation],
        schema: Any,
        collect: frozenset[int] = frozenset(),
    ) -> None:
        arrow_types = {field.name: field.type for field in schema}
        self.rt = rt
        self.expectations = tuple(expectations)
        self.collect = collect  # suite indices whose unexpected rows (indices) are wanted
        self.gx = [_gx_expectation(rt, exp, i, arrow_types) for i, exp in enumerate(expectations)]
        self._suites: dict[tuple[int, ...], Any] = {}
        classes = [type(e) for e in self.gx]
        self.plan = chunks.plan(self.expectations, classes, rt.map_bases, rt.cross_row)

    def evaluate(
        self, table: pa.Table, indices: tuple[int, ...], first_row: int = 0
    ) -> dict[int, chunks.Part]:
        """The expectations at `indices` on the table (whose first row is the file's row
        `first_row`, 0-based), as Parts by suite index. Those in `collect` run with GX's
        COMPLETE result format and their Parts carry the unexpected rows' file indices."""
        frame = _to_pandas(table, first_row)
        wanted = tuple(i for i in indices if i in self.collect)
        rest = tuple(i for i in indices if i not in self.collect)
        parts = {}
        with self.rt.lock:
            for chosen, complete in ((rest, False), (wanted, True)):
                if chosen:
                    for result in self._validate(frame, chosen, complete):
                        index = int(result.expectation_config.meta[_INDEX_KEY])
                        parts[index] = _part(self.expectations[index], result, complete)
        return parts

    def _validate(self, frame: Any, indices: tuple[int, ...], complete: bool) -> Any:
        rt = self.rt
        suite = self._suites.get(indices)
        if suite is None:
            chosen = [self.gx[i] for i in indices]
            suite = self._suites[indices] = rt.gx.ExpectationSuite(
                name="sluice", expectations=chosen
            )
        result_format = {
            "result_format": "COMPLETE" if complete else "BASIC",
            "partial_unexpected_count": _PARTIAL_COUNT,
            "return_unexpected_index_query": False,
        }
        try:
            batch = rt.batch_definition.get_batch(batch_parameters={"dataframe": frame})
            return batch.validate(suite, result_format=result_format).results
        finally:
            _release(rt.datasource)


def _gx_expectation(rt: _Runtime, exp: Expectation, index: int, arrow_types: Any) -> Any:
    try:
        cls = rt.expectation_class(exp.type)
    except rt.not_found as exc:
        raise ValueError(f"unknown expectation type {exp.type!r}") from exc
    kwargs = {name: _thaw(value) for name, value in exp.kwargs}
    column = kwargs.get("column")
    if isinstance(column, str) and column in arrow_types:
        for name in _BOUND_KWARGS:
            if kwargs.get(name) is not None:
                kwargs[name] = _bound(kwargs[name], arrow_types[column], exp.type)
    try:
        return cls(**kwargs, meta={_INDEX_KEY: index})
    except Exception as exc:  # pydantic's ValidationError (or a TypeError) from GX's model
        raise ValueError(f"invalid kwargs for {exp.type}: {exc}") from exc


def _bound(value: object, arrow_type: Any, type_name: str) -> object:
    """A min/max bound as the kind of value the column's pandas values compare with."""
    pa_types: Any = importlib.import_module("pyarrow.types")
    is_timestamp = bool(pa_types.is_timestamp(arrow_type))
    if not (is_timestamp or pa_types.is_date(arrow_type)) or isinstance(value, dict):
        return value  # not a temporal column, or a suite parameter
    when: dt.date
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{type_name}: bound {value!r} is not an ISO date/time") from exc
    elif isinstance(value, dt.date):  # datetime included (and pandas.Timestamp)
        when = value
    else:
        raise ValueError(f"{type_name}: bound {value!r} does not compare with dates/times")
    if not is_timestamp:  # date32/date64 -> pandas object column of datetime.date
        return when.date() if isinstance(when, dt.datetime) else when
    if not isinstance(when, dt.datetime):
        when = dt.datetime.combine(when, dt.time())
    if arrow_type.tz is not None:
        return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
    return when if when.tzinfo is None else when.astimezone(dt.UTC).replace(tzinfo=None)


def _to_pandas(table: pa.Table, first_row: int = 0) -> Any:
    """Arrow -> pandas, in the dtypes GX's pandas metrics handle fast and exactly.

    Integer columns with nulls become nullable Int* (not float64, which rounds above 2**53);
    naive timestamps become datetime64[ns] where they fit (GX vectorizes `between` only for
    ns naive columns; others go value by value, ~6 s per million rows). A table of no columns
    keeps its row count (the projection a table row count expectation runs on). The index
    counts the file's rows from `first_row`: GX reports unexpected rows by it.
    """
    pa_mod: Any = importlib.import_module("pyarrow")
    pd: Any = importlib.import_module("pandas")
    columns: dict[str, Any] = {}
    for field, column in zip(table.schema, table.columns, strict=True):
        nullable = _NULLABLE_INT.get(str(field.type))
        if nullable and column.null_count:
            mapper = {field.type: pd.api.types.pandas_dtype(nullable)}.get
            columns[field.name] = column.to_pandas(types_mapper=mapper)
            continue
        if pa_mod.types.is_timestamp(field.type) and field.type.tz is None:
            if field.type.unit != "ns":
                try:
                    column = column.cast(pa_mod.timestamp("ns"))
                except pa_mod.ArrowInvalid:
                    pass  # out of the ns range: keep the unit, exact but slower
        columns[field.name] = column.to_pandas()
    index = pd.RangeIndex(first_row, first_row + table.num_rows)
    if not columns:
        return pd.DataFrame(index=index)
    frame = pd.DataFrame(columns, copy=False)
    frame.index = index
    return frame


def _part(exp: Expectation, result: Any, complete: bool = False) -> chunks.Part:
    """A GX result as a Part: the result, the rows `mostly` counted against, whether it erred,
    and (COMPLETE format, map expectations) the unexpected rows' 0-based indices in the file."""
    details: Mapping[str, Any] = result.result or {}
    considered = int(details.get("element_count") or 0) - int(details.get("missing_count") or 0)
    error = _exception_message(result.exception_info or {}) is not None
    rows = None
    indices = details.get("unexpected_index_list")
    if complete and not error and isinstance(indices, list):
        np: Any = importlib.import_module("numpy")
        rows = np.asarray(indices, dtype=np.int64)
    return chunks.Part(_result(exp, result), considered, error, rows)


def _result(exp: Expectation, result: Any) -> ExpectationResult:
    error = _exception_message(result.exception_info or {})
    if error is not None:
        return ExpectationResult(exp, False, 0, (f"error: {chunks.clip(error)}",))
    details: Mapping[str, Any] = result.result or {}
    success = bool(result.success)
    partial = details.get("partial_unexpected_list")
    if partial:
        sample = chunks.distinct((chunks.text(v) for v in partial), SAMPLE_SIZE)
    elif not success and "observed_value" in details:
        sample = (f"observed {chunks.text(details['observed_value'])}",)
    else:
        sample = ()
    return ExpectationResult(exp, success, int(details.get("unexpected_count") or 0), sample)


def _exception_message(info: Mapping[str, Any]) -> str | None:
    """GX's message when it could not evaluate an expectation (flat, or keyed by metric id)."""
    for entry in [info, *(v for v in info.values() if isinstance(v, Mapping))]:
        if entry.get("raised_exception"):
            return str(entry.get("exception_message") or "GX raised an exception")
    return None


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
    `rows_path` (sluice.reject).
    """
    from sluice import drift, reject
    from sluice.errors import TerminalError  # imports psycopg and redis: not at module import

    suite = _suite(schema, rules)
    started = time.perf_counter()
    batches = chunks.iter_typed(staged, schema, rules.time_zone, batch_rows)
    first = next(batches)  # the typed schema, which min/max bounds are converted to
    collect = reject.collected(suite, schema.time_column, rules) if rows_path else frozenset()
    try:
        prepared = _Prepared(_runtime(), suite, first.schema, collect)
    except ValueError as exc:  # unknown expectation type or kwargs GX rejects
        raise TerminalError(f"dataset suite unusable: {exc}", hint=_SUITE_HINT) from exc
    validated = chunks.validate_batches(
        chain([first], batches),
        first.schema,
        prepared.plan,
        prepared.evaluate,
        rows=VALIDATE_ROWS,
        sample_size=SAMPLE_SIZE,
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
    from sluice.errors import TerminalError

    suite = _suite(schema, rules)
    try:
        prepared = _Prepared(_runtime(), suite, typed)
    except ValueError as exc:  # unknown expectation type or kwargs GX rejects
        raise TerminalError(f"dataset suite unusable: {exc}", hint=_SUITE_HINT) from exc
    return chunks.validate_batches(
        batches,
        typed,
        prepared.plan,
        prepared.evaluate,
        rows=VALIDATE_ROWS,
        sample_size=SAMPLE_SIZE,
    )


def _suite(schema: InferredSchema, rules: DatasetRules) -> tuple[Expectation, ...]:
    """The baseline the schema implies, then the dataset's suite file."""
    from sluice.errors import TerminalError

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
    from sluice.errors import SchemaConflict

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
