"""Typed columnar files (Parquet, Arrow IPC / Feather, ORC): their own Arrow types, normalised.

Every batch is normalised the same way (`normalize_batch`), so all batches share one schema that
the engine can map to PostgreSQL: narrow integers widen to int64, timestamps become microseconds
(PostgreSQL's precision; a zone is kept), dictionaries decode, and nested values (struct, list,
map) become compact JSON text. Random access is needed, so an uncompressed file is memory-mapped
in place and a compressed one is spooled to a temporary file, never into memory.
"""

from __future__ import annotations

import functools
import json
import lzma
import math
import shutil
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pyarrow.orc as orc
import pyarrow.parquet as pq

from sluice.datasets import DatasetRules
from sluice.errors import UnreadableFile
from sluice.read.readers import Opened, Source

_SPOOL_CHUNK = 1 << 20
_CODEC_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError)  # a damaged wrapper
_WIDEN_TO_INT64 = {pa.int8(), pa.int16(), pa.int32(), pa.uint8(), pa.uint16(), pa.uint32()}
_TEXT = {pa.large_string(), pa.string_view()}
_BINARY = {pa.binary(), pa.large_binary(), pa.binary_view()}


def open_parquet(source: Source, rules: DatasetRules, batch_rows: int) -> Opened:
    """Row groups streamed `batch_rows` at a time: memory is about a batch and a row group."""

    def batches(path: Path, stack: ExitStack) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        parquet = stack.enter_context(pq.ParquetFile(str(path), memory_map=True))
        return parquet.schema_arrow, parquet.iter_batches(batch_size=batch_rows)

    return _open(source, batch_rows, "Parquet", ".parquet", batches)


def open_arrow(source: Source, rules: DatasetRules, batch_rows: int) -> Opened:
    """An Arrow IPC file (Feather v2), an IPC stream, or a legacy Feather v1 file."""
    with source.open() as stream:
        magic = stream.read(6)
    if magic.startswith(b"\xff\xff\xff\xff"):
        return _open_stream(source, batch_rows)
    if magic.startswith(b"FEA1"):
        return _open(source, batch_rows, "Feather", ".feather", _feather_v1(batch_rows))
    return _open(source, batch_rows, "Arrow", ".arrow", _ipc_file)


def open_orc(source: Source, rules: DatasetRules, batch_rows: int) -> Opened:
    """ORC stripe by stripe: memory is one stripe (64 MiB by default) plus one batch."""

    def batches(path: Path, stack: ExitStack) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        mapped = stack.enter_context(pa.memory_map(str(path)))
        reader = orc.ORCFile(mapped)
        return reader.schema, (reader.read_stripe(i) for i in range(reader.nstripes))

    return _open(source, batch_rows, "ORC", ".orc", batches)


Batches = Callable[[Path, ExitStack], tuple[pa.Schema, Iterator[pa.RecordBatch]]]


def _open(source: Source, batch_rows: int, kind: str, suffix: str, batches: Batches) -> Opened:
    """Open a random-access file; the returned batches own the file (and any spool) until done."""
    stack = ExitStack()
    try:
        with _malformed(kind):
            path = stack.enter_context(local_file(source, suffix))
            schema, raw = batches(path, stack)
        names, json_columns = _plan(schema)
    except BaseException:
        stack.close()
        raise
    rows = _rebatch(_normalized(raw, kind), batch_rows)
    return Opened(names=names, batches=_owned(stack, rows), json_columns=json_columns)


def _ipc_file(path: Path, stack: ExitStack) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    reader = ipc.open_file(stack.enter_context(pa.memory_map(str(path))))
    return reader.schema, (reader.get_batch(i) for i in range(reader.num_record_batches))


def _feather_v1(batch_rows: int) -> Batches:
    def batches(path: Path, stack: ExitStack) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # reading v1 is still supported
            table = feather.read_table(str(path))
        return table.schema, iter(table.to_batches(max_chunksize=batch_rows))

    return batches


def _open_stream(source: Source, batch_rows: int) -> Opened:
    """An IPC stream is read front to back, so even a compressed one needs no spool."""
    stack = ExitStack()
    try:
        with _malformed("Arrow stream"):
            reader = ipc.open_stream(stack.enter_context(source.open()))
        names, json_columns = _plan(reader.schema)
    except BaseException:
        stack.close()
        raise
    rows = _rebatch(_normalized(reader, "Arrow stream"), batch_rows)
    return Opened(names=names, batches=_owned(stack, rows), json_columns=json_columns)


@contextmanager
def local_file(source: Source, suffix: str = "") -> Iterator[Path]:
    """A path to the decompressed bytes: the file itself, or a temporary copy deleted on exit."""
    if source.compression is None:
        yield source.path
        return
    with tempfile.NamedTemporaryFile(prefix="sluice-", suffix=suffix) as spool:
        with source.open() as stream:
            shutil.copyfileobj(stream, spool, _SPOOL_CHUNK)
        spool.flush()
        yield Path(spool.name)


@contextmanager
def _malformed(kind: str) -> Iterator[None]:
    """Arrow's errors about the bytes become UnreadableFile; ours pass through unchanged."""
    try:
        yield
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError, EOFError, *_CODEC_ERRORS) as exc:
        text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        hint = f"the file is truncated or not {kind}: re-export it"
        raise UnreadableFile(f"malformed {kind} ({text})", hint=hint) from exc


def _owned(stack: ExitStack, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    with stack:
        yield from batches


def _normalized(batches: Iterable[pa.RecordBatch], kind: str) -> Iterator[pa.RecordBatch]:
    iterator = iter(batches)
    while True:
        with _malformed(kind):
            batch = next(iterator, None)
        if batch is None:
            return
        if batch.num_rows:
            yield normalize_batch(batch)[0]


def _rebatch(batches: Iterable[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """Batches of `size` rows (the last may be shorter): big ones sliced, small ones joined."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        offset = 0
        while offset < batch.num_rows:
            take = min(size - rows, batch.num_rows - offset)
            pending.append(batch.slice(offset, take))
            rows, offset = rows + take, offset + take
            if rows == size:
                yield _joined(pending)
                pending, rows = [], 0
    if rows:
        yield _joined(pending)


def _joined(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def _plan(schema: pa.Schema) -> tuple[list[str], frozenset[str]]:
    """Names and JSON columns, known before the first batch (normalising an empty batch)."""
    empty = pa.RecordBatch.from_pylist([], schema=schema)
    return list(schema.names), normalize_batch(empty)[1]


def normalize_batch(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, frozenset[str]]:
    """The batch in the engine's types, and the names of its columns now holding JSON text.

    The result's types depend only on the input's types, so batches of one file share a schema.
    """
    arrays: list[pa.Array] = []
    json_columns: set[str] = set()
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        array, is_json = _normalize(name, column)
        arrays.append(array)
        if is_json:
            json_columns.add(name)
    fields = [pa.field(n, a.type) for n, a in zip(batch.schema.names, arrays, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)), frozenset(json_columns)


def _normalize(name: str, array: pa.Array) -> tuple[pa.Array, bool]:
    """One column in the engine's types, and whether it now holds JSON text."""
    kind = array.type
    if isinstance(kind, pa.BaseExtensionType):
        return _extension(name, array)
    if pa.types.is_dictionary(kind):
        return _normalize(name, array.dictionary_decode())
    if pa.types.is_run_end_encoded(kind):
        return _normalize(name, pc.run_end_decode(array))
    if pa.types.is_nested(kind):
        return _json_text(array), True
    return _temporal(name, _scalar(name, array)), False


def _scalar(name: str, array: pa.Array) -> pa.Array:
    """Integers as int64, floats as float64, text and UTF-8 binary as string; others unchanged."""
    kind = array.type
    if pa.types.is_null(kind):
        return pa.nulls(len(array), pa.string())
    if kind in _WIDEN_TO_INT64 or kind == pa.uint64():
        return _cast(name, array, pa.int64())
    if pa.types.is_floating(kind) and kind != pa.float64():
        return array.cast(pa.float64())
    if kind in _TEXT:
        return array.cast(pa.string())
    if kind in _BINARY or pa.types.is_fixed_size_binary(kind):
        return _utf8(name, array)
    if pa.types.is_decimal(kind) and kind.bit_width < 128:
        return array.cast(pa.decimal128(kind.precision, kind.scale))
    return array


def _temporal(name: str, array: pa.Array) -> pa.Array:
    """Timestamps, times and durations in microseconds, dates as date32; others unchanged."""
    kind = array.type
    if pa.types.is_timestamp(kind) and kind.unit != "us":
        return _cast(name, array, pa.timestamp("us", kind.tz))
    if pa.types.is_date64(kind):
        return _cast(name, array, pa.date32())
    if pa.types.is_time(kind) and kind != pa.time64("us"):
        return _cast(name, array, pa.time64("us"))
    if pa.types.is_duration(kind) and kind.unit != "us":
        return _cast(name, array, pa.duration("us"))
    return array


def _cast(name: str, array: pa.Array, target: pa.DataType) -> pa.Array:
    """Overflow is an error naming the column; sub-microsecond precision is truncated."""
    options = pc.CastOptions(target, allow_time_truncate=True)
    try:
        return pc.cast(array, options=options)
    except pa.ArrowInvalid as exc:
        detail = str(exc).strip().splitlines()[0]
        raise UnreadableFile(
            f"column {name!r}: values do not fit {target} ({detail})",
            hint="the column holds values PostgreSQL cannot store: fix them and re-export",
        ) from exc


def _utf8(name: str, array: pa.Array) -> pa.Array:
    try:
        return array.cast(pa.binary()).cast(pa.string())
    except pa.ArrowInvalid as exc:
        raise UnreadableFile(
            f"column {name!r} holds binary data, not UTF-8 text",
            hint="drop the column or encode it as text (base64, hex) and re-export",
        ) from exc


def _extension(name: str, array: pa.Array) -> tuple[pa.Array, bool]:
    """UUIDs become their canonical text, JSON stays JSON text, others are their storage."""
    extension = array.type.extension_name
    if extension == "arrow.uuid":
        values = (None if v is None else str(v) for v in array.to_pylist())
        return pa.array(values, pa.string()), False
    storage, _ = _normalize(name, array.storage)
    return storage, extension == "arrow.json" or pa.types.is_nested(array.type.storage_type)


def _json_text(array: pa.Array) -> pa.Array:
    """Nested values as compact JSON, column by column (nested columns are rare and small)."""
    values = array.to_pylist(maps_as_pydicts="lossy")
    return pa.array([None if v is None else _dumps(v) for v in values], pa.string())


def _dumps(value: Any) -> str:
    try:
        return _compact(value, allow_nan=False)
    except (TypeError, ValueError):  # a map key that is not text, NaN or infinity
        return _compact(_plain(value))


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


_compact = functools.partial(
    json.dumps, separators=(",", ":"), ensure_ascii=False, default=_json_default
)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {_json_key(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_key(key: Any) -> str:
    return key if isinstance(key, str) else str(_json_default(key))
