"""Generated test files: time-series CSV with the quirks real files have."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sluice.contracts import Column, InferredSchema

START = datetime(2024, 1, 1, tzinfo=UTC)
# ts (the time column), a double and a text: the schema of the unit tests' small staged files
TS_V_CAT = InferredSchema(
    (
        Column("ts", "ts", "timestamptz", False),
        Column("v", "v", "double precision", True),
        Column("cat", "cat", "text", True),
    ),
    "ts",
)


def weather_csv(path: Path, rows: int, *, start: datetime = START, step_s: int = 600) -> Path:
    """Header with spaces and units, `NA` cells, ISO timestamps with Z; content unique per call."""
    tag = "n" + uuid.uuid4().hex[:7]  # not hex digits alone: "1234567e-5" is a number
    lines = ["Timestamp,Station ID,Air Temp (°C),Humidity,Note"]
    for i in range(rows):
        ts = (start + timedelta(seconds=i * step_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
        temp = "NA" if i % 10 == 3 else f"{(i % 40) - 5.5}"
        lines.append(f"{ts},{i % 5},{temp},{50 + i % 30},{tag}-{i}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
