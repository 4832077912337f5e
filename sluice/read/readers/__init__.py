"""Format readers: each opens one kind of file as source column names and Arrow record batches.

A reader is `open_<format>(source, rules, batch_rows) -> Opened`. Its batches all share one
schema, in the order of `Opened.names`, at most about `batch_rows` rows each, so memory stays
bounded by the batch, never the file. Text formats yield text columns (types are decided later
by `schema.infer` over the whole file); typed formats (Parquet, Arrow, ORC, Excel) yield their
own Arrow types. A column holding JSON text (nested values) is named in `Opened.json_columns`.
What a reader guessed (the header's line, a footer, the sheet...) and what the file says besides
its rows go to `Opened.notes`, filled as the batches stream: a footer is known at the end.
Readers raise `UnreadableFile` with the line (and column) where they can tell.
"""

from __future__ import annotations

import bz2
import lzma
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pyarrow as pa

from sluice.contracts import FileMeta, Guess
from sluice.datasets import DatasetRules

_ARROW_CODECS = {"gzip", "zstd"}  # Arrow's own streams; bz2, xz and zip through Python


@dataclass(frozen=True, slots=True)
class Source:
    """Where a reader's bytes come from: a file, maybe compressed, maybe one member of a zip."""

    path: Path
    compression: str | None = None  # "gzip" | "bz2" | "zstd" | "xz" | "zip" | None
    member: str | None = None  # with "zip": the data file inside
    name: str = ""  # the data file's own name (the zip member's, or the file's)

    def open(self) -> IO[bytes]:
        """The decompressed bytes as a binary file object (also a context manager)."""
        if self.compression in _ARROW_CODECS:
            return pa.input_stream(str(self.path), compression=self.compression)  # type: ignore[no-any-return]
        if self.compression == "bz2":
            return bz2.open(self.path, "rb")
        if self.compression == "xz":
            return lzma.open(self.path, "rb")
        if self.compression == "zip":
            return zipfile.ZipFile(self.path).open(self.member or "")
        return self.path.open("rb")

    def head(self, size: int = 65536) -> bytes:
        with self.open() as stream:
            return stream.read(size)

    @property
    def suffix(self) -> str:
        """The data file's format suffix, compression suffixes removed: `a.csv.gz` -> `.csv`."""
        parts = [p.lower() for p in Path(self.name or self.path.name).suffixes]
        while parts and parts[-1] in {".gz", ".gzip", ".bz2", ".zst", ".zstd", ".xz", ".zip"}:
            parts.pop()
        return parts[-1] if parts else ""


@dataclass(slots=True)
class Notes:
    """A reader's guesses about a file and the file's metadata, collected as it reads."""

    guesses: list[Guess] = field(default_factory=list)
    preamble: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()
    footer: tuple[str, ...] = ()

    def guess(self, what: str, detail: str, rule: str, *, notable: bool = True) -> None:
        self.guesses.append(Guess(what, detail, rule, notable))

    def meta(self) -> FileMeta:
        return FileMeta(preamble=self.preamble, fields=self.fields, footer=self.footer)


@dataclass(slots=True)
class Opened:
    """A reader's result: the source column names and the batches, lazily."""

    names: list[str]
    batches: Iterator[pa.RecordBatch]
    json_columns: frozenset[str] = field(default_factory=frozenset)  # source names
    notes: Notes = field(default_factory=Notes)


Reader = Callable[[Source, DatasetRules, int], Opened]
