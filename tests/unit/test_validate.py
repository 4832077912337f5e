"""The validation stage on small Arrow tables and staged files: the baseline's types natively
(sluice.validate.checks), the others with real GX (no mocks); tests/unit/test_checks.py holds the
contract between the two.

GX is imported once for the whole module (the `gx` fixture): the first GX validation of a
process pays seconds for the import; every test after it reuses the same ephemeral context.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.contracts import Column, Expectation, InferredSchema, Staged
from sluice.datasets import DatasetRules
from sluice.errors import SchemaConflict, StagingLost, TerminalError, ValidationFailed
from sluice.staging import write_batches
from sluice.validate import chunks as validate_chunks
from sluice.validate import gx as validate_gx
from sluice.validate import runner as validate
from sluice.validate import verdict
from sluice.validate.runner import validate_table
from sluice.validate.suites import baseline_suite, load_suite

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 1, 1, tzinfo=UTC)
SCHEMA = InferredSchema(
    columns=(
        Column("Time", "ts", "timestamptz", nullable=False),
        Column("Station", "station", "bigint", nullable=False),
        Column("Temp", "temp", "double precision", nullable=True),
        Column("Note", "note", "text", nullable=True),
    ),
    time_column="ts",
)


@pytest.fixture(scope="module")
def gx() -> Iterator[None]:
    """Import GX and build its context once for the module (a no-op after the first time)."""
    validate_gx._runtime()
    yield


pytestmark = pytest.mark.usefixtures("gx")


def _table(n: int = 6, **overrides: pa.Array | list[Any]) -> pa.Table:
    """`n` clean rows of SCHEMA's shape (unique ts and station), with columns replaced."""
    columns: dict[str, Any] = {
        "ts": pa.array([T0 + timedelta(minutes=i) for i in range(n)], pa.timestamp("us", "UTC")),
        "station": pa.array(range(n), pa.int64()),
        "temp": pa.array([10.0 + i for i in range(n)], pa.float64()),
        "note": pa.array([f"n{i}" for i in range(n)], pa.string()),
    }
    for name, values in overrides.items():
        kind = columns[name].type if name in columns else None
        columns[name] = values if isinstance(values, pa.Array) else pa.array(values, kind)
    return pa.table(columns)


def _result(report: Any, type_: str, column: str | None = None) -> Any:
    """The one result of this expectation type (on `column`, where given)."""
    (found,) = [
        r
        for r in report.results
        if r.expectation.type == type_ and column in (None, r.expectation.column)
    ]
    return found


def _stamp(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=UTC)


# --- import cost and suites as data ------------------------------------------------------------


def test_importing_the_module_loads_neither_great_expectations_nor_pandas() -> None:
    code = (
        "import sys, sluice.validate; "
        "print(sorted({'great_expectations', 'pandas'} & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


_STAGE_IN_A_NEW_PROCESS = """
import json, sys
from sluice.validate import runner as validate
from sluice.contracts import Column, InferredSchema, Staged
from sluice.datasets import DatasetRules

uri, suite = sys.argv[1], sys.argv[2] or None
raw = Staged(uri, 5, ("ts", "value"))
schema = InferredSchema(
    (Column("Time", "ts", "timestamptz", False), Column("Value", "value", "bigint", True)), "ts"
)
report = validate.run(raw, schema, DatasetRules("d", key=("Value",), suite=suite), 2)
loaded = "great_expectations" in sys.modules
results = [(r.expectation.type, r.success, r.unexpected_count) for r in report.results]
print(json.dumps({"gx": loaded, "results": results}))
"""


def _stage_in_a_new_process(tmp_path: Path, suite: str = "") -> dict[str, Any]:
    """validate.run in a new process on a staged file of 5 rows (value 3 twice, one null)."""
    raw = _raw(tmp_path, _values("1", "2", "3", "3", None))
    out = subprocess.run(
        [sys.executable, "-c", _STAGE_IN_A_NEW_PROCESS, raw.uri, suite],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_a_baseline_only_suite_never_imports_great_expectations(tmp_path: Path) -> None:
    ran = _stage_in_a_new_process(tmp_path)

    assert ran["gx"] is False  # (pandas is imported anyway: pyarrow imports it on first use)
    assert ran["results"] == [
        ["expect_table_row_count_to_be_between", True, 0],
        ["expect_column_values_to_not_be_null", True, 0],
        ["expect_column_values_to_be_unique", False, 2],
        ["expect_column_values_to_be_between", True, 0],
    ]


def test_a_suite_with_other_types_imports_gx_for_them_and_keeps_suite_order(
    tmp_path: Path,
) -> None:
    suite = tmp_path / "suite.json"
    items = [
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "value", "value_set": [1, 2]},
        },
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "value"}},
    ]
    suite.write_text(json.dumps({"name": "d", "expectations": items}))

    ran = _stage_in_a_new_process(tmp_path, str(suite))

    assert ran["gx"] is True
    assert [r[0] for r in ran["results"]][-3:] == [
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_null",
    ]
    assert ran["results"][-2:] == [
        ["expect_column_values_to_be_in_set", False, 2],  # 3 and 3 (GX)
        ["expect_column_values_to_not_be_null", False, 1],  # native
    ]


def test_the_baseline_follows_the_schema_and_the_key() -> None:
    suite = baseline_suite(SCHEMA, key=("station",))

    assert [(e.type, e.column) for e in suite] == [
        ("expect_table_row_count_to_be_between", None),
        ("expect_column_values_to_not_be_null", "ts"),
        ("expect_column_values_to_be_unique", "station"),
        ("expect_column_values_to_be_between", "ts"),
    ]
    assert dict(suite[-1].kwargs)["min_value"] == datetime(1900, 1, 1, tzinfo=UTC)
    assert {e.severity for e in suite} == {"error"}
    compound = baseline_suite(SCHEMA, key=("ts", "station"))
    assert ("column_list", ("ts", "station")) in compound[-2].kwargs
    with pytest.raises(ValueError, match="nope"):
        baseline_suite(SCHEMA, key=("nope",))


# --- validate_table -----------------------------------------------------------------------------


def test_a_clean_table_passes_the_baseline() -> None:
    report = validate_table(_table(), baseline_suite(SCHEMA, key=("ts", "station")))

    assert report.success and report.rows == 6
    assert len(report.results) == 4
    assert all(r.success and r.unexpected_count == 0 and r.sample == () for r in report.results)


def test_nulls_in_the_time_column_fail_with_their_count_and_a_plain_sample() -> None:
    times = [T0, None, T0 + timedelta(1), None, None, T0 + timedelta(2)]
    report = validate_table(_table(ts=times), baseline_suite(SCHEMA))

    not_null = [r for r in report.failures if r.expectation.column == "ts"]
    assert [r.expectation.type for r in not_null] == ["expect_column_values_to_not_be_null"]
    assert not_null[0].unexpected_count == 3
    assert not_null[0].sample == ("null",)
    assert _result(report, "expect_column_values_to_be_between").success  # nulls are not a range
    assert not report.success


def test_duplicate_key_values_fail_uniqueness_with_their_count() -> None:
    table = _table(station=[1, 2, 2, 3, 3, 3])
    report = validate_table(table, baseline_suite(SCHEMA, key=("station",)))

    unique = _result(report, "expect_column_values_to_be_unique")
    assert not unique.success and not report.success
    assert unique.unexpected_count == 5  # every row whose value occurs more than once
    assert unique.sample == ("2", "3")


def test_a_compound_key_fails_only_on_repeated_combinations() -> None:
    d1, d2, d3 = _stamp(2024, 1, 1), _stamp(2024, 1, 2), _stamp(2024, 1, 3)
    times = [d1, d1, d2, d2, d1, d3]  # neither column is unique on its own
    suite = baseline_suite(SCHEMA, ("ts", "station"))

    report = validate_table(_table(ts=times, station=[1, 2, 1, 2, 1, 1]), suite)

    compound = _result(report, "expect_compound_columns_to_be_unique")
    assert not compound.success and not report.success
    assert compound.unexpected_count == 2  # (d1, 1) at rows 0 and 4
    assert compound.sample == ("ts=2024-01-01T00:00:00+00:00, station=1",)
    assert validate_table(_table(ts=times, station=[1, 2, 1, 2, 3, 1]), suite).success


def test_a_failed_warning_is_reported_but_keeps_the_report_successful() -> None:
    warn = Expectation(
        "expect_column_values_to_be_between",
        (("column", "temp"), ("min_value", -10.0), ("max_value", 12.0)),
        severity="warn",
    )
    report = validate_table(_table(), (*baseline_suite(SCHEMA), warn))

    result = report.results[-1]
    assert result.expectation is warn
    assert not result.success and result.unexpected_count == 3
    assert result.sample == ("13.0", "14.0", "15.0")
    assert report.success and report.failures == ()


def test_times_outside_1900_to_2200_fail_the_range_check() -> None:
    times = [
        _stamp(1899, 12, 31, 23, 59, 59),
        _stamp(1900, 1, 1),  # bounds are inclusive
        _stamp(2024, 6, 1),
        _stamp(2200, 1, 1),
        _stamp(2200, 1, 1, 0, 0, 1),
        _stamp(9999, 1, 1),
    ]
    report = validate_table(_table(ts=times), baseline_suite(SCHEMA))

    between = _result(report, "expect_column_values_to_be_between")
    assert not between.success and report.failures == (between,)
    assert between.unexpected_count == 3
    assert between.sample == (
        "1899-12-31T23:59:59+00:00",
        "2200-01-01T00:00:01+00:00",
        "9999-01-01T00:00:00+00:00",
    )


@pytest.mark.parametrize(
    ("pg_type", "arrow_type", "values"),
    [
        ("timestamp", pa.timestamp("us"), [datetime(1850, 1, 1), datetime(2024, 1, 1)]),
        ("timestamp", pa.timestamp("ms"), [datetime(1850, 1, 1), datetime(2024, 1, 1)]),
        ("date", pa.date32(), [date(1850, 1, 1), date(2024, 1, 1)]),
    ],
)
def test_the_range_check_works_on_naive_timestamps_and_dates(
    pg_type: Any, arrow_type: pa.DataType, values: list[Any]
) -> None:
    schema = InferredSchema((Column("t", "t", pg_type, False),), "t")
    table = pa.table({"t": pa.array(values, arrow_type)})
    report = validate_table(table, baseline_suite(schema))

    between = _result(report, "expect_column_values_to_be_between")
    assert (between.success, between.unexpected_count) == (False, 1)
    assert between.sample[0].startswith("1850-01-01")


def test_iso_string_and_naive_bounds_compare_with_a_utc_column() -> None:
    times = [_stamp(2024, 1, 1), _stamp(2024, 1, 2, 12)]
    suite = [
        Expectation(
            "expect_column_values_to_be_between",
            (("column", "ts"), ("min_value", low), ("max_value", high)),
        )
        for low, high in [
            ("2024-01-01", "2024-01-02T00:00:00Z"),
            (datetime(2024, 1, 1), datetime(2024, 1, 3)),  # naive: UTC
            (date(2024, 1, 1), "2024-01-02T13:00:00+01:00"),
        ]
    ]
    report = validate_table(_table(n=2, ts=times), suite)

    assert [(r.success, r.unexpected_count) for r in report.results] == [
        (False, 1),
        (True, 0),
        (True, 0),
    ]


def test_nullable_big_integers_stay_exact() -> None:
    big = 2**60
    report = validate_table(
        _table(n=3, station=[big, big + 1, None]),
        [Expectation("expect_column_values_to_be_unique", (("column", "station"),))],
    )
    assert report.success  # as float64 both would be 2**60 and "duplicates"


def test_an_empty_table_fails_the_row_count() -> None:
    report = validate_table(_table(n=0), baseline_suite(SCHEMA))

    assert report.rows == 0
    assert [r.expectation.type for r in report.failures] == ["expect_table_row_count_to_be_between"]
    assert report.failures[0].sample == ("observed 0",)


def test_a_missing_column_fails_its_expectation_with_the_reason() -> None:
    missing = Expectation("expect_column_values_to_not_be_null", (("column", "nope"),))
    report = validate_table(_table(), [missing])

    (result,) = report.results
    assert not result.success
    assert result.sample[0].startswith("error: ") and "nope" in result.sample[0]


def test_an_unknown_expectation_type_raises_naming_it() -> None:
    bogus = Expectation("expect_column_values_to_be_purple", (("column", "note"),))
    with pytest.raises(ValueError, match="expect_column_values_to_be_purple"):
        validate_table(_table(), [*baseline_suite(SCHEMA), bogus])


def test_kwargs_gx_rejects_raise_naming_the_type() -> None:
    bad = Expectation("expect_column_values_to_be_between", (("colum", "temp"),))
    with pytest.raises(ValueError, match="expect_column_values_to_be_between"):
        validate_table(_table(), [bad])


def test_repeated_validations_reuse_one_context_and_keep_no_data() -> None:
    runtime = validate_gx._runtime()
    suite = baseline_suite(SCHEMA)
    with_nulls = validate_table(_table(ts=[None] * 6), suite, native=False)
    clean = validate_table(_table(), suite, native=False)
    fewer_nulls = validate_table(_table(ts=[T0, None, T0, T0, T0, T0]), suite, native=False)

    assert validate_gx._runtime() is runtime
    assert _result(with_nulls, "expect_column_values_to_not_be_null", "ts").unexpected_count == 6
    assert clean.success
    assert _result(fewer_nulls, "expect_column_values_to_not_be_null", "ts").unexpected_count == 1
    engine = runtime.datasource.get_execution_engine()
    assert engine.batch_manager.batch_data_cache == {}
    assert len(runtime.datasource.assets) == 1


@pytest.mark.parametrize("native", [True, False])
def test_concurrent_validations_do_not_mix_their_data(native: bool) -> None:
    suite = baseline_suite(SCHEMA)
    counts: dict[int, int] = {}

    def work(nulls: int) -> None:
        table = _table(n=50, ts=[None] * nulls + [T0] * (50 - nulls))
        report = validate_table(table, suite, native=native)
        counts[nulls] = _result(
            report, "expect_column_values_to_not_be_null", "ts"
        ).unexpected_count

    threads = [threading.Thread(target=work, args=(n,)) for n in (1, 2, 3, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts == {1: 1, 2: 2, 3: 3, 4: 4}


class _CountingLock:
    """A lock that counts how often it was taken."""

    def __init__(self) -> None:
        self.taken = 0
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()
        self.taken += 1

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def test_native_checks_take_no_lock_and_gx_keeps_its_process_wide_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lock = _CountingLock()
    runtime = replace(validate_gx._runtime(), lock=lock)
    monkeypatch.setattr(validate_gx, "_runtime", lambda: runtime)
    baseline = baseline_suite(SCHEMA, key=("station",))
    in_set = Expectation(
        "expect_column_values_to_be_in_set", (("column", "note"), ("value_set", ("n0",)))
    )

    assert validate_table(_table(), baseline).success
    assert lock.taken == 0
    report = validate_table(_table(), (*baseline, in_set))
    assert lock.taken == 1  # one GX run, for in_set alone
    assert [r.success for r in report.results] == [True] * 4 + [False]
    validate_table(_table(), baseline, native=False)
    assert lock.taken == 2


# --- suite files ----------------------------------------------------------------------------


def test_a_suite_file_round_trips_with_its_severities(tmp_path: Path) -> None:
    path = tmp_path / "weather.json"
    path.write_text(
        json.dumps(
            {
                "name": "weather",
                "id": None,
                "expectations": [
                    {
                        "type": "expect_column_values_to_be_in_set",
                        "kwargs": {"column": "note", "value_set": ["n0", "n1", "n2"]},
                        "meta": {"severity": "warn"},
                        "severity": "critical",
                    },
                    {
                        "type": "expect_column_values_to_not_be_null",
                        "kwargs": {"column": "temp", "mostly": 0.5},
                        "meta": {},
                    },
                    {
                        "type": "expect_column_max_to_be_between",
                        "kwargs": {"column": "ts", "max_value": "2030-01-01T00:00:00Z"},
                        "severity": "warning",
                    },
                ],
                "meta": {"great_expectations_version": "1.24.1"},
                "notes": None,
            }
        )
    )

    suite = load_suite(path)

    assert suite == (
        Expectation(
            "expect_column_values_to_be_in_set",
            (("column", "note"), ("value_set", ("n0", "n1", "n2"))),
            "warn",
        ),
        Expectation("expect_column_values_to_not_be_null", (("column", "temp"), ("mostly", 0.5))),
        Expectation(
            "expect_column_max_to_be_between",
            (("column", "ts"), ("max_value", "2030-01-01T00:00:00Z")),
            "warn",
        ),
    )
    assert len(set(suite)) == 3  # hashable
    report = validate_table(_table(), suite)
    assert [(r.success, r.unexpected_count) for r in report.results] == [
        (False, 3),
        (True, 0),
        (True, 0),
    ]
    assert report.success  # the one failure is a warning


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        json.dumps({"name": "s"}),
        json.dumps({"expectations": ["expect_column_values_to_not_be_null"]}),
        json.dumps({"expectations": [{"kwargs": {"column": "a"}}]}),
        json.dumps({"expectations": [{"type": "expect_x", "kwargs": ["a"]}]}),
        json.dumps({"expectations": [{"type": "expect_x", "meta": {"severity": "fatal"}}]}),
    ],
)
def test_a_malformed_suite_file_raises_naming_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "broken-suite.json"
    path.write_text(content)

    with pytest.raises(ValueError, match="broken-suite.json"):
        load_suite(path)


# --- the stage ------------------------------------------------------------------------------


def _raw(tmp_path: Path, rows: Sequence[tuple[str | None, str | None]]) -> Staged:
    table = pa.table(
        {
            "ts": pa.array([r[0] for r in rows], pa.string()),
            "value": pa.array([r[1] for r in rows], pa.string()),
        }
    )
    return write_batches(tmp_path / "raw.parquet", table.schema, table.to_batches(max_chunksize=3))


RAW_SCHEMA = InferredSchema(
    (Column("Time", "ts", "timestamptz", True), Column("Value", "value", "bigint", True)), "ts"
)


def test_the_stage_fails_a_file_with_null_times_naming_expectation_and_count(
    tmp_path: Path,
) -> None:
    rows = [(f"2024-01-01T00:{m:02d}:00Z", str(m)) for m in range(7)] + [(None, "9"), (None, "8")]
    report = validate.run(_raw(tmp_path, rows), RAW_SCHEMA, DatasetRules("d", key=("Value",)), 4)

    assert report.rows == 9 and not report.success
    with pytest.raises(ValidationFailed) as info:
        verdict.check(report)
    assert "expect_column_values_to_not_be_null(ts): 2 of 9 rows unexpected" in str(info.value)
    rows_out = verdict.report_rows(report)
    assert [r["column"] for r in rows_out] == ["table", "ts", "value", "ts"]
    assert rows_out[1]["unexpected"] == 2 and rows_out[1]["details"] == "null"
    assert rows_out[1]["outcome"] == "failed"


def test_the_stage_passes_a_clean_file_and_adds_the_dataset_suite(tmp_path: Path) -> None:
    suite = tmp_path / "suite.json"
    check = {
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "value", "max_value": 3},
    }
    suite.write_text(
        json.dumps({"name": "d", "expectations": [{**check, "meta": {"severity": "warn"}}]})
    )
    rows = [("2024-01-01T00:00:00Z", "1"), ("2024-01-01T01:00:00+01:00", "5")]

    report = validate.run(_raw(tmp_path, rows), RAW_SCHEMA, DatasetRules("d", suite=str(suite)), 4)

    verdict.check(report)  # does not raise: the only failure is a warning
    assert report.results[-1].sample == ("5",)
    assert not report.results[-1].success


def test_the_stage_rejects_an_unknown_key_and_an_unusable_suite(tmp_path: Path) -> None:
    raw = _raw(tmp_path, [("2024-01-01T00:00:00Z", "1")])
    with pytest.raises(SchemaConflict, match="'Station'"):
        validate.run(raw, RAW_SCHEMA, DatasetRules("d", key=("Station",)), 4)
    suite = tmp_path / "s.json"
    suite.write_text(json.dumps({"expectations": [{"type": "expect_the_unexpected"}]}))
    with pytest.raises(TerminalError, match="expect_the_unexpected"):
        validate.run(raw, RAW_SCHEMA, DatasetRules("d", suite=str(suite)), 4)


# --- the stage, chunk by chunk ------------------------------------------------------------------

Run = tuple[int, tuple[str, ...], tuple[int, ...]]  # rows, columns, suite indices of one run


@pytest.fixture
def evaluations(monkeypatch: pytest.MonkeyPatch) -> list[Run]:
    """Records every evaluation `validate.run` makes, native or GX (each still runs)."""
    runs: list[Run] = []
    evaluate = validate._Prepared.evaluate

    def recording(self: Any, table: pa.Table, indices: tuple[int, ...], first: int = 0) -> Any:
        runs.append((table.num_rows, tuple(table.column_names), indices))
        return evaluate(self, table, indices, first)

    monkeypatch.setattr(validate._Prepared, "evaluate", recording)
    return runs


def _suite_file(tmp_path: Path, *expectations: tuple[str, dict[str, Any]]) -> str:
    path = tmp_path / "suite.json"
    items = [{"type": type_, "kwargs": kwargs} for type_, kwargs in expectations]
    path.write_text(json.dumps({"name": "d", "expectations": items}))
    return str(path)


def _values(*values: str | None) -> list[tuple[str | None, str | None]]:
    """Rows of RAW_SCHEMA: distinct valid times, the given values."""
    return [(f"2024-01-01T00:{m:02d}:00Z", v) for m, v in enumerate(values)]


def test_a_map_expectation_failing_in_two_chunks_sums_counts_and_samples_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evaluations: list[Run]
) -> None:
    monkeypatch.setattr(validate, "VALIDATE_ROWS", 3)
    raw = _raw(tmp_path, _values("11", "12", "1", "2", "3", "4", "13", "12", "14"))
    suite = _suite_file(
        tmp_path, ("expect_column_values_to_be_between", {"column": "value", "max_value": 10})
    )

    report = validate.run(raw, RAW_SCHEMA, DatasetRules("d", suite=suite), 2)

    between = report.results[-1]
    assert between.expectation.type == "expect_column_values_to_be_between"
    assert not between.success and not report.success
    assert between.unexpected_count == 5  # 2 in the first chunk, 3 in the last
    assert between.sample == ("11", "12", "13", "14")  # from both chunks, 12 once
    chunked = [rows for rows, columns, indices in evaluations if len(indices) > 1]
    assert chunked == [3, 3, 3]  # three chunks of 3 rows, built from batches of 2


def test_samples_over_chunks_keep_the_first_distinct_values_up_to_the_sample_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validate, "VALIDATE_ROWS", 4)
    raw = _raw(tmp_path, _values("21", "22", "23", "24", "25", "26", "27", "28"))
    suite = _suite_file(
        tmp_path, ("expect_column_values_to_be_between", {"column": "value", "max_value": 10})
    )

    result = validate.run(raw, RAW_SCHEMA, DatasetRules("d", suite=suite), 4).results[-1]

    assert result.unexpected_count == 8
    assert result.sample == ("21", "22", "23", "24", "25")  # 4 of chunk 1, then chunk 2's first


def test_a_duplicate_split_across_chunks_fails_uniqueness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evaluations: list[Run]
) -> None:
    monkeypatch.setattr(validate, "VALIDATE_ROWS", 3)
    raw = _raw(tmp_path, _values("1", "7", "2", "3", "4", "5", "6", "7", "8"))  # rows 1 and 7

    report = validate.run(raw, RAW_SCHEMA, DatasetRules("d", key=("Value",)), 2)

    unique = _result(report, "expect_column_values_to_be_unique")
    assert not unique.success and not report.success
    assert (unique.unexpected_count, unique.sample) == (2, ("7",))
    assert (9, ("value",), (2,)) in evaluations  # once, on the whole file's key column only


def test_a_compound_key_duplicate_split_across_chunks_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validate, "VALIDATE_ROWS", 2)
    rows = [(f"2024-01-01T00:0{i % 3}:00Z", str(i % 2)) for i in range(6)]  # 6 distinct pairs
    rows[5] = rows[0]  # (00:00, "0") in the first chunk and the last; neither column is unique

    report = validate.run(
        _raw(tmp_path, rows), RAW_SCHEMA, DatasetRules("d", key=("ts", "Value")), 2
    )

    compound = _result(report, "expect_compound_columns_to_be_unique")
    assert not compound.success and compound.unexpected_count == 2
    assert compound.sample == ("ts=2024-01-01T00:00:00+00:00, value=0",)


def test_the_row_count_sees_the_whole_file_on_no_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evaluations: list[Run]
) -> None:
    monkeypatch.setattr(validate, "VALIDATE_ROWS", 3)
    suite = _suite_file(
        tmp_path,
        ("expect_table_row_count_to_equal", {"value": 8}),
        ("expect_table_row_count_to_be_between", {"max_value": 7}),
    )
    raw = _raw(tmp_path, _values(*"12345678"))

    report = validate.run(raw, RAW_SCHEMA, DatasetRules("d", suite=suite), 2)

    equal, at_most_7 = report.results[-2:]
    assert report.rows == 8
    assert equal.success
    assert not at_most_7.success and at_most_7.sample == ("observed 8",)
    assert (8, (), (0, 3, 4)) in evaluations  # baseline's row count and both of these, no column


def test_results_come_back_in_suite_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evaluations: list[Run]
) -> None:
    monkeypatch.setattr(validate, "VALIDATE_ROWS", 2)
    path = _suite_file(
        tmp_path,
        ("expect_column_mean_to_be_between", {"column": "value", "min_value": 0}),
        ("expect_column_values_to_be_in_set", {"column": "value", "value_set": [1, 2, 3]}),
        ("expect_compound_columns_to_be_unique", {"column_list": ["value", "ts"]}),
        ("expect_column_values_to_not_be_null", {"column": "value"}),
    )
    raw = _raw(tmp_path, _values("1", "2", "3", "4", "5"))

    report = validate.run(raw, RAW_SCHEMA, DatasetRules("d", key=("Value",), suite=path), 2)

    expected = (*baseline_suite(RAW_SCHEMA, ("value",)), *load_suite(Path(path)))
    assert tuple(r.expectation for r in report.results) == expected
    assert [r.success for r in report.results] == [True] * 5 + [False, True, True]
    # map checks chunk by chunk; the row count, the key (with the mean: same column), compound
    assert {indices for _, _, indices in evaluations} == {(1, 3, 5, 7), (0,), (2, 4), (6,)}


@pytest.mark.parametrize("chunk_rows", [1, 2, 5, 500_000])
def test_the_report_is_the_same_whatever_the_chunk_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_rows: int
) -> None:
    monkeypatch.setattr(validate, "VALIDATE_ROWS", chunk_rows)
    rows = _values("1", "2", None, "3", "3", "90", "91", None, "5") + [(None, "6")]
    path = _suite_file(
        tmp_path,
        ("expect_column_values_to_be_between", {"column": "value", "max_value": 50}),
        ("expect_column_values_to_not_be_null", {"column": "value", "mostly": 0.7}),
        ("expect_column_max_to_be_between", {"column": "value", "max_value": 50}),
    )
    raw = _raw(tmp_path, rows)
    rules = DatasetRules("d", key=("Value",), suite=path)

    report = validate.run(raw, RAW_SCHEMA, rules, 3)

    assert report.rows == 10
    assert [(r.success, r.unexpected_count, r.sample) for r in report.results] == [
        (True, 0, ()),  # row count
        (False, 1, ("null",)),  # ts not null
        (False, 2, ("3",)),  # value unique (nulls are not duplicates)
        (True, 0, ()),  # ts between 1900 and 2200
        (False, 2, ("90", "91")),
        (True, 2, ("null",)),  # 2 of 10 null: mostly 0.7 holds over the file
        (False, 0, ("observed 91",)),
    ]


def test_mostly_is_judged_on_the_whole_file_not_per_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validate, "VALIDATE_ROWS", 3)
    path = _suite_file(
        tmp_path,
        ("expect_column_values_to_be_between", {"column": "value", "max_value": 9, "mostly": 0.7}),
        ("expect_column_values_to_be_between", {"column": "value", "max_value": 9, "mostly": 0.9}),
    )
    raw = _raw(tmp_path, _values("10", "11", "1", "2", "3", "4", "5", "6", "7"))  # 2 of 9

    low, high = validate.run(raw, RAW_SCHEMA, DatasetRules("d", suite=path), 3).results[-2:]

    assert low.success and low.unexpected_count == 2  # the first chunk alone is 2 of 3
    assert not high.success and high.unexpected_count == 2  # 7/9 < 0.9


def test_an_expectation_gx_cannot_evaluate_in_chunks_fails_once_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validate, "VALIDATE_ROWS", 2)
    path = _suite_file(tmp_path, ("expect_column_values_to_not_be_null", {"column": "nope"}))
    raw = _raw(tmp_path, _values("1", "2", "3", "4", "5"))

    result = validate.run(raw, RAW_SCHEMA, DatasetRules("d", suite=path), 2).results[-1]

    assert not result.success and result.unexpected_count == 0
    assert len(result.sample) == 1
    assert result.sample[0].startswith("error: ") and "nope" in result.sample[0]


def test_an_empty_file_fails_only_the_row_count(tmp_path: Path) -> None:
    report = validate.run(_raw(tmp_path, []), RAW_SCHEMA, DatasetRules("d", key=("Value",)), 4)

    assert report.rows == 0
    assert [r.expectation.type for r in report.failures] == ["expect_table_row_count_to_be_between"]
    assert len(report.results) == 4


# --- planning and chunking ----------------------------------------------------------------------


def _plan(*expectations: Expectation) -> validate_chunks.Plan:
    rt = validate_gx._runtime()
    classes = [rt.expectation_class(e.type) for e in expectations]
    scopes = [validate_chunks.scope(cls, rt.map_bases, rt.cross_row) for cls in classes]
    return validate_chunks.plan(expectations, scopes)


def test_the_plan_splits_by_gx_class_and_keeps_cross_row_checks_whole() -> None:
    def exp(type_: str, **kwargs: Any) -> Expectation:
        return Expectation(type_, tuple(kwargs.items()))

    plan = _plan(
        exp("expect_table_row_count_to_be_between", min_value=1),
        exp("expect_column_values_to_not_be_null", column="a"),
        exp("expect_column_values_to_be_unique", column="a"),
        exp("expect_column_pair_values_to_be_equal", column_A="a", column_B="b"),
        exp("expect_compound_columns_to_be_unique", column_list=("b", "a")),
        exp("expect_select_column_values_to_be_unique_within_record", column_list=("a", "b")),
        exp("expect_column_values_to_be_increasing", column="t"),
        exp("expect_column_mean_to_be_between", column="b", min_value=0),
        exp("expect_table_columns_to_match_set", column_set=("a", "b")),
        exp("expect_table_row_count_to_equal", value=3, row_condition="a > 1"),
        exp("expect_column_max_to_be_between", column="a", max_value=1),
    )

    assert plan.chunked == (1, 3, 5, 8)
    assert {g.columns: g.indices for g in plan.whole} == {
        (): (0,),
        ("a",): (2, 10),
        ("a", "b"): (4,),
        ("t",): (6,),
        ("b",): (7,),
        None: (9,),  # a row_condition may read any column
    }
    assert plan.kept(["a", "b", "c", "t"]) == ["a", "b", "c", "t"]
    assert plan.kept(["a", "b", "c", "t"], start=6) == []


def test_chunks_have_exactly_the_chunk_size_and_an_empty_stream_gives_one_empty_chunk() -> None:
    schema = pa.schema([("x", pa.int64())])
    batches = [
        pa.record_batch([pa.array(range(n), pa.int64())], schema=schema) for n in (2, 2, 2, 2, 1)
    ]

    sizes = [t.num_rows for t in validate_chunks.iter_chunks(batches, schema, 4)]
    (empty,) = validate_chunks.iter_chunks([], schema, 4)

    assert sizes == [4, 4, 1]
    assert [t.num_rows for t in validate_chunks.iter_chunks(batches, schema, 3)] == [3, 3, 3]
    assert (empty.num_rows, empty.schema) == (0, schema)


# --- row-level mode (on_error: rows) --------------------------------------------------------------


def test_row_level_mode_sets_aside_exactly_the_failing_rows_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validate, "VALIDATE_ROWS", 3)
    rows = _values("1", "2", "30", "4", "50", "6", "7", "8", "9")
    rows[1] = (None, "2")  # no time (baseline) in the first chunk
    rows[7] = (None, "80")  # no time and too big in the last
    suite = _suite_file(
        tmp_path, ("expect_column_values_to_be_between", {"column": "value", "max_value": 10})
    )
    out = tmp_path / "q" / "f.rows.parquet"

    report = validate.run(
        _raw(tmp_path, rows),
        RAW_SCHEMA,
        DatasetRules("d", suite=suite, on_error="rows"),
        2,
        rows_path=out,
    )

    verdict.check(report)  # the rows went aside: the file passes
    assert report.success and report.mode == "rows"
    assert report.rejected is not None and (report.rejected.rows, report.rows_kept) == (4, 5)
    aside = pq.read_table(out).to_pylist()
    assert [(r["_row"], r["value"]) for r in aside] == [(2, "2"), (3, "30"), (5, "50"), (8, "80")]
    assert aside[3]["_failed"] == (
        "expect_column_values_to_not_be_null(ts); expect_column_values_to_be_between(value)"
    )
    flagged = [(r.expectation.type, r.unexpected_count) for r in report.results if r.rows_rejected]
    assert flagged == [
        ("expect_column_values_to_not_be_null", 2),
        ("expect_column_values_to_be_between", 3),
    ]


@pytest.mark.parametrize(
    ("check", "kwargs"),
    [
        ("expect_column_values_to_be_between", {"column": "value", "max_value": 10, "mostly": 0.9}),
        ("expect_column_max_to_be_between", {"column": "value", "max_value": 10}),
    ],
)
def test_row_level_mode_fails_the_whole_file_past_mostly_or_on_an_aggregate(
    tmp_path: Path, check: str, kwargs: dict[str, Any]
) -> None:
    suite = _suite_file(tmp_path, (check, kwargs))
    out = tmp_path / "f.rows.parquet"
    rules = DatasetRules("d", suite=suite, on_error="rows")

    report = validate.run(
        _raw(tmp_path, _values("1", "20", "30", "4")), RAW_SCHEMA, rules, 2, rows_path=out
    )

    assert not report.success and report.rejected is None and not out.exists()
    with pytest.raises(ValidationFailed, match=check):
        verdict.check(report)


def test_row_level_mode_within_mostly_sets_the_rows_aside_and_loads_the_rest(
    tmp_path: Path,
) -> None:
    kwargs = {"column": "value", "max_value": 10, "mostly": 0.5}
    suite = _suite_file(tmp_path, ("expect_column_values_to_be_between", kwargs))
    out = tmp_path / "f.rows.parquet"
    rules = DatasetRules("d", suite=suite, on_error="rows")

    report = validate.run(
        _raw(tmp_path, _values("1", "20", "3", "4")), RAW_SCHEMA, rules, 2, rows_path=out
    )

    assert report.success and report.rejected is not None and report.rejected.rows == 1
    assert pq.read_table(out).column("_row").to_pylist() == [2]


def test_row_level_mode_fails_a_file_whose_every_row_fails(tmp_path: Path) -> None:
    suite = _suite_file(
        tmp_path, ("expect_column_values_to_be_between", {"column": "value", "max_value": 0})
    )
    rules = DatasetRules("d", suite=suite, on_error="rows")
    out = tmp_path / "f.rows.parquet"

    report = validate.run(_raw(tmp_path, _values("1", "2")), RAW_SCHEMA, rules, 2, rows_path=out)

    assert not report.success and not out.exists()


def test_enrich_drops_the_rejected_rows_and_keeps_each_rows_place(tmp_path: Path) -> None:
    from sluice import enrich
    from sluice.contracts import FileRef, Rejected

    raw = _raw(tmp_path, _values(*"123456789"))
    aside = tmp_path / "f.rows.parquet"
    pq.write_table(pa.table({"_row": pa.array([2, 9, 5], pa.int64())}), aside)
    ref = FileRef("f.csv", "f" * 64, "d", 1, "h")

    staged = enrich.run(ref, raw, Rejected(3, str(aside)))

    table = pa.Table.from_batches(list(enrich.batches(staged, 4)))
    assert staged.rows == 6 == table.num_rows
    assert table.column("_row").to_pylist() == [1, 3, 4, 6, 7, 8]
    assert table.column("value").to_pylist() == list("134678")
    aside.unlink()
    with pytest.raises(StagingLost):
        enrich.run(ref, raw, Rejected(3, str(aside)))


def test_drift_findings_join_the_report_and_an_error_fails_it(tmp_path: Path) -> None:
    from sluice import profile
    from sluice.datasets import DriftRules

    old = _raw(tmp_path, _values(*"1212121212"))
    history = [profile.run(old, RAW_SCHEMA, DatasetRules("d"), 4)]
    new = _raw(tmp_path, _values(*"8989898989"))
    rules = DatasetRules("d", drift=DriftRules(errors=("mean_shift",)))

    report = validate.run(
        new, RAW_SCHEMA, rules, 4, profile=profile.run(new, RAW_SCHEMA, rules, 4), history=history
    )

    assert [(d.check, d.column, d.severity) for d in report.drift] == [
        ("mean_shift", "value", "error"),
        ("time_order", "ts", "warn"),
    ]
    assert report.history == 1 and not report.success
    with pytest.raises(ValidationFailed, match=r"drift mean_shift\(value\)"):
        verdict.check(report)


# --- rows without a valid time (on_missing_time) ---------------------------------------------


def test_a_null_time_fails_the_file_by_default_naming_the_rule_that_sets_it_aside(
    tmp_path: Path,
) -> None:
    rows = _values("1", "2", "3")
    rows[1] = (None, "2")
    report = validate.run(_raw(tmp_path, rows), RAW_SCHEMA, DatasetRules("d"), 2, rows_path=None)

    with pytest.raises(ValidationFailed) as info:
        verdict.check(report, "ts")
    assert "expect_column_values_to_not_be_null(ts): 1 of 3 rows unexpected" in str(info.value)
    assert "`on_missing_time: rows`" in info.value.hint


def test_on_missing_time_rows_sets_rows_without_a_time_aside_and_loads_the_rest(
    tmp_path: Path,
) -> None:
    rows = _values("1", "2", "3", "4")
    rows[1] = (None, "2")
    rows[2] = ("1850-01-01T00:00:00Z", "3")  # outside the baseline's 1900..2200
    out = tmp_path / "q" / "f.rows.parquet"

    report = validate.run(
        _raw(tmp_path, rows),
        RAW_SCHEMA,
        DatasetRules("d", on_missing_time="rows"),
        2,
        rows_path=out,
    )

    verdict.check(report, "ts")
    assert report.mode == "file"  # every other failed expectation still fails the file
    assert report.rejected is not None and report.rows_kept == 2
    assert pq.read_table(out).column("_row").to_pylist() == [2, 3]


def test_on_missing_time_rows_still_fails_the_file_on_any_other_failure(tmp_path: Path) -> None:
    rows = _values("1", "2", "30")
    rows[0] = (None, "1")
    suite = _suite_file(
        tmp_path, ("expect_column_values_to_be_between", {"column": "value", "max_value": 10})
    )
    out = tmp_path / "f.rows.parquet"
    rules = DatasetRules("d", suite=suite, on_missing_time="rows")

    report = validate.run(_raw(tmp_path, rows), RAW_SCHEMA, rules, 2, rows_path=out)

    assert not report.success and report.rejected is None and not out.exists()
    with pytest.raises(ValidationFailed, match="expect_column_values_to_be_between"):
        verdict.check(report, "ts")


def test_on_missing_time_file_keeps_the_time_checks_whole_under_on_error_rows() -> None:
    from sluice.validate.reject import collected
    from sluice.validate.suites import baseline_suite

    suite = baseline_suite(RAW_SCHEMA)
    checks = {i: (e.type, e.column) for i, e in enumerate(suite) if e.severity == "error"}
    timed = {i for i, (kind, column) in checks.items() if column == "ts" and "values" in kind}
    both = DatasetRules("d", on_error="rows", on_missing_time="file")

    assert timed and collected(suite, "ts", both) == frozenset(checks) - timed
    assert collected(suite, "ts", DatasetRules("d", on_missing_time="rows")) == timed
    assert collected(suite, "ts", DatasetRules("d")) == frozenset()
