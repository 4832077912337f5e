"""JSON reader: an array of objects, NDJSON or one object, streamed twice as text columns.

The first pass collects the column set over the whole file (a key first seen on the last line is
still a column) and which columns hold nested values; the second yields the batches. Neither pass
holds more than a chunk of text and one batch of records, so memory follows `batch_rows`, not the
file. Nested objects flatten to `parent.child` up to `rules.json_depth` levels; arrays, deeper
objects and keys that are sometimes nested and sometimes not become columns of compact JSON text,
named in `Opened.json_columns`. Scalars stay text: numbers as their literal, booleans as
`true`/`false`; only JSON null (and a missing key) is null, the rules' markers do not apply.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from operator import attrgetter
from typing import IO, Any

import pyarrow as pa

from sluice.datasets import DatasetRules
from sluice.errors import UnreadableFile
from sluice.read.readers import Opened, Source

Record = dict[str, Any]

_CHUNK = 1 << 20
_SPACE = re.compile(r"[ \t\n\r]*")
_WS = " \t\r"  # stripped around an NDJSON line (its "\n" is already gone)
_LINE_SUFFIXES = {".ndjson", ".jsonl"}
_NULL, _SCALAR, _OBJECT, _ARRAY = 0, 1, 2, 4
_KINDS: dict[type, int] = {dict: _OBJECT, list: _ARRAY, type(None): _NULL}
_SHAPES = 4096  # record shapes remembered by the first pass
_HINT_SYNTAX = "fix the JSON there (an array of objects, or one object per line) and replay"


def open_json(source: Source, rules: DatasetRules, batch_rows: int) -> Opened:
    """Every column as text; nested values flattened to `json_depth`, the rest as JSON text."""
    layout = _survey(_records(source, _SURVEY), max(rules.json_depth, 1))
    decoder = _EXACT if layout.json else _FAST
    batches = _batches(_records(source, decoder), layout, max(batch_rows, 1))
    return Opened(names=list(layout.names), batches=batches, json_columns=layout.json)


# Decoding: literals kept, NaN and Infinity refused ------------------------------------------


class _Float(float):
    """A JSON number with a fraction or exponent that keeps its literal (`1e3` stays `1e3`)."""

    __slots__ = ("text",)
    text: str


def _parse_float(literal: str) -> _Float:
    number = _Float(literal)
    number.text = literal
    return number


class _Constant(Exception):
    """NaN or Infinity (the only arg) met: raised out of the decoder, reported with its place."""


def _reject(literal: str) -> float:
    raise _Constant(literal)


# Numbers with a fraction or exponent decode to their literal: as `str` when no column holds
# JSON text (a third faster), else as `_Float`, which JSON text renders as a number again.
_SURVEY = json.JSONDecoder(parse_constant=_reject)
_FAST = json.JSONDecoder(parse_float=str, parse_constant=_reject)
_EXACT = json.JSONDecoder(parse_float=_parse_float, parse_constant=_reject)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_TEXT: dict[type, Callable[[Any], str]] = {
    str: str,
    int: int.__repr__,
    bool: {True: "true", False: "false"}.__getitem__,
    _Float: attrgetter("text"),
}


# The text window: chunks of decoded text, positions reported as line and column -----------


class _Window:
    """Decoded text read in chunks; `pos` is the reader's place in `text`."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.text = ""
        self.pos = 0
        self._line = 0  # line breaks before text[0]
        self._column = 0  # characters of the current line before text[0]

    def fill(self) -> bool:
        """Drop the text before `pos` and append a chunk; False at the end of the file."""
        data = self._stream.read(_CHUNK)
        try:
            decoded = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise self._bad_utf8(exc) from None
        if not data:
            return False  # positions stay as they were, for the caller's error message
        self._drop()
        self.text += decoded
        return True

    def _drop(self) -> None:
        text, pos = self.text, self.pos
        breaks = text.count("\n", 0, pos)
        self._column = pos - text.rfind("\n", 0, pos) - 1 if breaks else self._column + pos
        self._line += breaks
        self.text, self.pos = text[pos:], 0

    def where(self, pos: int) -> str:
        """`line L, column C` (1-based) of a position in `text`."""
        breaks = self.text.count("\n", 0, pos)
        column = pos - self.text.rfind("\n", 0, pos) if breaks else self._column + pos + 1
        return f"line {self._line + breaks + 1}, column {column}"

    def _bad_utf8(self, exc: UnicodeDecodeError) -> UnreadableFile:
        self.text += exc.object[: exc.start].decode("utf-8", errors="replace")  # the good part
        return UnreadableFile(
            f"invalid UTF-8 at {self.where(len(self.text))}",
            hint="the file is not UTF-8: re-encode it as UTF-8",
        )

    def peek(self) -> str:
        """The next character that is not whitespace ("" at the end), `pos` moved to it."""
        while True:
            match = _SPACE.match(self.text, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.fill():
                return ""

    def decode(self, decoder: json.JSONDecoder) -> object:
        """The JSON value at `pos`, reading more while it runs past the end of the text."""
        while True:
            try:
                value, self.pos = decoder.raw_decode(self.text, self.pos)
                return value
            except json.JSONDecodeError as exc:
                if not (self._cut(exc) and self.fill()):
                    raise _malformed(self.where(exc.pos), exc.msg) from None
            except _Constant as exc:
                raise _constant(exc.args[0], self, self.pos) from None

    def _cut(self, exc: json.JSONDecodeError) -> bool:
        """Whether the error may only be the chunk's end cutting the value short."""
        return exc.pos >= len(self.text) - 32 or exc.msg.startswith("Unterminated string")

    def lines(self) -> tuple[int, int] | None:
        """The span of whole lines ready in `text` (at the end, the rest), consumed."""
        while (stop := self.text.rfind("\n", self.pos) + 1) == 0 and self.fill():
            pass
        stop = stop or len(self.text)
        if stop <= self.pos:
            return None
        start, self.pos = self.pos, stop
        return start, stop


# Records: the three shapes --------------------------------------------------------------


def _records(source: Source, decoder: json.JSONDecoder) -> Iterator[Record]:
    with source.open() as stream:
        window = _Window(stream)
        first = window.peek()
        if first == "[":
            yield from _array(window, decoder)
        elif first == "{" and _one_per_line(window, source.suffix):
            yield from _ndjson(window, decoder)
        else:
            yield from _document(window, decoder)


def _one_per_line(window: _Window, suffix: str) -> bool:
    """NDJSON by name, or when the first line holds one whole value (else a pretty object)."""
    if suffix in _LINE_SUFFIXES:
        return True
    while (end := window.text.find("\n", window.pos)) < 0 and window.fill():
        pass
    line = window.text[window.pos : end if end >= 0 else None].strip(_WS)
    try:
        return _SURVEY.raw_decode(line)[1] == len(line)
    except (json.JSONDecodeError, _Constant):
        return False


def _array(window: _Window, decoder: json.JSONDecoder) -> Iterator[Record]:
    window.pos += 1  # the "["
    if window.peek() == "]":
        window.pos += 1
    else:
        yield from _elements(window, decoder)
    if window.peek():
        raise UnreadableFile(
            f"unexpected content after the JSON array at {window.where(window.pos)}",
            hint="remove what follows the array's closing ]",
        )


def _elements(window: _Window, decoder: json.JSONDecoder) -> Iterator[Record]:
    while True:
        yield _record(window, decoder)
        after = window.peek()
        if after == "]":
            window.pos += 1
            return
        if after != ",":
            problem = "Expecting ',' delimiter" if after else "the array is not closed with ]"
            raise _malformed(window.where(window.pos), problem)
        window.pos += 1


def _document(window: _Window, decoder: json.JSONDecoder) -> Iterator[Record]:
    """One object, pretty-printed or not (or several, one after the other)."""
    while window.peek():
        yield _record(window, decoder)


def _record(window: _Window, decoder: json.JSONDecoder) -> Record:
    window.peek()
    start = window.pos
    value = window.decode(decoder)
    if type(value) is not dict:
        raise _not_record(value, window.where(start))
    return value


def _ndjson(window: _Window, decoder: json.JSONDecoder) -> Iterator[Record]:
    while span := window.lines():
        start, stop = span
        at = start
        for line in window.text[start:stop].split("\n"):
            if (record := _line_record(window, decoder, line, at)) is not None:
                yield record
            at += len(line) + 1


def _line_record(window: _Window, decoder: json.JSONDecoder, line: str, at: int) -> Record | None:
    """The object on one NDJSON line (None when blank); `at` is where the line starts."""
    text = line.strip(_WS)
    if not text:
        return None
    at += len(line) - len(line.lstrip(_WS))
    try:
        value, end = decoder.raw_decode(text)
    except json.JSONDecodeError as exc:
        raise _malformed(window.where(at + exc.pos), exc.msg) from None
    except _Constant as exc:
        raise _constant(exc.args[0], window, at) from None
    if end != len(text):
        raise _malformed(window.where(at + end), "Extra data")
    if type(value) is not dict:
        raise _not_record(value, window.where(at))
    return value


# Errors ----------------------------------------------------------------------------------

_CONSTANT = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)', re.DOTALL)
_KIND_NAMES = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def _malformed(where: str, problem: str) -> UnreadableFile:
    return UnreadableFile(f"malformed JSON at {where}: {problem}", hint=_HINT_SYNTAX)


def _constant(literal: str, window: _Window, start: int) -> UnreadableFile:
    """The first NaN/Infinity outside a string from `start` is the one the decoder refused."""
    found = (m for m in _CONSTANT.finditer(window.text, start) if m.group(1))
    match = next(found, None)
    pos = match.start(1) if match else start
    return UnreadableFile(
        f"{literal} is not a JSON value, at {window.where(pos)}",
        hint="JSON has no NaN or Infinity: write null (or a quoted string) instead",
    )


def _not_record(value: object, where: str) -> UnreadableFile:
    kind = _KIND_NAMES.get(type(value), "a number")
    return UnreadableFile(
        f"expected JSON objects (records), found {kind} at {where}",
        hint="supply a JSON array of objects, NDJSON (one object per line) or one object",
    )


# Pass 1: the column layout ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Layout:
    """Columns in first-seen order; which hold JSON text; which object paths flatten."""

    names: tuple[str, ...]
    json: frozenset[str]
    expand: frozenset[str]


class _Survey:
    """Each dotted path seen, the kinds of value it held, and its children in first-seen order.

    Records mostly repeat a few shapes (keys and value types), and a known shape teaches
    nothing new: only the nested objects inside it are looked at again.
    """

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.kinds: dict[str, int] = {}
        self.children: dict[str | None, list[str]] = {}
        self._shapes: set[tuple[object, ...]] = set()

    def note(self, record: Record, parent: str | None = None, level: int = 1) -> None:
        types = tuple(map(type, record.values()))
        shape = (parent, tuple(record), types)
        if shape not in self._shapes:
            if len(self._shapes) >= _SHAPES:
                self._shapes.clear()
            self._shapes.add(shape)
            self._learn(record, parent)
        if dict in types and level < self.depth:
            prefix = "" if parent is None else parent + "."
            for key, value in record.items():
                if type(value) is dict:
                    self.note(value, prefix + key, level + 1)

    def _learn(self, record: Record, parent: str | None) -> None:
        prefix = "" if parent is None else parent + "."
        for key, value in record.items():
            name = prefix + key
            kind = _KINDS.get(type(value), _SCALAR)
            seen = self.kinds.get(name)
            if seen is None:
                self.children.setdefault(parent, []).append(name)
            self.kinds[name] = kind if seen is None else seen | kind


def _survey(records: Iterator[Record], depth: int) -> _Layout:
    survey = _Survey(depth)
    count = 0
    for record in records:
        survey.note(record)
        count += 1
    if not count:
        raise UnreadableFile("no records: the JSON holds no objects", hint="nothing to load")
    expand: set[str] = set()
    names = tuple(dict.fromkeys(_columns(survey, None, 1, expand)))
    if not names:
        raise UnreadableFile("the JSON records have no fields", hint="nothing to load")
    json_names = frozenset(n for n in names if survey.kinds[n] & (_OBJECT | _ARRAY))
    return _Layout(names=names, json=json_names, expand=frozenset(expand))


def _columns(survey: _Survey, parent: str | None, level: int, expand: set[str]) -> Iterator[str]:
    """Depth first; a path flattens when it only ever held objects (or null) above the depth."""
    for name in survey.children.get(parent, ()):
        flat = survey.kinds[name] == _OBJECT and level < survey.depth
        inner = list(_columns(survey, name, level + 1, expand)) if flat else []
        if inner:
            expand.add(name)
            yield from inner
        else:
            yield name  # a scalar, an array, too deep, mixed, or an object that stayed `{}`


# Pass 2: the batches ---------------------------------------------------------------------


def _batches(
    records: Iterator[Record], layout: _Layout, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    schema = pa.schema([pa.field(name, pa.string()) for name in layout.names])
    while chunk := list(islice(records, batch_rows)):
        arrays = _arrays(chunk, layout)
        missing = pa.nulls(len(chunk), pa.string())
        columns = [arrays.get(name, missing) for name in layout.names]
        yield pa.RecordBatch.from_arrays(columns, schema=schema)


def _arrays(records: list[Record], layout: _Layout) -> dict[str, pa.Array]:
    """A text array for each column the records have (a column none of them has is absent)."""
    cells: dict[str, list[str | None]] = {}
    for row, record in enumerate(records):
        _fill(record, row, "", cells, layout, len(records))
    return {name: pa.array(values, pa.string()) for name, values in cells.items()}


def _fill(
    record: Record,
    row: int,
    prefix: str,
    cells: dict[str, list[str | None]],
    layout: _Layout,
    size: int,
) -> None:
    """Set the record's cells in `row`; a missing key or null leaves the cell null."""
    for key, value in record.items():
        if value is None:
            continue
        name = prefix + key
        if name in layout.expand:
            _fill(value, row, name + ".", cells, layout, size)
            continue
        column = cells.get(name)
        if column is None:
            cells[name] = column = [None] * size
        column[row] = _dump(value) if name in layout.json else _TEXT[type(value)](value)


def _dump(value: object) -> str | None:
    """Compact JSON text (None stays null)."""
    if value is None:
        return None
    try:
        return _ENCODER.encode(value)
    except ValueError as exc:  # a number beyond float range (1e400) in a nested value
        raise UnreadableFile(
            f"a nested number does not fit a float ({exc})",
            hint="quote very large numbers as strings",
        ) from None
