"""Drift checks: a file's profile against its dataset's loaded history (pure, no services)."""

from __future__ import annotations

import math

import pytest

from sluice.contracts import ColumnProfile, Profile, TimeProfile
from sluice.datasets import DriftRules
from sluice.validate import drift


def _num(mean: float, sd: float, *, count: int = 100, nulls: int = 0) -> ColumnProfile:
    return ColumnProfile("x", "double precision", count, nulls, 50, mean=mean, stddev=sd)


def _cat(*values: str, exact: bool = True) -> ColumnProfile:
    top = tuple((v, 10) for v in values)
    return ColumnProfile(
        "site", "text", 10 * len(values), 0, len(values), distinct_exact=exact, top=top
    )


def _file(*columns: ColumnProfile, start: str = "", end: str = "") -> Profile:
    time = TimeProfile("ts", start, end, True, 60.0, 0) if start else None
    return Profile(100, columns, time)


def test_no_history_means_no_findings() -> None:
    assert drift.compare(_file(_num(50, 1)), [], DriftRules()) == ()


def test_a_mean_shift_is_measured_in_the_pooled_history_stddevs() -> None:
    history = [_file(_num(10, 2)), _file(_num(12, 2))]
    mean, sd = drift.pooled([p.columns[0] for p in history])  # type: ignore[misc]
    assert mean == 11 and sd == pytest.approx(math.sqrt((99 * 4 * 2 + 100 * 1 * 2) / 199))

    [finding] = drift.compare(_file(_num(20, 2)), history, DriftRules())
    assert (finding.check, finding.column, finding.severity) == ("mean_shift", "x", "warn")
    assert finding.score == pytest.approx(9 / sd)
    assert drift.compare(_file(_num(13, 2)), history, DriftRules()) == ()  # under 3 sd


def test_a_null_ratio_jump_beyond_the_limit_is_flagged_and_a_small_one_is_not() -> None:
    history = [_file(_num(10, 2, nulls=2)), _file(_num(10, 2, nulls=4))]  # 3% nulls

    [finding] = drift.compare(_file(_num(10, 2, nulls=20)), history, DriftRules())
    assert finding.check == "null_ratio" and finding.score == pytest.approx(0.17)
    assert drift.compare(_file(_num(10, 2, nulls=10)), history, DriftRules()) == ()


def test_new_categories_are_named_only_where_history_listed_every_value() -> None:
    history = [_file(_cat("A", "B")), _file(_cat("B", "C"))]

    [finding] = drift.compare(_file(_cat("A", "D", "E")), history, DriftRules())
    assert finding.check == "new_categories" and "'D', 'E'" in finding.message
    assert finding.score == 2
    incomplete = [_file(_cat("A", "B", exact=False))]
    assert drift.compare(_file(_cat("Z")), incomplete, DriftRules()) == ()


def test_a_file_starting_before_the_latest_loaded_end_is_out_of_order() -> None:
    history = [_file(start="2024-01-01T00:00:00+00:00", end="2024-01-02T00:00:00+00:00")]

    [finding] = drift.compare(
        _file(start="2024-01-01T12:00:00+00:00", end="2024-01-03T00:00:00+00:00"),
        history,
        DriftRules(),
    )
    assert finding.check == "time_order" and finding.score == 12 * 3600
    later = _file(start="2024-01-02T00:00:00+00:00", end="2024-01-03T00:00:00+00:00")
    assert drift.compare(later, history, DriftRules()) == ()


def test_rules_turn_checks_into_errors_or_off() -> None:
    history = [_file(_num(10, 1, nulls=0))]
    shifted = _file(_num(30, 1, nulls=50))

    found = drift.compare(shifted, history, DriftRules(errors=("mean_shift",)))
    assert {(f.check, f.severity) for f in found} == {
        ("mean_shift", "error"),
        ("null_ratio", "warn"),
    }
    assert drift.compare(shifted, history, DriftRules(mean_shift=None, null_ratio=None)) == ()
