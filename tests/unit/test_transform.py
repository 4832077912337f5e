"""transform: the load-ready copy of enrich's output; no copy when it is typed as load needs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sluice import enrich, profile, transform
from sluice.contracts import FileRef, Staged
from sluice.datasets import DatasetRules
from sluice.staging import write_batches
from tests.data import TS_V_CAT

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SCHEMA = TS_V_CAT
REF = FileRef(path="/in/a.csv", file_id="f" * 64, dataset="d", size=1, rules_hash="r")
RULES = DatasetRules("d")


def _raw(tmp_path: Path, rows: int = 50) -> Staged:
    table = pa.table(
        {
            "ts": [(T0 + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(rows)],
            "v": [None if i % 7 == 0 else f"{i / 4}" for i in range(rows)],
            "cat": [f"c{i % 3}" for i in range(rows)],
        }
    )
    return write_batches(tmp_path / "raw.parquet", table.schema, table.to_batches(max_chunksize=16))


def test_enriched_typed_data_is_load_ready_as_it_is(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    typed = profile.run(raw, SCHEMA, RULES, 16, tmp_path / "typed.parquet").typed
    assert typed is not None
    enriched = enrich.run(REF, typed)

    ready = transform.run(REF, enriched, SCHEMA, RULES, tmp_path, 16)

    assert ready == enriched  # nothing rewritten
    assert not (tmp_path / REF.file_id / "load.parquet").exists()
    assert enrich.schema(ready).types == transform.target_schema(SCHEMA).types
    rows = pa.Table.from_batches(list(enrich.batches(ready, 16)))
    assert rows.schema.types == transform.target_schema(SCHEMA).types
    assert rows["_row"].to_pylist() == list(range(1, 51))


def test_enrich_writes_nothing_and_its_rows_carry_the_lineage(tmp_path: Path) -> None:
    raw = _raw(tmp_path)

    enriched = enrich.run(REF, raw)

    assert enriched.uri == raw.uri and enriched.rows == 50
    assert not (tmp_path / REF.file_id).exists()
    rows = pa.Table.from_batches(list(enrich.batches(enriched, 16)))
    assert rows.column_names == ["ts", "v", "cat", "_file_id", "_row", "_ingested_at"]
    assert set(rows["_file_id"].to_pylist()) == {REF.file_id}
    assert rows["_row"].to_pylist() == list(range(1, 51))
    assert len(set(rows["_ingested_at"].to_pylist())) == 1  # one arrival for the whole file
    again = pa.Table.from_batches(list(enrich.batches(enriched, 7)))
    assert again.equals(rows)  # the same rows each time they are read, whatever the batches


def test_enriched_text_is_converted_into_load_parquet(tmp_path: Path) -> None:
    enriched = enrich.run(REF, _raw(tmp_path))

    ready = transform.run(REF, enriched, SCHEMA, RULES, tmp_path, 16)

    assert ready.uri.endswith("load.parquet") and ready.rows == 50
    loaded = pq.read_table(ready.uri)
    assert loaded.schema.types == transform.target_schema(SCHEMA).types
    assert loaded["ts"][3].as_py() == T0 + timedelta(minutes=3)
    assert loaded["v"].to_pylist()[:3] == [None, 0.25, 0.5]
    assert loaded["_row"].to_pylist() == list(range(1, 51))
