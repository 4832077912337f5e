"""Encode Arrow record batches into PostgreSQL's binary COPY format, in bulk.

No Python object is created per row or per value: every column is converted with numpy or
Arrow compute, and the rows are assembled by Arrow in C++.

A batch is cut into *parts*, each a ``large_binary`` array holding one byte string per row:

* a *run* of fields of a fixed width (the int16 field count, then for each column up to the
  next text or jsonb column its int32 length, -1 for a null, and its big-endian value) is
  one numpy structured array, one record per row; the bytes of the fields absent from a row
  (the value of a null, the base-10000 digits a ``numeric`` does not use) are then dropped
  with one boolean mask over the run's bytes;
* the UTF-8 bytes of a text or jsonb column (none for a null) follow the run ending in its
  length (and, for jsonb, the version byte 1).

A ``numeric`` is a fixed-width header and up to as many int16 digits as the column's widest
value needs, each present or absent per row (see sluice.load.pgcopy_numeric).

``pyarrow.compute.binary_join_element_wise`` then concatenates the parts row by row.

Format: https://www.postgresql.org/docs/current/sql-copy.html (Binary Format).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from sluice.contracts import PgType
from sluice.load.pgcopy_numeric import numeric_digits

__all__ = ["HEADER", "TRAILER", "encode_batch", "iter_copy_parts"]

HEADER: bytes = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER: bytes = b"\xff\xff"

_EPOCH_DAYS = 10_957  # 2000-01-01 - 1970-01-01, in days
_EPOCH_US = _EPOCH_DAYS * 86_400 * 1_000_000

# Big-endian numpy dtype of the value of each fixed-width type.
_WIRE: dict[str, str] = {
    "boolean": "u1",
    "bigint": ">i8",
    "double precision": ">f8",
    "date": ">i4",
    "timestamp": ">i8",
    "timestamptz": ">i8",
    "time": ">i8",
}
_TIME_FACTOR = {"s": 1_000_000, "ms": 1_000, "us": 1}  # to microseconds

_Array = npt.NDArray[Any]
# A field of fixed width: its numpy dtype, its value(s) in every row, and the rows that hold
# it (None: all of them); a field absent from a row takes no bytes there.
_Field = tuple[str, _Array | int, _Array | None]


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _is_us_timestamp(t: pa.DataType, zoned: bool) -> bool:
    return bool(pa.types.is_timestamp(t) and t.unit == "us" and (t.tz is not None) == zoned)


# For each PostgreSQL type: whether an Arrow type is accepted as its input, and which is.
_INPUT: dict[str, tuple[Callable[[pa.DataType], bool], str]] = {
    "boolean": (lambda t: t == pa.bool_(), "bool"),
    "bigint": (lambda t: t == pa.int64(), "int64"),
    "double precision": (lambda t: t == pa.float64(), "float64"),
    "text": (_is_text, "string or large_string"),
    "jsonb": (_is_text, "string or large_string (JSON text)"),
    "date": (lambda t: t == pa.date32(), "date32"),
    "timestamp": (lambda t: _is_us_timestamp(t, False), 'timestamp("us") without a time zone'),
    "timestamptz": (lambda t: _is_us_timestamp(t, True), 'timestamp("us", tz=...)'),
    "time": (
        lambda t: t in (pa.time64("us"), pa.time32("ms"), pa.time32("s")),
        'time64("us") (or time32)',
    ),
    "numeric": (pa.types.is_decimal, "decimal128(p, s) (or decimal32/64/256)"),
}


def _check(batch: pa.RecordBatch, types: Sequence[PgType]) -> None:
    if len(types) != batch.num_columns:
        raise ValueError(f"{len(types)} types given for a batch of {batch.num_columns} columns")
    for name, column, pg_type in zip(batch.schema.names, batch.columns, types, strict=True):
        accepts, expected = _INPUT.get(pg_type, (lambda t: False, "a supported PostgreSQL type"))
        if not accepts(column.type):
            raise TypeError(
                f"column {name!r}: cannot encode Arrow type {column.type} as PostgreSQL "
                f"{pg_type!r}; cast it first, to {expected}"
            )


def _fixed_values(column: pa.Array, pg_type: str) -> _Array:
    """Values of a fixed-width column as native numpy (nulls as 0), shifted to the PG epoch."""
    values: _Array
    if pg_type in ("timestamp", "timestamptz"):
        values = column.view(pa.int64()).fill_null(0).to_numpy() - np.int64(_EPOCH_US)
    elif pg_type == "date":
        values = column.view(pa.int32()).fill_null(0).to_numpy() - np.int32(_EPOCH_DAYS)
    elif pg_type == "time":
        ints = column.view(pa.int64() if column.type.bit_width == 64 else pa.int32())
        values = ints.fill_null(0).to_numpy().astype(np.int64) * _TIME_FACTOR[column.type.unit]
    else:
        fill = False if pg_type == "boolean" else 0
        values = column.fill_null(fill).to_numpy(zero_copy_only=False)
    return values


def _rows(data: _Array, lengths: _Array | int, n: int) -> pa.Array:
    """A ``large_binary`` array over ``data``: row i is the next ``lengths[i]`` bytes."""
    if isinstance(lengths, int):
        offsets = np.arange(0, (n + 1) * lengths, lengths, dtype=np.int64)
    else:
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))]
    return pa.Array.from_buffers(pa.large_binary(), n, buffers)


def _fixed_fields(column: pa.Array, pg_type: str) -> list[_Field]:
    """Length and value fields of a fixed-width column; a null has length -1 and no value."""
    wire = np.dtype(_WIRE[pg_type])
    values = _fixed_values(column, pg_type)
    if column.null_count == 0:
        return [(">i4", wire.itemsize, None), (wire.str, values, None)]
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    return [(">i4", np.where(valid, wire.itemsize, -1), None), (wire.str, values, valid)]


def _numeric_fields(column: pa.Array) -> list[_Field]:
    """Length, header and digit fields of a decimal column; a digit field is present in the
    rows that use it, and a null has length -1 and no other field."""
    num = numeric_digits(column)
    valid = column.is_valid().to_numpy(zero_copy_only=False) if column.null_count else None
    lengths = 8 + 2 * num.ndigits.astype(np.int32)
    fields: list[_Field] = [
        (">i4", lengths if valid is None else np.where(valid, lengths, -1), None)
    ]
    fields += [(">i2", v, valid) for v in (num.ndigits, num.weight, num.sign, num.dscale)]
    return fields + [(">i2", d, p) for d, p in zip(num.digits, num.present, strict=True)]


def _drop_absent(raw: _Array, run: list[_Field]) -> pa.Array:
    """The rows of ``raw`` (one record of ``run`` each) without the bytes of absent fields.

    The byte mask is built field by field as a structured array of the run's layout whose
    fields are unsigned integers with every byte 1 (present) or 0: one strided numpy
    assignment per field, much faster than broadcasting into a 2-D slice."""
    widths = [np.dtype(fmt).itemsize for fmt, _, _ in run]
    mask = np.empty(len(raw), dtype=[(f"f{i}", f"u{w}") for i, w in enumerate(widths)])
    sizes = np.full(len(raw), raw.shape[1], dtype=np.int32)
    for i, ((_, _, present), width) in enumerate(zip(run, widths, strict=True)):
        ones = int.from_bytes(b"\x01" * width, "little")  # 1 in every byte
        if present is None:
            mask[f"f{i}"] = ones
        else:
            mask[f"f{i}"] = present.astype(f"u{width}") * ones
            np.subtract(sizes, width, out=sizes, where=~present)
    keep = mask.view(np.bool_)
    return _rows(raw.ravel()[keep], sizes, len(raw))


def _pack(run: list[_Field], n: int) -> pa.Array:
    """One part from a run of fixed-width fields: a structured array, one record per row."""
    dtype = np.dtype([(f"f{i}", fmt) for i, (fmt, _, _) in enumerate(run)])
    records = np.empty(n, dtype=dtype)
    for i, (_, values, _) in enumerate(run):
        records[f"f{i}"] = values
    raw = records.view(np.uint8).reshape(n, dtype.itemsize)
    if all(present is None for _, _, present in run):
        return _rows(raw, dtype.itemsize, n)
    return _drop_absent(raw, run)


def _text(column: pa.Array, pg_type: str) -> tuple[list[_Field], pa.Array]:
    """The fields that end the run before a text or jsonb column (its length, -1 for a null,
    then for jsonb the version byte 1), and its UTF-8 bytes (none for nulls)."""
    lengths: _Array = pc.fill_null(pc.binary_length(column), -1).to_numpy()
    data = column.cast(pa.large_binary())
    if data.null_count:  # a null slot may still span bytes: empty it
        data = data.fill_null(pa.scalar(b"", pa.large_binary()))
    if pg_type == "text":
        return [(">i4", lengths, None)], data
    valid = lengths >= 0 if column.null_count else None
    return [(">i4", np.where(lengths >= 0, lengths + 1, -1), None), ("u1", 1, valid)], data


def _parts(batch: pa.RecordBatch, types: Sequence[PgType]) -> list[pa.Array]:
    """The parts whose row-wise concatenation is the batch's tuples, in order."""
    n = batch.num_rows
    parts: list[pa.Array] = []
    run: list[_Field] = [(">i2", len(types), None)]
    for column, pg_type in zip(batch.columns, types, strict=True):
        if pg_type == "numeric":
            run += _numeric_fields(column)
        elif pg_type not in ("text", "jsonb"):
            run += _fixed_fields(column, pg_type)
        else:
            fields, values = _text(column, pg_type)
            parts += [_pack([*run, *fields], n), values]
            run = []
    return [*parts, _pack(run, n)] if run else parts


def encode_batch(batch: pa.RecordBatch, types: Sequence[PgType]) -> bytes:
    """Rows of one batch (no header/trailer). Column i of the batch is encoded as types[i].

    Input types: boolean <- bool, bigint <- int64, double precision <- float64,
    text <- string or large_string, jsonb <- string or large_string holding JSON text (not
    checked here: the server parses it), date <- date32, timestamp <- timestamp("us")
    without a time zone, timestamptz <- timestamp("us", tz=any), time <- time64("us"),
    time32("ms") or time32("s") (converted exactly; cast time64("ns") to time64("us") first:
    Arrow's safe cast refuses to truncate), numeric <- decimal32/64/128/256 of any precision
    and scale (dscale is the scale, 0 if negative). Anything else raises TypeError.
    """
    _check(batch, types)
    if batch.num_rows == 0:
        return b""
    parts = _parts(batch, types)
    if len(parts) > 1:
        joined = pc.binary_join_element_wise(*parts, pa.scalar(b"", pa.large_binary()))
    else:
        joined = parts[0]
    _, offsets, data = joined.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64, count=len(joined) + 1, offset=joined.offset * 8)
    encoded: bytes = data[int(bounds[0]) : int(bounds[-1])].to_pybytes()
    return encoded


def iter_copy_parts(
    batches: Iterable[pa.RecordBatch], types: Sequence[PgType]
) -> Iterator[tuple[bytes, int]]:
    """HEADER, one chunk per batch, TRAILER; each with the rows it holds (0 for HEADER, TRAILER)."""
    yield HEADER, 0
    for batch in batches:
        yield encode_batch(batch, types), batch.num_rows
    yield TRAILER, 0
