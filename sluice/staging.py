"""The staging area: one folder per file id holding each stage's Parquet; written atomically.

Where it is (`SLUICE_STAGING`) is a local folder, `SLUICE_HOME/staging` by default, or any
fsspec URL: `file:///shared/staging` (a mount every worker has), `s3://bucket/prefix` (with
s3fs installed). This module is the only one that knows: the stages pass a location and get
back a `Staged` whose `uri` any worker that sees the same area can read, so a run resumed
after a crash may continue on another machine from the results cached in Redis.

Writes are atomic everywhere. On a local file system (a path or a `file://` URL) the Parquet
is written under a temporary name and renamed into place; on object stores (s3, gcs, azure) a
single upload is what makes the object visible; elsewhere a temporary name and the store's
move. `memory://` works within one process only (unit tests), never across workers.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from sluice.contracts import Staged
from sluice.errors import StagingLost

Location = Path | str  # a local folder, or an fsspec URL
# Stores on which an upload becomes visible whole, or not at all: no rename needed.
_WHOLE_UPLOADS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl"})
WRITE_OPTIONS: dict[str, object] = {
    "compression": "lz4",
    "use_dictionary": False,
    "write_statistics": False,
}


def _join(base: Location, name: str) -> Location:
    return base / name if isinstance(base, Path) else f"{base.rstrip('/')}/{name}"


def stage_path(staging: Location, file_id: str, name: str) -> Location:
    """Where stage `name` of a file is staged: `<staging>/<file_id>/<name>.parquet`."""
    return _join(_join(staging, file_id), f"{name}.parquet")


def _fs(location: Location) -> tuple[AbstractFileSystem, str]:
    fs, path = url_to_fs(str(location))
    return fs, str(path)


def _local(fs: AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def _lost(uri: str) -> StagingLost:
    return StagingLost(f"staged data {uri} is gone", hint="the file is staged again automatically")


@contextmanager
def _source(staged: Staged) -> Iterator[str | IO[bytes]]:
    """What pyarrow reads a staged file from: a local path, or an open file of the store."""
    fs, path = _fs(staged.uri)
    if _local(fs):
        if not os.path.isfile(path):
            raise _lost(staged.uri)
        yield path
        return
    try:
        handle = fs.open(path, "rb")
    except FileNotFoundError:
        raise _lost(staged.uri) from None
    with handle:
        yield handle


def iter_batches(staged: Staged, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of a staged file, never more than `batch_rows` rows in memory at once."""
    # pre_buffer=False: pyarrow's default pre-buffering holds the whole file's column chunks
    # until the read ends (187 MB for 8M rows, against 17 MB without it).
    with _source(staged) as source, pq.ParquetFile(source, pre_buffer=False) as parquet:
        yield from parquet.iter_batches(batch_size=batch_rows)


def read_schema(staged: Staged) -> pa.Schema:
    with _source(staged) as source:
        return pq.read_schema(source)


def read_key_values(staged: Staged) -> dict[bytes, bytes]:
    """The file's key/value metadata, with what `write_batches` added at its end (`late`)."""
    with _source(staged) as source:
        return dict(pq.read_metadata(source).metadata or {})


@contextmanager
def _atomic(location: Location) -> Iterator[str | IO[bytes]]:
    """Something to write the whole file to; it appears at `location` only when complete."""
    fs, path = _fs(location)
    if _local(fs):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{os.path.dirname(path)}/.{os.path.basename(path)}.{os.getpid()}.tmp"
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return
    if _WHOLE_UPLOADS & set(_protocols(fs)):
        with fs.open(path, "wb") as handle:
            yield handle
        return
    tmp = f"{path.rsplit('/', 1)[0]}/.{path.rsplit('/', 1)[-1]}.{uuid.uuid4().hex}.tmp"
    try:
        with fs.open(tmp, "wb") as handle:
            yield handle
        fs.mv(tmp, path)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)


def _protocols(fs: AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def write_batches(
    location: Location,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    late: Callable[[], dict[bytes, bytes]] | None = None,
) -> Staged:
    """Stream batches into Parquet at `location` (visible only when complete); `late()` is
    key/value metadata known only once the batches are written (`read_key_values` reads it).

    LZ4 without dictionary encoding or statistics: staged data is written once and read once
    or twice before the load commits; dictionary encoding cost 2.5x the write time (2M rows,
    8 columns: 1.21 s against 0.49 s) for 16% less disk.
    """
    rows = 0
    with _atomic(location) as target, pq.ParquetWriter(target, schema, **WRITE_OPTIONS) as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
        if late is not None:
            writer.add_key_value_metadata(late())
    return Staged(uri=str(location), rows=rows, columns=tuple(schema.names))


def remove(staging: Location, file_id: str) -> None:
    """Drop everything staged for one file (after its load committed)."""
    fs, folder = _fs(_join(staging, file_id))
    if _local(fs):
        shutil.rmtree(folder, ignore_errors=True)
    elif fs.exists(folder):
        fs.rm(folder, recursive=True)


@dataclass(frozen=True, slots=True)
class Folder:
    """One file's staging folder, as the janitor sees it."""

    file_id: str
    modified: float  # newest modification time of the folder or anything in it (epoch s)
    size: int  # bytes


def folders(staging: Location) -> list[Folder]:
    """The staging area's folders (none when the area does not exist yet)."""
    fs, root = _fs(staging)
    if not fs.isdir(root):
        return []
    found = []
    for entry in fs.ls(root, detail=True):
        if entry["type"] != "directory":
            continue
        inside = fs.find(entry["name"], detail=True).values()
        times = [t for t in (_mtime(i) for i in [entry, *inside]) if t is not None]
        found.append(
            Folder(
                file_id=str(entry["name"]).rstrip("/").rsplit("/", 1)[-1],
                modified=max(times, default=0.0),
                size=sum(int(i.get("size") or 0) for i in inside if i["type"] == "file"),
            )
        )
    return found


def _mtime(info: dict[str, Any]) -> float | None:
    """Modification time from a listing: `mtime` (local), `LastModified` (s3), `updated`..."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
    return None
