"""Drift: how a file's profile differs from the profiles of its dataset's recent loaded files.

Pure comparison, no I/O (the history comes from `sluice.profiles`). Four checks, each a
warning unless the dataset's `drift.errors` names it:

- null_ratio: a column's share of nulls exceeds the history's (all its rows pooled) by more
  than `null_ratio` (0.1: ten percentage points).
- mean_shift: a number column's mean lies more than `mean_shift` standard deviations from the
  history's mean, both of the history's rows pooled (so a shift is measured against the spread
  of the values, not of the means).
- new_categories: a text or boolean column has values no history file had; judged only where
  every history file listed all its values (at most profile.TOP_VALUES of them).
- time_order: the file's time span starts before the latest end the history loaded.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from sluice.contracts import ColumnProfile, DriftCheck, DriftFinding, Profile
from sluice.datasets import DriftRules

SHOWN = 5  # new category values named in a finding


def compare(
    profile: Profile, history: Sequence[Profile], rules: DriftRules
) -> tuple[DriftFinding, ...]:
    """The findings, column by column in the file's order, then the time order."""
    if not history:
        return ()
    findings: list[DriftFinding] = []
    for col in profile.columns:
        past = [c for p in history if (c := p.column(col.name)) is not None and c.count]
        if not past or not col.count:
            continue
        findings += _column(col, past, rules)
    if rules.time_order:
        findings += _time_order(profile, history, rules)
    return tuple(findings)


def _column(col: ColumnProfile, past: list[ColumnProfile], rules: DriftRules) -> list[DriftFinding]:
    found = []
    if rules.null_ratio is not None:
        found += _null_ratio(col, past, rules.null_ratio, rules)
    if rules.mean_shift is not None and col.mean is not None:
        found += _mean_shift(col, past, rules.mean_shift, rules)
    if rules.new_categories and col.top:
        found += _new_categories(col, past, rules)
    return found


def _finding(
    check: DriftCheck, column: str, rules: DriftRules, message: str, score: float
) -> DriftFinding:
    return DriftFinding(check, column, rules.severity(check), message, score)


def _null_ratio(
    col: ColumnProfile, past: list[ColumnProfile], limit: float, rules: DriftRules
) -> list[DriftFinding]:
    before = sum(c.nulls for c in past) / sum(c.count for c in past)
    jump = col.null_ratio - before
    if jump <= limit:
        return []
    message = (
        f"null ratio {col.null_ratio:.1%} against {before:.1%} in the last {len(past)} "
        f"file(s): +{jump:.1%} (limit {limit:.1%})"
    )
    return [_finding("null_ratio", col.name, rules, message, jump)]


def pooled(past: Sequence[ColumnProfile]) -> tuple[float, float] | None:
    """Mean and standard deviation of all the history's values, from each file's n/mean/sd."""
    parts = [(c.count - c.nulls, c.mean, c.stddev or 0.0) for c in past if c.mean is not None]
    n = sum(k for k, _, _ in parts)
    if n < 2:
        return None
    mean = sum(k * m for k, m, _ in parts) / n
    squares = sum((k - 1) * s * s + k * (m - mean) ** 2 for k, m, s in parts)
    return mean, math.sqrt(squares / (n - 1))


def _mean_shift(
    col: ColumnProfile, past: list[ColumnProfile], limit: float, rules: DriftRules
) -> list[DriftFinding]:
    baseline = pooled(past)
    if baseline is None or col.mean is None:
        return []
    mean, sd = baseline
    distance = abs(col.mean - mean)
    if distance == 0:
        return []
    shift = distance / sd if sd > 0 else math.inf
    if shift <= limit:
        return []
    message = (
        f"mean {col.mean:.6g} against {mean:.6g} (sd {sd:.6g}) in the last {len(past)} "
        f"file(s): {shift:.1f} sd (limit {limit:g})"
    )
    return [_finding("mean_shift", col.name, rules, message, shift)]


def _new_categories(
    col: ColumnProfile, past: list[ColumnProfile], rules: DriftRules
) -> list[DriftFinding]:
    if not all(c.categories_complete for c in past):
        return []  # a history column with too many values to list: no set to compare with
    known = {value for c in past for value, _ in c.top}
    new = [value for value, _ in col.top if value not in known]
    if not new:
        return []
    more = "" if col.categories_complete else " (at least; the column has more values)"
    shown = ", ".join(repr(v) for v in new[:SHOWN]) + (", ..." if len(new) > SHOWN else "")
    rows = sum(n for value, n in col.top if value in set(new))
    message = f"{len(new)} new value(s){more} in {rows} rows: {shown}"
    return [_finding("new_categories", col.name, rules, message, float(len(new)))]


def _time_order(
    profile: Profile, history: Sequence[Profile], rules: DriftRules
) -> list[DriftFinding]:
    time = profile.time
    ends = [
        instant(p.time.end)
        for p in history
        if p.time is not None and p.time.column == (time.column if time else None) and p.time.end
    ]
    if time is None or time.start is None or not ends:
        return []
    start, latest = instant(time.start), max(ends)
    if start >= latest:
        return []
    behind = (latest - start).total_seconds()
    message = (
        f"the file starts at {time.start}, {_duration(behind)} before the latest time loaded "
        f"({latest.isoformat()})"
    )
    return [_finding("time_order", time.column, rules, message, behind)]


def instant(text: str) -> dt.datetime:
    """An ISO date or timestamp as an aware datetime (naive and dates read as UTC)."""
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
