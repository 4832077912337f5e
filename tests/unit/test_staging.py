"""The staging area at a local folder, a `file://` URL and a non-local fsspec store (memory://,
which stands for any store here: one process only)."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import pyarrow as pa
import pytest

from sluice import staging
from sluice.contracts import Staged
from sluice.errors import StagingLost
from sluice.settings import Settings

TABLE = pa.table({"a": list(range(10)), "b": [str(i) for i in range(10)]})


def _areas(tmp_path: Path) -> list[staging.Location]:
    return [tmp_path / "folder", f"file://{tmp_path}/url", f"memory://sluice-{uuid.uuid4().hex}"]


@pytest.mark.parametrize("kind", ["folder", "file-url", "memory-store"])
def test_a_staged_stage_reads_back_batch_by_batch_and_is_removed_with_its_file(
    tmp_path: Path, kind: str
) -> None:
    area = _areas(tmp_path)[["folder", "file-url", "memory-store"].index(kind)]
    where = staging.stage_path(area, "f1", "raw")

    staged = staging.write_batches(where, TABLE.schema, TABLE.to_batches(max_chunksize=4))

    assert staged.uri == str(where) and staged.rows == 10
    assert staging.read_schema(staged) == TABLE.schema
    assert pa.Table.from_batches(list(staging.iter_batches(staged, 3))) == TABLE
    (folder,) = staging.folders(area)
    assert folder.file_id == "f1" and folder.size > 0 and folder.modified > 0
    staging.remove(area, "f1")
    assert staging.folders(area) == []
    with pytest.raises(StagingLost):
        staging.read_schema(staged)


def test_an_interrupted_write_leaves_nothing_under_the_final_name(tmp_path: Path) -> None:
    for area in _areas(tmp_path):
        where = staging.stage_path(area, "f2", "raw")

        def failing() -> pa.RecordBatch:
            yield TABLE.to_batches()[0]
            raise RuntimeError("the reader died")

        with pytest.raises(RuntimeError):
            staging.write_batches(where, TABLE.schema, failing())

        fs, path = fsspec.core.url_to_fs(str(where))
        parent = path.rsplit("/", 1)[0]
        assert not fs.exists(path), area
        assert not fs.exists(parent) or fs.ls(parent) == [], area  # no temporary file either


def test_a_missing_area_has_no_folders_and_removing_from_it_is_harmless(tmp_path: Path) -> None:
    for area in _areas(tmp_path):
        assert staging.folders(area) == []
        staging.remove(area, "nothing")
    with pytest.raises(StagingLost):
        list(staging.iter_batches(Staged(str(tmp_path / "gone.parquet"), 0, ()), 10))


def test_sluice_staging_is_a_folder_by_default_a_path_or_a_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLUICE_STAGING", raising=False)
    assert Settings(home=tmp_path).staging == tmp_path / "staging"
    monkeypatch.setenv("SLUICE_STAGING", str(tmp_path / "shared"))
    assert Settings(home=tmp_path).staging == tmp_path / "shared"
    monkeypatch.setenv("SLUICE_STAGING", "s3://bucket/staging")
    assert Settings(home=tmp_path).staging == "s3://bucket/staging"
