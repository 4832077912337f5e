"""The profile store: one jsonb profile per file in `sluice.profiles` (with the file's validation
summary), a dataset's history, and the rows of the profile's Prefect table artifact.

Every profiled file is stored (a quarantined file's profile helps explain why); the history the
drift checks compare with is the profiles of the dataset's files that the ledger
(`sluice.files`) says were loaded, newest first, so a bad file never becomes the baseline.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from sluice.catalog import ensure_profiles
from sluice.contracts import (
    Bin,
    ColumnProfile,
    ExpectationResult,
    FileRef,
    Profile,
    TimeProfile,
    ValidationReport,
)
from sluice.validate.reject import name

FORMAT = 1  # version of the stored JSON
Conn = psycopg.Connection[tuple[object, ...]]


def save(conn: Conn, ref: FileRef, profile: Profile) -> None:
    """Store (or replace) the file's profile."""
    ensure_profiles(conn)
    conn.execute(
        "INSERT INTO sluice.profiles (file_id, dataset, path, rows, profile) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (file_id, dataset) DO UPDATE SET "
        "path = EXCLUDED.path, rows = EXCLUDED.rows, profile = EXCLUDED.profile, "
        "profiled_at = now()",
        (ref.file_id, ref.dataset, ref.path, profile.rows, Jsonb(to_json(profile))),
    )


def save_validation(conn: Conn, ref: FileRef, report: ValidationReport) -> None:
    """Record the validation's verdict, warnings, drift and rejected rows with the profile."""
    ensure_profiles(conn)
    summary = {
        "success": report.success,
        "mode": report.mode,
        "rows": report.rows,
        "rejected_rows": report.rejected.rows if report.rejected else 0,
        "rejected_path": report.rejected.path if report.rejected else None,
        "failed": [_result(r) for r in report.results if r.fails_file],
        "warnings": [
            _result(r) for r in report.results if not r.success and r.expectation.severity == "warn"
        ],
        "drift": [asdict(d) for d in report.drift],
        "history": report.history,
    }
    conn.execute(
        "UPDATE sluice.profiles SET validation = %s WHERE file_id = %s AND dataset = %s",
        (Jsonb(summary), ref.file_id, ref.dataset),
    )


def _result(result: ExpectationResult) -> dict[str, object]:
    return {
        "expectation": name(result.expectation),
        "unexpected": result.unexpected_count,
        "sample": list(result.sample),
    }


def history(conn: Conn, dataset: str, limit: int, *, exclude: str = "") -> list[Profile]:
    """Profiles of the dataset's last `limit` loaded files (not `exclude`), newest first.

    Every file of a dataset compares itself with nearly the same history, so parsed profiles
    are kept in this process (`_PARSED`), keyed by the stored row's version (database, file,
    dataset, profiled_at): one query names the history, a second fetches only new profiles."""
    if limit <= 0:
        return []
    ensure_profiles(conn)
    where = (conn.info.host, str(conn.info.port), conn.info.dbname, dataset)
    names = conn.execute(
        "SELECT p.file_id, p.profiled_at FROM sluice.profiles p JOIN sluice.files f "
        "USING (file_id) WHERE p.dataset = %s AND f.dataset = %s AND p.file_id <> %s "
        "ORDER BY f.loaded_at DESC LIMIT %s",
        (dataset, dataset, exclude, limit),
    ).fetchall()
    keys = [(*where, str(file_id), str(at)) for file_id, at in names]
    if missing := [k for k in keys if k not in _PARSED]:
        _fetch(conn, dataset, missing)
    return [profile for k in keys if (profile := _PARSED.get(k)) is not None]


_PARSED: dict[tuple[str, ...], Profile] = {}  # history's parsed profiles, oldest first
_PARSED_MAX = 512
_PARSED_LOCK = threading.Lock()


def _fetch(conn: Conn, dataset: str, keys: Sequence[tuple[str, ...]]) -> None:
    """Parse the stored profiles of `keys` into `_PARSED` (a profile replaced meanwhile gets a
    new profiled_at, so a key never names two versions)."""
    wanted = {k[-2]: k for k in keys}
    rows = conn.execute(
        "SELECT file_id, profiled_at, profile FROM sluice.profiles "
        "WHERE dataset = %s AND file_id = ANY(%s)",
        (dataset, list(wanted)),
    ).fetchall()
    parsed = {
        key: from_json(doc)
        for file_id, at, doc in rows
        if (key := wanted.get(str(file_id))) is not None
        and key[-1] == str(at)
        and isinstance(doc, dict)
    }
    with _PARSED_LOCK:
        _PARSED.update(parsed)
        while len(_PARSED) > _PARSED_MAX:
            del _PARSED[next(iter(_PARSED))]


def stored(conn: Conn, file_id: str, dataset: str) -> Profile | None:
    """The stored profile of one file of a dataset."""
    ensure_profiles(conn)
    row = conn.execute(
        "SELECT profile FROM sluice.profiles WHERE file_id = %s AND dataset = %s",
        (file_id, dataset),
    ).fetchone()
    return from_json(row[0]) if row and isinstance(row[0], dict) else None


def to_json(profile: Profile) -> dict[str, Any]:
    """The profile as JSON (the typed copy's staging path is not part of it)."""
    doc = asdict(profile)
    doc.pop("typed", None)
    for col, source in zip(doc["columns"], profile.columns, strict=True):
        col["null_ratio"] = source.null_ratio
    return {"format": FORMAT, **doc}


def from_json(doc: dict[str, Any]) -> Profile:
    columns = tuple(_column(c) for c in doc.get("columns", ()))
    time = doc.get("time")
    return Profile(
        rows=int(doc["rows"]),
        columns=columns,
        time=_time(time) if isinstance(time, dict) else None,
    )


def _column(doc: dict[str, Any]) -> ColumnProfile:
    fields = {k: v for k, v in doc.items() if k in ColumnProfile.__dataclass_fields__}
    fields["top"] = tuple((str(v), int(n)) for v, n in doc.get("top", ()))
    fields["histogram"] = tuple(Bin(**b) for b in doc.get("histogram", ()))
    return ColumnProfile(**fields)


def _time(doc: dict[str, Any]) -> TimeProfile:
    fields = {k: v for k, v in doc.items() if k in TimeProfile.__dataclass_fields__}
    fields["largest_gaps"] = tuple((str(a), str(b)) for a, b in doc.get("largest_gaps", ()))
    return TimeProfile(**fields)


# --- the profile as the Prefect UI shows it ---------------------------------------------------

_BLOCKS = " ▁▂▃▄▅▆▇█"
TOP_SHOWN = 5


def artifact_rows(profile: Profile) -> list[dict[str, Any]]:
    """One row per column: column, type, count, nulls, null_ratio, distinct, min, max, mean,
    stddev, top (the most frequent values, "value (count)"), histogram (bars, low to high)."""
    return [
        {
            "column": c.name,
            "type": c.pg_type,
            "count": c.count,
            "nulls": c.nulls,
            "null_ratio": round(c.null_ratio, 4),
            "distinct": c.distinct if c.distinct_exact else f"~{c.distinct}",
            "min": c.min,
            "max": c.max,
            "mean": None if c.mean is None else round(c.mean, 6),
            "stddev": None if c.stddev is None else round(c.stddev, 6),
            "top": ", ".join(f"{v} ({n})" for v, n in c.top[:TOP_SHOWN]),
            "histogram": bars(c.histogram),
        }
        for c in profile.columns
    ]


def bars(histogram: tuple[Bin, ...]) -> str:
    """Bin counts as block characters: a histogram readable in a table cell."""
    if not histogram:
        return ""
    most = max(b.count for b in histogram) or 1
    return "".join(_BLOCKS[min(8, -(-8 * b.count // most))] for b in histogram)


def describe(path: str, profile: Profile) -> str:
    """The profile artifact's description: rows, and the time column's span and gaps."""
    lines = [f"Profile of {path}: {profile.rows:,} rows, {len(profile.columns)} columns"]
    time = profile.time
    if time is not None and time.start is not None:
        step = f"{time.step_s:g} s" if time.step_s else "n/a"
        order = "in time order" if time.ordered else "NOT in time order"
        lines.append(
            f"time `{time.column}`: {time.start} to {time.end}, {order}, typical step {step}, "
            f"{time.gaps} gap(s) longer than the gap limit"
        )
        lines += [f"- gap: {a} to {b}" for a, b in time.largest_gaps]
    return "\n\n".join(lines)
