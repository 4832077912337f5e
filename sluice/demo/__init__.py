"""Sample files for `sluice demo`: what real inboxes hold (spaces and units in headers, NA cells,
gzip, an offset in timestamps, a broken file), and a summary of what landed.

The demo brings its own rules (`datasets.yaml` and `expectations/` in this package, shipped as
package data) and runs in a home (`<SLUICE_HOME>/demo`) and a schema (`demo`) of its own: its
`weather` key and suite never apply to a user's dataset of that name, its tables never mix with
theirs, and its inbox is not the one `sluice serve` watches.
"""

from __future__ import annotations

import gzip
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib.resources import as_file, files
from pathlib import Path

import psycopg
from psycopg import sql

from sluice.load import chunk_count
from sluice.settings import Settings

log = logging.getLogger(__name__)

START = datetime(2024, 3, 1, tzinfo=UTC)
SCHEMA = "demo"  # the demo's hypertables: demo.weather, demo.energy


@contextmanager
def rules_file() -> Iterator[Path]:
    """The demo's datasets.yaml, as a file (its suites by name in `expectations/` beside it)."""
    with as_file(files(__name__)) as folder:
        yield Path(folder) / "datasets.yaml"


@contextmanager
def own_settings(settings: Settings) -> Iterator[Settings]:
    """`settings` pointed at the demo's home, rules file and schema while the demo runs.

    The stages read the process's settings (`get_settings()`), so the demo changes that object
    for its runs and gives it back as it found it.
    """
    saved = settings.home, settings.datasets, settings.schema_name
    with rules_file() as rules:
        settings.home, settings.datasets, settings.schema_name = saved[0] / "demo", rules, SCHEMA
        try:
            yield settings
        finally:
            settings.home, settings.datasets, settings.schema_name = saved


def write_inbox(inbox: Path, *, rows: int) -> list[Path]:
    """Three weather days (CSV), one meter file (gzip TSV), one malformed CSV; returns the paths."""
    files = []
    for day in range(3):
        path = inbox / "weather" / f"{(START + timedelta(days=day)).date()}.csv"
        files.append(_write(path, _weather(day, rows)))
    files.append(_write(inbox / "energy" / "meter-readings.tsv.gz", _meter(rows)))
    files.append(_write(inbox / "weather" / "truncated-upload.csv", _broken()))
    return files


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


def _weather(day: int, rows: int) -> str:
    lines = ["Timestamp,Station ID,Air Temp (°C),Relative Humidity %,Wind Dir"]
    step = 86_400 / rows
    for i in range(rows):
        ts = START + timedelta(days=day, seconds=i * step)
        temp = "NA" if i % 97 == 0 else f"{10 + 8 * math.sin(i / 500):.2f}"
        lines.append(f"{ts.isoformat()},{i % 7 + 1},{temp},{40 + i % 50},{'NESW'[i % 4]}")
    return "\n".join(lines) + "\n"


def _meter(rows: int) -> str:
    lines = ["reading_time\tmeter\tkwh\tok"]
    for i in range(rows):
        ts = START + timedelta(minutes=15 * i)
        lines.append(
            f"{ts:%Y-%m-%d %H:%M:%S}+01:00\tm-{i % 11:02d}\t{(i % 37) * 0.25:.2f}\t"
            f"{'true' if i % 13 else 'false'}"
        )
    return "\n".join(lines) + "\n"


def _broken() -> str:
    return "Timestamp,Station ID,Air Temp\n2024-03-01T00:00:00Z,1,3.5\n2024-03-01T00:10:00Z,1\n"


def landed(settings: Settings) -> list[tuple[str, str, int, int, int]]:
    """Per dataset of the settings' schema: hypertable, files in the ledger, rows, chunks."""
    with psycopg.connect(settings.dsn(), autocommit=True) as conn:
        ledger = conn.execute(
            "SELECT dataset, target, count(*) FROM sluice.files "
            "WHERE split_part(target, '.', 1) = %s GROUP BY 1, 2 ORDER BY 1",
            (settings.schema_name,),
        ).fetchall()
        result = []
        for dataset, target, files in ledger:
            schema_name, table = str(target).split(".", 1)
            if conn.execute("SELECT to_regclass(%s)", (str(target),)).fetchone() == (None,):
                log.warning("%s: the ledger has %s file(s) but the table is gone", target, files)
                continue
            count = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema_name, table))
            ).fetchone()
            result.append(
                (
                    str(dataset),
                    str(target),
                    int(files),
                    int(count[0]) if count else 0,
                    chunk_count(conn, schema_name, table),
                )
            )
    return result
