"""Great Expectations at the edge: the lazily loaded runtime, and a suite's expectations run
with GX on a table (as pandas), their results as `validate_chunks.Part`s.

`import great_expectations` costs seconds, so `_runtime` imports it on the first GX validation,
once per process, and builds the ephemeral context, pandas data source, asset and batch
definition that every later call reuses. The reused asset gives every batch the same id, so
GX validations hold a process-wide lock, and GX's caches of the last batch and its metrics are
cleared after each. `validate.runner` sends here only what `validate.checks` does not evaluate.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sluice.contracts import Expectation, ExpectationResult
from sluice.validate import chunks
from sluice.validate.checks import bound

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

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


# --- a suite's GX expectations ---------------------------------------------------------------


class GxSuite:
    """Some expectations of a suite (by suite index) as GX expectations, run on any table of
    one file's columns (one GX suite object per set of expectations, built on first use: the
    chunks of a file reuse it). Building it imports GX; bad kwargs raise ValueError here."""

    def __init__(
        self,
        expectations: Sequence[Expectation],
        indices: Sequence[int],
        schema: Any,
        collect: frozenset[int] = frozenset(),
    ) -> None:
        arrow_types = {field.name: field.type for field in schema}
        self.rt = rt = _runtime()
        self.expectations = tuple(expectations)
        self.collect = collect  # suite indices whose unexpected rows (indices) are wanted
        self.gx = {i: _gx_expectation(rt, expectations[i], i, arrow_types) for i in indices}
        self._suites: dict[tuple[int, ...], Any] = {}

    def scope(self, index: int) -> chunks.Scope:
        """Where the plan runs the expectation at this suite index (by its GX class)."""
        return chunks.scope(type(self.gx[index]), self.rt.map_bases, self.rt.cross_row)

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
            "partial_unexpected_count": chunks.PARTIAL_COUNT,
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
                kwargs[name] = bound(kwargs[name], arrow_types[column], exp.type)
    try:
        return cls(**kwargs, meta={_INDEX_KEY: index})
    except Exception as exc:  # pydantic's ValidationError (or a TypeError) from GX's model
        raise ValueError(f"invalid kwargs for {exp.type}: {exc}") from exc


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
        sample = chunks.distinct((chunks.text(v) for v in partial), chunks.SAMPLE_SIZE)
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
