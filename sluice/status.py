"""`sluice status` and `sluice datasets`: per dataset, what happened today and what waits, read
from the ledger (`sluice.files`), Redis (dead letters, file locks) and the inbox; and the rules
in force from datasets.yaml.

Read-only: it creates nothing, so it can run against a database Sluice never wrote to.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import redis

from sluice import ledger, sensor
from sluice.datasets import DatasetRules, dataset_for, datasets_named, load_rules
from sluice.state import checkpoints, dlq
from sluice.state.checkpoints import Keys

Conn = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class DatasetStatus:
    dataset: str
    loaded_today: int = 0
    quarantined_today: int = 0
    rows_today: int = 0
    last_load: datetime | None = None
    waiting: int = 0  # files in the inbox not loaded yet
    inbox_lag_s: float | None = None  # age of the oldest of them
    in_flight: int = 0  # runs holding a file lock now
    dead_letters: int = 0  # quarantined files (newest letter of each)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["last_load"] = self.last_load.isoformat() if self.last_load else None
        return data


@dataclass
class _Found:
    by_dataset: dict[str, DatasetStatus] = field(default_factory=dict)

    def update(self, dataset: str, **values: Any) -> None:
        current = self.by_dataset.get(dataset) or DatasetStatus(dataset)
        self.by_dataset[dataset] = replace(current, **values)


def gather(
    conn: Conn, r: redis.Redis, keys: Keys, inbox: Path, *, now: float | None = None
) -> list[DatasetStatus]:
    """Every dataset with a ledger row, a dead letter, a waiting file or a live run."""
    now = time.time() if now is None else now
    found = _Found()
    midnight, has_ledger = _ledger(conn, found)
    _letters(r, keys, found, midnight)
    _in_flight(r, keys, found)
    _inbox(conn if has_ledger else None, r, keys, inbox, found, now)
    return [found.by_dataset[name] for name in sorted(found.by_dataset)]


def _ledger(conn: Conn, found: _Found) -> tuple[float, bool]:
    """Today's loads per dataset; returns the epoch of today's midnight (the server's zone) and
    whether the database has a ledger."""
    row = conn.execute(
        "SELECT extract(epoch FROM date_trunc('day', now()))::float8, "
        "to_regclass('sluice.files') IS NOT NULL"
    ).fetchone()
    assert row is not None
    midnight, has_ledger = float(row[0]), bool(row[1])
    if not has_ledger:
        return midnight, False
    rows = conn.execute(
        "SELECT dataset, count(*) FILTER (WHERE loaded_at >= date_trunc('day', now())), "
        "coalesce(sum(rows) FILTER (WHERE loaded_at >= date_trunc('day', now())), 0), "
        "max(loaded_at) FROM sluice.files GROUP BY dataset"
    ).fetchall()
    for dataset, files, total, last in rows:
        found.update(str(dataset), loaded_today=int(files), rows_today=int(total), last_load=last)
    return midnight, True


def _letters(r: redis.Redis, keys: Keys, found: _Found, midnight: float) -> None:
    every = dlq.read_all(r, keys)
    for dataset, count in Counter(x.dataset for x in dlq.newest_per_file(every)).items():
        found.update(dataset, dead_letters=count)
    today = {(x.dataset, x.file_id) for x in every if x.at >= midnight}
    for dataset, count in Counter(d for d, _ in today).items():
        found.update(dataset, quarantined_today=count)


def _in_flight(r: redis.Redis, keys: Keys, found: _Found) -> None:
    prefix = keys.lock("")
    file_ids = [k.decode()[len(prefix) :] for k in r.scan_iter(match=f"{prefix}*", count=1000)]
    datasets = [checkpoints.status_of(r, keys, file_id).get("dataset", "?") for file_id in file_ids]
    for dataset, count in Counter(datasets).items():
        found.update(dataset, in_flight=count)


def _inbox(
    conn: Conn | None, r: redis.Redis, keys: Keys, inbox: Path, found: _Found, now: float
) -> None:
    """Files waiting in the inbox: all but versions the ledger confirms loaded (`conn` None:
    a database without a ledger has loaded nothing)."""
    versions: list[tuple[Path, int, int]] = []
    for path in sensor.waiting_files(inbox):
        try:
            stat = path.stat()
        except OSError:
            continue  # gone meanwhile
        versions.append((path, stat.st_size, stat.st_mtime_ns))
    listed = [(str(p), size, mtime) for p, size, mtime in versions]
    handled = ledger.handled(conn, r, keys, listed) if conn else [False] * len(listed)
    oldest: dict[str, float] = {}
    waiting: Counter[str] = Counter()
    for (path, _size, mtime_ns), done in zip(versions, handled, strict=True):
        if done:
            continue
        dataset = dataset_for(path, inbox)
        waiting[dataset] += 1
        oldest[dataset] = min(oldest.get(dataset, now), mtime_ns / 1e9)
    for dataset, count in waiting.items():
        found.update(dataset, waiting=count, inbox_lag_s=max(0.0, now - oldest[dataset]))


def inbox_lag(
    conn: Conn, r: redis.Redis, keys: Keys, inbox: Path, *, now: float | None = None
) -> tuple[int, float]:
    """(files waiting, age of the oldest in seconds) over all datasets: the sensor's gauges."""
    found = _Found()
    now = time.time() if now is None else now
    _inbox(conn, r, keys, inbox, found, now)
    waiting = sum(s.waiting for s in found.by_dataset.values())
    lag = max((s.inbox_lag_s or 0.0 for s in found.by_dataset.values()), default=0.0)
    return waiting, lag


def rules_in_force(datasets_file: Path) -> list[DatasetRules]:
    """The rules of each dataset datasets.yaml names or a suite by name (expectations/<dataset>.json
    beside it) implies; any other dataset gets the defaults."""
    return [load_rules(datasets_file, name) for name in datasets_named(datasets_file)]


def describe_rules(rules: DatasetRules, base: Path) -> dict[str, str]:
    """One dataset's rules as short texts, for a table (a default shows as `auto`)."""
    suite = rules.suite
    if suite:
        try:
            suite = str(Path(suite).relative_to(base.resolve()))
        except ValueError:
            pass
    return {
        "dataset": rules.name,
        "time_column": rules.time_column or "auto",
        "key": ", ".join(rules.key) or "-",
        "chunk_interval": rules.chunk_interval,
        "time_zone": rules.time_zone,
        "suite": suite or "-",
        "on_error": rules.on_error,
        "types": ", ".join(f"{c}: {t}" for c, t in rules.types) or "auto",
        "drift": "off" if not rules.drift.history else f"last {rules.drift.history} files",
    }
