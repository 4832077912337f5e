"""How a validation report reads to people: the failure message, and the Prefect artifact's
table and description (`tasks/validate.py` publishes them)."""

from __future__ import annotations

from typing import Any

from sluice.contracts import Expectation, ExpectationResult, ValidationReport
from sluice.errors import ValidationFailed
from sluice.validate.reject import TIME_CHECKS, name


def check(report: ValidationReport, time_column: str = "") -> None:
    """Raise ValidationFailed naming every failed `error` expectation (with counts and sample
    values) and every drift check the dataset made an error; warnings never raise. When rows
    without a valid time (null, or out of range, in `time_column`) fail the file, the hint
    names the rule that sets them aside instead."""
    if report.success:
        return
    problems = [describe(r, report.rows) for r in report.failures]
    problems += [f"drift {d.check}({d.column}): {d.message}" for d in report.drift_errors]
    counted = f"{len(report.failures)} of {len(report.results)} expectations failed"
    if report.drift_errors:
        counted += f", {len(report.drift_errors)} drift error(s)"
    hint = "fix the file (or the dataset's suite or drift rules), then replay it"
    if any(_on_time(r.expectation, time_column) and r.unexpected_count for r in report.failures):
        hint += (
            "; to load the other rows and set those without a valid time aside, set "
            "`on_missing_time: rows` for the dataset in datasets.yaml"
        )
    raise ValidationFailed(f"{counted}: {'; '.join(problems)}", hint=hint)


def _on_time(exp: Expectation, time_column: str) -> bool:
    return bool(time_column) and exp.column == time_column and exp.type in TIME_CHECKS


def describe(result: ExpectationResult, rows: int) -> str:
    what = name(result.expectation)
    if result.unexpected_count:
        what += f": {result.unexpected_count} of {rows} rows unexpected"
    if result.sample:
        what += f" [{', '.join(result.sample)}]"
    return what


def _target(exp: Expectation) -> str:
    kwargs = dict(exp.kwargs)
    columns = kwargs.get("column_list")
    if exp.column is not None:
        return exp.column
    if isinstance(columns, tuple | list):
        return ", ".join(str(c) for c in columns)
    return "table"


def _outcome(result: ExpectationResult) -> str:
    if result.rows_rejected:
        return "rows quarantined"
    if result.success:
        return "passed"
    return "failed" if result.expectation.severity == "error" else "warning"


def report_rows(report: ValidationReport) -> list[dict[str, Any]]:
    """One row per expectation, then one per drift finding: the validation table artifact.

    Columns: check, column, severity, outcome (passed | failed | warning | rows quarantined),
    unexpected (rows), details (sample unexpected values, or what drifted).
    """
    rows = [
        {
            "check": r.expectation.type,
            "column": _target(r.expectation),
            "severity": r.expectation.severity,
            "outcome": _outcome(r),
            "unexpected": r.unexpected_count,
            "details": ", ".join(r.sample),
        }
        for r in report.results
    ]
    rows += [
        {
            "check": f"drift: {d.check}",
            "column": d.column,
            "severity": d.severity,
            "outcome": "failed" if d.severity == "error" else "warning",
            "unexpected": 0,
            "details": d.message,
        }
        for d in report.drift
    ]
    return rows


def summary(report: ValidationReport, path: str) -> str:
    """The artifact's description: verdict, mode, rows kept and set aside, drift compared."""
    verdict = "passed" if report.success else "FAILED"
    warnings = sum(not r.success and r.expectation.severity == "warn" for r in report.results)
    lines = [
        f"Validation of {path}: **{verdict}**; mode `{report.mode}` (on_error); "
        f"{report.rows:,} rows, {len(report.results)} expectations, "
        f"{len(report.failures)} failed, {warnings} warnings",
    ]
    if report.rejected is not None:
        lines.append(
            f"{report.rejected.rows:,} rows quarantined to `{report.rejected.path}`; "
            f"{report.rows_kept:,} rows load"
        )
    lines.append(
        f"drift: {len(report.drift)} finding(s) against {report.history} loaded file(s)"
        if report.history
        else "drift: no loaded file of this dataset to compare with yet"
    )
    return "\n\n".join(lines)
