"""What a file is: compression wrappers (gzip, bz2, zstd, xz, a zip holding one data file) by
their magic bytes, the data inside by its own magic bytes or shape, the file name breaking ties;
and the reader (sluice/read/readers/) that opens it. What no reader reads is refused, named.
"""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path

from sluice.errors import UnreadableFile
from sluice.read.readers import Reader, Source
from sluice.read.readers.text import wide_encoding

_COMPRESSION = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bz2",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"\xfd7zXZ\x00": "xz",
    b"PK\x03\x04": "zip",
}
_UNSUPPORTED = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
}
_HINT = (
    "supply CSV/TSV, JSON/NDJSON, Parquet, Arrow/Feather, ORC or Excel .xlsx "
    "(optionally gzip, bz2, zstd, xz or zip compressed)"
)


def detect_source(path: Path) -> Source:
    """Unwrap compression by magic bytes; refuse what no reader reads, naming what it is."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if not head:
        raise UnreadableFile("the file is empty", hint="check the producer; nothing to load")
    compression = next((c for m, c in _COMPRESSION.items() if head.startswith(m)), None)
    if compression == "zip":
        return _zip_member(path)
    return Source(path=path, compression=compression, name=path.name)


def _zip_member(path: Path) -> Source:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as exc:
        raise UnreadableFile(
            f"a damaged zip archive or workbook ({exc})", hint="the file is truncated: re-send it"
        ) from exc
    if "[Content_Types].xml" in names and any(n.startswith("xl/") for n in names):
        return Source(path=path, name=path.name)  # an Excel workbook is itself a zip
    data = [n for n in names if not n.endswith("/") and not _hidden(n)]
    if len(data) != 1:
        raise UnreadableFile(
            f"a zip archive with {len(data)} data files ({', '.join(data[:5])})",
            hint="put exactly one data file in each zip, or unzip the files into the inbox",
        )
    return Source(path=path, compression="zip", member=data[0], name=Path(data[0]).name)


def _hidden(name: str) -> bool:
    return name.startswith("__MACOSX/") or Path(name).name.startswith(".")


_READERS = {  # format -> (module under sluice.read.readers, function)
    "delimited": ("delimited", "open_delimited"),
    "json": ("json", "open_json"),
    "parquet": ("columnar", "open_parquet"),
    "arrow": ("columnar", "open_arrow"),
    "orc": ("columnar", "open_orc"),
    "excel": ("excel", "open_excel"),
}
_BINARY_MAGIC = {
    b"PAR1": "parquet",
    b"ARROW1": "arrow",  # Arrow IPC file (Feather v2)
    b"FEA1": "arrow",  # Feather v1
    b"\xff\xff\xff\xff": "arrow",  # Arrow IPC stream (continuation marker)
    b"ORC": "orc",
}
_UTF8_BOM = b"\xef\xbb\xbf"
_JSON_SUFFIXES = {".json", ".ndjson", ".jsonl", ".geojson"}


def reader_for(source: Source) -> Reader:
    """The reader for the data: by content first, by name where content cannot tell."""
    module, function = _READERS[detect_format(source)]
    loaded = importlib.import_module(f"sluice.read.readers.{module}")
    reader: Reader = getattr(loaded, function)
    return reader


def detect_format(source: Source) -> str:
    head = source.head(8192)
    for magic, kind in _BINARY_MAGIC.items():
        if head.startswith(magic):
            return kind
    if head.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        return "excel"  # a workbook (_zip_member hands over a zip only then), or OLE2 .xls
    for magic, what in _UNSUPPORTED.items():
        if head.startswith(magic):
            raise UnreadableFile(f"detected {what}, which Sluice does not read", hint=_HINT)
    if wide_encoding(head):
        return "delimited"  # the delimited reader transcodes; JSON must be UTF-8
    head = head.removeprefix(_UTF8_BOM)
    if b"\x00" in head:
        raise UnreadableFile("binary content (NUL bytes), not text", hint=_HINT)
    first = head.lstrip()[:1]
    if first in (b"[", b"{") and source.suffix not in {".csv", ".tsv", ".txt", ".tab"}:
        return "json"
    if source.suffix in _JSON_SUFFIXES:
        return "json"
    return "delimited"
