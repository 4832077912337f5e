"""sluice.load.pgcopy against a slow, obviously correct encoder written here with struct."""

from __future__ import annotations

import json
import random
import re
import struct
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.contracts import PgType
from sluice.load.pgcopy import HEADER, TRAILER, encode_batch, iter_copy_parts

PG_EPOCH = datetime(2000, 1, 1)
ALL_TYPES: tuple[PgType, ...] = (
    "boolean",
    "bigint",
    "double precision",
    "text",
    "date",
    "timestamp",
    "timestamptz",
    "jsonb",
    "time",
    "numeric",
)
ARROW_TYPE: dict[PgType, pa.DataType] = {
    "boolean": pa.bool_(),
    "bigint": pa.int64(),
    "double precision": pa.float64(),
    "text": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "jsonb": pa.string(),
    "time": pa.time64("us"),
    "numeric": pa.decimal128(38, 10),
}


def ref_numeric(value: Decimal, scale: int) -> bytes:
    """Group the plain decimal digits by four from the decimal point: base-10000 digits."""
    whole, _, fraction = format(value.copy_abs(), "f").partition(".")
    whole = whole.zfill(-(-len(whole) // 4) * 4)
    fraction = fraction.ljust(-(-len(fraction) // 4) * 4, "0")
    digits = [int(group) for group in re.findall("....", whole + fraction)]
    weight = len(whole) // 4 - 1
    while digits and digits[0] == 0:
        digits.pop(0)
        weight -= 1
    while digits and digits[-1] == 0:
        digits.pop()
    sign = 0x4000 if value < 0 else 0
    if not digits:
        weight = sign = 0
    header = struct.pack(">hhHh", len(digits), weight, sign, max(scale, 0))
    return header + struct.pack(f">{len(digits)}h", *digits)


def ref_payload(value: Any, pg_type: PgType, scale: int = 0) -> bytes:
    if pg_type == "boolean":
        return b"\x01" if value else b"\x00"
    if pg_type == "bigint":
        return struct.pack(">q", value)
    if pg_type == "double precision":
        return struct.pack(">d", value)
    if pg_type == "text":
        return str(value).encode("utf-8")
    if pg_type == "date":
        return struct.pack(">i", (value - PG_EPOCH.date()).days)
    if pg_type == "jsonb":
        return b"\x01" + value.encode("utf-8")
    if pg_type == "time":
        seconds = (value.hour * 60 + value.minute) * 60 + value.second
        return struct.pack(">q", seconds * 1_000_000 + value.microsecond)
    if pg_type == "numeric":
        return ref_numeric(value, scale)
    epoch = PG_EPOCH.replace(tzinfo=UTC) if value.tzinfo is not None else PG_EPOCH
    return struct.pack(">q", (value - epoch) // timedelta(microseconds=1))


def reference(batch: pa.RecordBatch, types: Sequence[PgType]) -> bytes:
    """One tuple per row, one field per value, exactly as the PostgreSQL docs describe."""
    columns = [column.to_pylist() for column in batch.columns]
    scales = [getattr(column.type, "scale", 0) for column in batch.columns]
    out = bytearray()
    for i in range(batch.num_rows):
        out += struct.pack(">h", len(types))
        for values, pg_type, scale in zip(columns, types, scales, strict=True):
            if values[i] is None:
                out += struct.pack(">i", -1)
            else:
                payload = ref_payload(values[i], pg_type, scale)
                out += struct.pack(">i", len(payload)) + payload
    return bytes(out)


def assert_matches(batch: pa.RecordBatch, types: Sequence[PgType]) -> None:
    assert encode_batch(batch, types) == reference(batch, types)


def make_batch(columns: dict[str, tuple[PgType, list[Any]]]) -> pa.RecordBatch:
    arrays = [pa.array(values, ARROW_TYPE[t]) for t, values in columns.values()]
    return pa.RecordBatch.from_arrays(arrays, names=list(columns))


def decimals(unscaled: Sequence[int | None], arrow_type: pa.DataType) -> pa.Array:
    """A decimal array holding exactly these unscaled integers (even beyond its precision)."""
    width = arrow_type.byte_width
    data = b"".join((u or 0).to_bytes(width, "little", signed=True) for u in unscaled)
    validity = np.packbits([u is not None for u in unscaled], bitorder="little")
    buffers = [pa.py_buffer(validity.tobytes()), pa.py_buffer(data)]
    return pa.Array.from_buffers(arrow_type, len(unscaled), buffers)


def sample_batch() -> tuple[pa.RecordBatch, tuple[PgType, ...]]:
    """Ten rows of every type, with nulls in every column and one all-null row."""
    ts = datetime(2024, 5, 17, 13, 45, 1, 123456)
    columns: dict[str, tuple[PgType, list[Any]]] = {
        "b": ("boolean", [True, False, None, True, False, True, None, False, True, None]),
        "i": ("bigint", [0, -1, 2**63 - 1, -(2**63), None, 42, 7, None, 1, None]),
        "f": ("double precision", [0.0, -0.0, 1.5, None, float("inf"), -1e300, 3.25, 1e-310,
                                   float("-inf"), None]),
        "t": ("text", ["", "abc", None, "héllo wörld", "日本語テキスト", "🙂", "x" * 300, None,
                       "tab\tnew\nline", None]),
        "d": ("date", [date(2000, 1, 1), date(1999, 12, 31), date(1970, 1, 1), None,
                       date(1, 1, 1), date(9999, 12, 31), date(2024, 2, 29), None,
                       date(1900, 3, 1), None]),
        "ts": ("timestamp", [PG_EPOCH, PG_EPOCH - timedelta(microseconds=1), None, ts,
                             datetime(1969, 7, 20, 20, 17, 40), datetime(1, 1, 1),
                             datetime(9999, 12, 31, 23, 59, 59, 999999), None,
                             datetime(1999, 12, 31, 23, 59, 59, 500000), None]),
        "tz": ("timestamptz", [ts.replace(tzinfo=UTC), None, PG_EPOCH.replace(tzinfo=UTC),
                               datetime(1950, 6, 1, 0, 0, 0, 1, tzinfo=UTC),
                               datetime(1, 1, 1, tzinfo=UTC), None,
                               datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
                               datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                               datetime(1970, 1, 1, tzinfo=UTC), None]),
        "j": ("jsonb", ['{"a": [1, 2.5, null, true]}', None, "[]", '"é🙂"', "null", "0",
                        '{"nested": {"k": "v\\n"}}', None, "{}", None]),
        "tm": ("time", [time(0), time(23, 59, 59, 999999), None, time(12, 0, 0, 1),
                        time(0, 0, 0, 1), time(13, 45, 1, 123456), None, time(6), time(18, 30),
                        None]),
        "n": ("numeric", [Decimal(0), Decimal("-1"), Decimal("0.0000000001"), None,
                          Decimal("9999999999999999999999999999.9999999999"),
                          Decimal("-9999999999999999999999999999.9999999999"),
                          Decimal("-0.0001"), None, Decimal("1234.5"), None]),
    }  # fmt: skip
    return make_batch(columns), tuple(t for t, _ in columns.values())


def test_header_and_trailer_are_the_documented_bytes() -> None:
    assert HEADER == b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
    assert len(HEADER) == 19
    assert TRAILER == struct.pack(">h", -1)


def test_known_bytes_independent_of_the_reference() -> None:
    batch = make_batch({
        "b": ("boolean", [True]),
        "i": ("bigint", [1]),
        "f": ("double precision", [1.0]),
        "t": ("text", ["é"]),
        "d": ("date", [date(2000, 1, 2)]),
        "ts": ("timestamp", [datetime(2000, 1, 1, 0, 0, 1)]),
        "tz": ("timestamptz", [None]),
        "j": ("jsonb", ["[1]"]),
        "tm": ("time", [time(0, 0, 1, 2)]),
        "n": ("numeric", [Decimal("1234.5")]),
    })  # fmt: skip
    expected = (
        b"\x00\x0a"
        + b"\x00\x00\x00\x01\x01"
        + b"\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x01"
        + b"\x00\x00\x00\x08\x3f\xf0\x00\x00\x00\x00\x00\x00"
        + b"\x00\x00\x00\x02\xc3\xa9"
        + b"\x00\x00\x00\x04\x00\x00\x00\x01"
        + b"\x00\x00\x00\x08\x00\x00\x00\x00\x00\x0f\x42\x40"
        + b"\xff\xff\xff\xff"
        + b"\x00\x00\x00\x04\x01[1]"
        + b"\x00\x00\x00\x08\x00\x00\x00\x00\x00\x0f\x42\x42"
        + b"\x00\x00\x00\x0c\x00\x02\x00\x00\x00\x00\x00\x0a\x04\xd2\x13\x88"
    )
    assert encode_batch(batch, ALL_TYPES) == expected


def test_every_type_with_nulls_matches_reference() -> None:
    batch, types = sample_batch()
    assert_matches(batch, types)


def test_every_type_without_nulls_matches_reference() -> None:
    batch, types = sample_batch()
    clean = batch.take(pa.array([0, 1, 5, 6]))
    clean = pa.RecordBatch.from_arrays(
        [c.fill_null(c.drop_null()[0]) for c in clean.columns], names=clean.schema.names
    )
    assert all(c.null_count == 0 for c in clean.columns)
    assert_matches(clean, types)


@pytest.mark.parametrize(("start", "length"), [(3, 5), (0, 1), (9, 1), (1, 9), (4, 0)])
def test_sliced_batches(start: int, length: int) -> None:
    batch, types = sample_batch()
    sliced = batch.slice(start, length)
    assert_matches(sliced, types)
    before, encoded = encode_batch(batch.slice(0, start), types), encode_batch(sliced, types)
    assert encode_batch(batch, types)[len(before) : len(before) + len(encoded)] == encoded


def test_columns_with_different_offsets_and_chunked_tables() -> None:
    batch, types = sample_batch()
    arrays = [column.slice(i % 7, 4) for i, column in enumerate(batch.columns)]
    assert_matches(pa.RecordBatch.from_arrays(arrays, names=batch.schema.names), types)
    table = pa.Table.from_batches([batch.slice(0, 3), batch.slice(3, 7), batch.slice(2, 2)])
    for piece in table.slice(1, 8).to_batches():
        assert_matches(piece, types)


def test_empty_batch() -> None:
    batch, types = sample_batch()
    assert encode_batch(batch.slice(0, 0), types) == b""
    empty = pa.RecordBatch.from_arrays([pa.array([], ARROW_TYPE[t]) for t in ALL_TYPES],
                                       names=list(ALL_TYPES))  # fmt: skip
    assert encode_batch(empty, ALL_TYPES) == b""
    assert b"".join(c for c, _ in iter_copy_parts([empty], ALL_TYPES)) == HEADER + TRAILER


def test_large_string_and_time_zones() -> None:
    instant = datetime(1987, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    text = pa.array(["ünïcode", None, "", "plain"], pa.large_string())
    batch = pa.RecordBatch.from_arrays(
        [
            text,
            pa.array([instant] * 4, pa.timestamp("us", tz="UTC")),
            pa.array([instant] * 4, pa.timestamp("us", tz="Europe/Paris")),
            pa.array([instant] * 4, pa.timestamp("us", tz="-05:00")),
        ],
        names=["t", "utc", "paris", "minus5"],
    )
    types: tuple[PgType, ...] = ("text", "timestamptz", "timestamptz", "timestamptz")
    assert_matches(batch.slice(1), types)
    encoded = encode_batch(batch.slice(0, 1), types)
    field = encoded[-12:]
    assert encoded[-24:-12] == field and encoded[-36:-24] == field  # same instant, any zone


def test_null_slot_with_bytes_behind_it_is_still_null() -> None:
    """Arrow allows a null string slot to span bytes; they must not leak into the output."""
    offsets = pa.py_buffer(np.array([0, 2, 5, 6], dtype=np.int32))
    validity = pa.py_buffer(np.packbits([1, 0, 1], bitorder="little"))
    text = pa.Array.from_buffers(pa.string(), 3, [validity, offsets, pa.py_buffer(b"abXYZc")])
    assert text.to_pylist() == ["ab", None, "c"]
    batch = pa.RecordBatch.from_arrays([text], names=["t"])
    assert encode_batch(batch, ["text"]) == reference(batch, ["text"])
    assert b"XYZ" not in encode_batch(batch, ["text"])


def test_iter_copy_parts_frames_each_batch_and_says_how_many_rows_each_chunk_holds() -> None:
    batch, types = sample_batch()
    pieces = [batch.slice(0, 4), batch.slice(4, 0), batch.slice(4)]
    parts = list(iter_copy_parts(iter(pieces), types))
    chunks = [chunk for chunk, _ in parts]
    assert chunks[0] == HEADER and chunks[-1] == TRAILER
    assert chunks[1:-1] == [reference(p, types) for p in pieces]
    assert b"".join(chunks[1:-1]) == reference(batch, types)
    assert [rows for _, rows in parts] == [0, 4, 0, batch.num_rows - 4, 0]


@pytest.mark.parametrize(
    ("arrow_type", "pg_type"),
    [
        (pa.int32(), "bigint"),
        (pa.float32(), "double precision"),
        (pa.int64(), "double precision"),
        (pa.binary(), "text"),
        (pa.int64(), "text"),
        (pa.date64(), "date"),
        (pa.timestamp("ns"), "timestamp"),
        (pa.timestamp("ms"), "timestamp"),
        (pa.timestamp("us", tz="UTC"), "timestamp"),
        (pa.timestamp("us"), "timestamptz"),
        (pa.timestamp("ns", tz="UTC"), "timestamptz"),
        (pa.string(), "boolean"),
        (pa.int64(), "numeric"),
        (pa.float64(), "numeric"),
        (pa.string(), "numeric"),
        (pa.binary(), "jsonb"),
        (pa.large_binary(), "jsonb"),
        (pa.int64(), "jsonb"),
        (pa.time64("ns"), "time"),
        (pa.int64(), "time"),
        (pa.timestamp("us"), "time"),
        (pa.duration("us"), "time"),
        (pa.string(), "interval"),
    ],
)
def test_unexpected_arrow_type_raises_type_error(arrow_type: pa.DataType, pg_type: str) -> None:
    batch = pa.RecordBatch.from_arrays([pa.array([None], arrow_type)], names=["col"])
    with pytest.raises(TypeError, match=r"column 'col'.*cast"):
        encode_batch(batch, [pg_type])  # type: ignore[list-item]


def test_type_count_must_match_columns() -> None:
    batch, types = sample_batch()
    with pytest.raises(ValueError, match="10 columns"):
        encode_batch(batch, types[:-1])


def random_column(rng: np.random.Generator, pg_type: PgType, n: int) -> pa.Array:
    """n random values (with random nulls) of the Arrow type expected for pg_type."""
    mask = rng.random(n) < rng.choice([0.0, 0.3, 1.0])
    if pg_type in ("text", "jsonb"):
        alphabet = list("abcxyz é€🙂\t,\"'\\")
        words = ["".join(rng.choice(alphabet, size=rng.integers(0, 12))) for _ in range(n)]
        if pg_type == "jsonb":
            words = [json.dumps({"w": w, "n": len(w)}) for w in words]
        return pa.array(words, rng.choice([pa.string(), pa.large_string()]), mask=mask)
    if pg_type == "time":
        return pa.array(rng.integers(0, 86_400_000_000, n), pa.int64(), mask=mask).view(
            pa.time64("us")
        )
    if pg_type == "numeric":
        return random_decimals(rng, n, mask)
    if pg_type == "boolean":
        return pa.array(rng.random(n) < 0.5, mask=mask)
    if pg_type == "double precision":
        return pa.array(rng.standard_normal(n) * 10.0 ** rng.integers(-300, 300, n), mask=mask)
    if pg_type == "date":
        return pa.array(rng.integers(-719_162, 2_932_896, n, dtype=np.int32), pa.int32(),
                        mask=mask).view(pa.date32())  # fmt: skip
    if pg_type == "bigint":
        return pa.array(rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64), mask=mask)
    micros = rng.integers(-62_135_596_800 * 10**6, 253_402_300_799 * 10**6, n, dtype=np.int64)
    tz = "Asia/Kolkata" if pg_type == "timestamptz" else None
    return pa.array(micros, pa.int64(), mask=mask).view(pa.timestamp("us", tz=tz))


def random_decimals(rng: np.random.Generator, n: int, mask: np.ndarray) -> pa.Array:
    """n random decimals of a random width, precision and scale (negative, or above the
    precision, included), with as many digits as the precision allows, or fewer."""
    make, widest = [(pa.decimal32, 9), (pa.decimal64, 18), (pa.decimal128, 38),
                    (pa.decimal256, 76)][rng.integers(0, 4)]  # fmt: skip
    precision = int(rng.integers(1, widest + 1))
    arrow_type = make(precision, int(rng.integers(-3, precision + 4)))
    py = random.Random(int(rng.integers(2**32)))
    unscaled = [py.choice([1, -1]) * py.randrange(10 ** py.randint(0, precision)) for _ in range(n)]
    return decimals([None if m else u for u, m in zip(unscaled, mask, strict=True)], arrow_type)


@pytest.mark.parametrize("seed", range(60))
def test_random_batches_match_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    types: list[PgType] = [rng.choice(ALL_TYPES) for _ in range(rng.integers(1, 9))]
    n = int(rng.integers(0, 200))
    arrays = [random_column(rng, t, n) for t in types]
    batch = pa.RecordBatch.from_arrays(arrays, names=[f"c{i}" for i in range(len(types))])
    start = int(rng.integers(0, n + 1))
    sliced = batch.slice(start, int(rng.integers(0, n - start + 1)))
    assert_matches(batch, types)
    assert_matches(sliced, types)


VALUES: dict[PgType, st.SearchStrategy[Any]] = {
    "boolean": st.booleans(),
    "bigint": st.integers(-(2**63), 2**63 - 1),
    "double precision": st.floats(),
    "text": st.text(),
    "date": st.dates(),
    "timestamp": st.datetimes(),
    "timestamptz": st.datetimes(timezones=st.just(UTC)),
    "jsonb": st.text().map(json.dumps),
    "time": st.times(),
    "numeric": st.decimals(
        min_value=Decimal("-9999999999999999999999999999.9999999999"),
        max_value=Decimal("9999999999999999999999999999.9999999999"),
        places=10,
    ),
}


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[PgType], list[list[Any]], int, int]:
    """Random column types, their values (nulls included) and a slice of the rows.

    The strategy draws plain Python values only: converting them to Arrow happens in the
    test, so nothing pyarrow does on first use (lazy imports) runs inside the strategy.
    """
    types = draw(st.lists(st.sampled_from(ALL_TYPES), min_size=1, max_size=8))
    n = draw(st.integers(0, 30))
    columns = [draw(st.lists(st.none() | VALUES[t], min_size=n, max_size=n)) for t in types]
    start = draw(st.integers(0, n))
    return types, columns, start, draw(st.integers(0, n - start))


@settings(max_examples=200, deadline=None)
@given(batches())
def test_hypothesis_batches_match_reference(
    case: tuple[list[PgType], list[list[Any]], int, int],
) -> None:
    types, columns, start, length = case
    arrays = [pa.array(values, ARROW_TYPE[t]) for t, values in zip(types, columns, strict=True)]
    batch = pa.RecordBatch.from_arrays(arrays, names=[f"c{i}" for i in range(len(types))])
    assert_matches(batch.slice(start, length), types)


def test_type_error_names_the_cast_needed() -> None:
    nanos = pa.RecordBatch.from_arrays([pa.array([1_000], pa.int64()).view(pa.time64("ns"))],
                                       names=["at"])  # fmt: skip
    with pytest.raises(TypeError, match=r"column 'at'.*time64\[ns\].*'time'.*time64\(\"us\"\)"):
        encode_batch(nanos, ["time"])
    floats = pa.RecordBatch.from_arrays([pa.array([1.5])], names=["x"])
    with pytest.raises(TypeError, match=r"'numeric'; cast it first, to decimal128\(p, s\)"):
        encode_batch(floats, ["numeric"])


NUMERIC_BYTES = [  # (decimal type, unscaled value, the field written out by hand, in hex)
    (pa.decimal128(12, 3), 0, "0000 0000 0000 0003"),  # 0.000: no digit, weight 0
    (pa.decimal128(12, 3), -1, "0001 ffff 4000 0003 000a"),  # -0.001 = -10 * 10000**-1
    (pa.decimal128(6, 4), -1, "0001 ffff 4000 0004 0001"),  # -0.0001
    (pa.decimal128(10, 9), 1, "0001 fffd 0000 0009 03e8"),  # 1e-9 = 1000 * 10000**-3
    (pa.decimal128(12, 3), 123456, "0002 0000 0000 0003 007b 11d0"),  # 123.456 = 123|4560
    (pa.decimal128(12, 3), 10_000_000, "0001 0001 0000 0003 0001"),  # 10000.000
    (pa.decimal128(10, 0), 100_020_000, "0002 0002 0000 0000 0001 0002"),  # 1|0002|0000
    (pa.decimal128(3, -2), -123, "0002 0001 4000 0000 0001 08fc"),  # -12300 = -1|2300, dscale 0
    (pa.decimal128(3, -5), 1, "0001 0001 0000 0000 000a"),  # 1E+5 = 10 * 10000
    (pa.decimal128(38, 0), 10**37, "0001 0009 0000 0000 000a"),  # 10 * 10000**9
    (pa.decimal128(38, 10), 10**38 - 1,  # 28 nines . 10 nines = 9999 x 9 (7 whole) | 9900
     "000a 0006 0000 000a" + " 270f" * 9 + " 26ac"),
    (pa.decimal256(76, 0), -(10**75), "0001 0012 4000 0000 03e8"),  # -1000 * 10000**18
]  # fmt: skip


@pytest.mark.parametrize(("arrow_type", "unscaled", "field"), NUMERIC_BYTES)
def test_numeric_known_bytes(arrow_type: pa.DataType, unscaled: int, field: str) -> None:
    payload = bytes.fromhex(field)
    batch = pa.RecordBatch.from_arrays([decimals([unscaled], arrow_type)], names=["n"])
    assert (
        encode_batch(batch, ["numeric"]) == b"\x00\x01" + struct.pack(">i", len(payload)) + payload
    )
    assert ref_numeric(batch.column(0)[0].as_py(), arrow_type.scale) == payload


EDGES = [0, 1, -1, 9999, 10_000, -10_000, 99_990_000, 10**8, 123_456_789, -(10**12) + 1]


@pytest.mark.parametrize(
    "arrow_type",
    [pa.decimal32(9, 2), pa.decimal64(18, 0), pa.decimal64(18, 18), pa.decimal128(12, 3),
     pa.decimal128(38, 10), pa.decimal128(38, 0), pa.decimal128(38, 38), pa.decimal128(5, -3),
     pa.decimal128(1, 9), pa.decimal256(76, 0), pa.decimal256(76, 38), pa.decimal256(50, 60)],
)  # fmt: skip
def test_numeric_edges_match_reference(arrow_type: pa.DataType) -> None:
    """Largest and smallest values of the precision, of the storage width (beyond the
    precision: Arrow does not check it), powers of 10000 and a carry out of a dropped word."""
    top, bits = 10**arrow_type.precision - 1, arrow_type.byte_width * 8
    extremes = [top, -top, 2 ** (bits - 1) - 1, -(2 ** (bits - 1)), None]
    words = [s * 2**k for k in range(64, bits, 64) for s in (1, -1)] + [-(2**63), 2**63]
    values = [
        v
        for v in EDGES + extremes + words
        if v is None or -(2 ** (bits - 1)) <= v < 2 ** (bits - 1)
    ]
    column = decimals(values, arrow_type)
    for piece in [column, column.slice(3), column.slice(len(values) - 1), column.slice(2, 0)]:
        assert_matches(pa.RecordBatch.from_arrays([piece], names=["n"]), ["numeric"])
    for value in values[:-1]:  # alone: every high word may be dropped
        assert_matches(pa.RecordBatch.from_arrays([decimals([value], arrow_type)], ["n"]),
                       ["numeric"])  # fmt: skip


def test_numeric_all_zero_or_null_columns() -> None:
    for arrow_type in (pa.decimal128(12, 3), pa.decimal128(8, 0), pa.decimal256(40, -2)):
        for values in ([0, 0], [None, None], [0, None, 0]):
            batch = pa.RecordBatch.from_arrays([decimals(values, arrow_type)], names=["n"])
            assert_matches(batch, ["numeric"])


def test_time32_is_converted_exactly() -> None:
    seconds = pa.array([0, 1, 86_399, None], pa.int32())
    micros = pa.array([0, 1_000_000, 86_399_000_000, None], pa.int64()).view(pa.time64("us"))
    expected = encode_batch(pa.RecordBatch.from_arrays([micros], ["t"]), ["time"])
    for unit, factor in (("s", 1), ("ms", 1_000)):
        column = pc.multiply(seconds, pa.scalar(factor, pa.int32())).view(pa.time32(unit))
        assert encode_batch(pa.RecordBatch.from_arrays([column], ["t"]), ["time"]) == expected


def test_jsonb_is_version_byte_then_text() -> None:
    text = pa.array(['{"a": 1}', None, ""], pa.large_string())
    batch = pa.RecordBatch.from_arrays([text, text.cast(pa.string())], names=["j", "t"])
    encoded = encode_batch(batch, ["jsonb", "text"])
    first = b"\x00\x02" + b"\x00\x00\x00\x09\x01" + b'{"a": 1}' + b"\x00\x00\x00\x08" + b'{"a": 1}'
    assert encoded.startswith(first)
    assert encoded == reference(batch, ["jsonb", "text"])
    offsets = pa.py_buffer(np.array([0, 2, 5, 6], dtype=np.int32))
    validity = pa.py_buffer(np.packbits([1, 0, 1], bitorder="little"))
    spanning = pa.Array.from_buffers(pa.string(), 3, [validity, offsets, pa.py_buffer(b"[]XYZ1")])
    encoded = encode_batch(pa.RecordBatch.from_arrays([spanning], ["j"]), ["jsonb"])
    assert encoded == b"\x00\x01\x00\x00\x00\x03\x01[]" + b"\x00\x01\xff\xff\xff\xff" + (
        b"\x00\x01\x00\x00\x00\x02\x011"
    )
