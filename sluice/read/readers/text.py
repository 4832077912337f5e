"""Text decoding for the delimited reader: encoding detection, a streaming UTF-8 recoder, lines.

The encoding is the dataset's `encoding` rule, else a BOM, else UTF-16 by its NUL pattern, else
UTF-8 if the first 64 KB are UTF-8, else cp1252 (Latin-1's printable superset). A file that is
plain ASCII for its first 64 KB is decided at its first non-ASCII byte, wherever that is: valid
UTF-8 there means UTF-8, anything else means cp1252. Before that byte the file is ASCII, which
both encodings read the same, so nothing read so far changes; the check is one `isascii()` per
block, and a file needs no second pass.

Where the rows start (the delimiter, metadata lines, the header) is `sluice.read.readers.layout`'s.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, cast

from sluice.read.readers import Source

HEAD_BYTES = 65536
_MAX_HEAD = 1 << 24  # a header line longer than 64 KB (thousands of columns) reads up to this
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")  # physical lines, as pyarrow counts them
_UTF32_BOMS = {b"\xff\xfe\x00\x00": "utf-32", b"\x00\x00\xfe\xff": "utf-32"}
_BOMS = {b"\xef\xbb\xbf": "utf-8", b"\xff\xfe": "utf-16", b"\xfe\xff": "utf-16"}


class Undecodable(Exception):
    """Bytes the encoding cannot read; the reader turns it into `UnreadableFile` with context."""

    def __init__(
        self, codec: str, offset: int, byte: int, *, line: int | None = None, why: str = ""
    ) -> None:
        super().__init__(f"byte 0x{byte:02X} at offset {offset} is not {codec}")
        self.codec = codec
        self.offset = offset
        self.byte = byte
        self.line = line  # 1-based, where known
        self.why = why  # what the bytes look like instead, where known


@dataclass(frozen=True, slots=True)
class Encoding:
    """How bytes become text: a Python codec name; UTF-8 is read natively, others recoded."""

    codec: str
    declared: bool = False  # from the dataset's rules, not detected
    ascii_so_far: bool = False  # detected: the first non-ASCII byte decides UTF-8 or cp1252


def read_head(source: Source) -> tuple[bytes, bool]:
    """The first 64 KB (more if no line ends there), and whether that is the whole file."""
    size = HEAD_BYTES
    while True:
        head = source.head(size)
        whole = len(head) < size
        if whole or b"\n" in head or b"\r" in head or size >= _MAX_HEAD:
            return head, whole
        size *= 8


def detect_encoding(head: bytes, declared: str | None, *, whole: bool = False) -> Encoding:
    """The declared codec (checked to exist), else what the first bytes show."""
    if declared is not None:
        codec = codecs.lookup(declared).name  # LookupError: the caller names the rule
        return Encoding("utf-8" if codec == "utf-8-sig" else codec, declared=True)
    for table in (_UTF32_BOMS, _BOMS):
        for bom, codec in table.items():
            if head.startswith(bom):
                return Encoding(codec)
    if utf16 := _utf16_without_bom(head):
        return Encoding(utf16)
    if head.isascii():
        return Encoding("utf-8", ascii_so_far=True)
    return Encoding("utf-8") if _is_utf8(head, whole) else _cp1252(head)


def wide_encoding(head: bytes) -> str | None:
    """UTF-16 or UTF-32 (by BOM, or UTF-16 by its NUL pattern): text, though it holds NULs."""
    for bom, codec in (*_UTF32_BOMS.items(), *_BOMS.items()):
        if head.startswith(bom) and codec != "utf-8":
            return codec
    return _utf16_without_bom(head)


def _utf16_without_bom(head: bytes) -> str | None:
    """Mostly-ASCII UTF-16 leaves a NUL in every other byte: odd ones for LE, even for BE."""
    sample = head[:4096]
    half = len(sample) // 2
    if half < 8:
        return None
    odd, even = sample[1::2].count(0) / half, sample[0::2].count(0) / half
    if max(odd, even) > 0.6 and min(odd, even) < 0.05:
        return "utf-16-le" if odd > even else "utf-16-be"
    return None


def _is_utf8(data: bytes, final: bool) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final)
    except UnicodeDecodeError:
        return False
    return True


def _cp1252(data: bytes, offset: int = 0) -> Encoding:
    """Not UTF-8: cp1252, unless the bytes hold a UTF-16 byte-order mark (not one text)."""
    for bom in (b"\xff\xfe", b"\xfe\xff"):
        if (at := data.find(bom)) >= 0:
            line = _line(data, at) if offset == 0 else None  # else the caller counts
            why = "a UTF-16 byte-order mark"
            raise Undecodable("UTF-8", offset + at, data[at], line=line, why=why)
    return Encoding("cp1252")


def head_text(head: bytes, encoding: Encoding, *, whole: bool = False) -> str:
    """The head as text, cut after its last whole line unless it is the whole file."""
    decoder = codecs.getincrementaldecoder(encoding.codec)()
    try:
        text = decoder.decode(head, whole)
    except UnicodeDecodeError as exc:
        line = None if encoding.codec.startswith("utf-") else _line(head, exc.start)
        raise Undecodable(encoding.codec, exc.start, head[exc.start], line=line) from exc
    text = text.removeprefix("\ufeff")
    return text if whole else text[: max(text.rfind("\n"), text.rfind("\r")) + 1]


def open_utf8(source: Source, encoding: Encoding) -> IO[bytes]:
    """The source's bytes as UTF-8: its own stream when it is UTF-8 already, else recoded."""
    raw = source.open()
    if encoding.codec == "utf-8" and not encoding.ascii_so_far:
        return raw
    return cast(IO[bytes], Utf8Stream(raw, encoding))  # a binary file object, as pyarrow wants


class Utf8Stream(io.RawIOBase):
    """UTF-8 bytes recoded from a stream in another encoding, a block at a time, for pyarrow.

    Decoding errors raise `Undecodable` with the offset in the source's (decompressed) bytes.
    """

    def __init__(self, raw: IO[bytes], encoding: Encoding) -> None:
        super().__init__()
        self._raw = raw
        self._codec = encoding.codec
        self._decoder = codecs.getincrementaldecoder(encoding.codec)()
        self._step: Callable[[bytes], bytes] = (
            self._while_ascii if encoding.ascii_so_far else self._recode
        )
        self._pending = b""
        self._offset = 0  # source bytes consumed
        self._eof = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        want = -1 if size is None else size
        while not self._eof and (want < 0 or len(self._pending) < want):
            chunk = self._raw.read(max(want, 1 << 20))
            self._eof = not chunk
            self._pending += self._step(chunk)
            self._offset += len(chunk)
        if want < 0:
            want = len(self._pending)
        out, self._pending = self._pending[:want], self._pending[want:]
        return out

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()

    def _recode(self, chunk: bytes) -> bytes:
        held = self._decoder.getstate()[0]  # the previous chunk's unfinished character
        try:
            return self._decoder.decode(chunk, not chunk).encode("utf-8")
        except UnicodeDecodeError as exc:
            data = held + chunk
            offset = self._offset - len(held) + exc.start
            raise Undecodable(self._codec, offset, data[exc.start]) from exc

    def _while_ascii(self, chunk: bytes) -> bytes:
        if chunk.isascii():
            return chunk
        whole = chunk + self._raw.read(_utf8_shortfall(chunk))  # decide on whole characters
        out = self._decide(whole)
        self._offset += len(whole) - len(chunk)  # `read` counts the chunk
        return out

    def _decide(self, chunk: bytes) -> bytes:
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            if not chunk[: exc.start].isascii():  # UTF-8 text, then a byte that is not
                raise Undecodable("UTF-8", self._offset + exc.start, chunk[exc.start]) from exc
            self._codec = _cp1252(chunk, self._offset).codec
            self._decoder = codecs.getincrementaldecoder(self._codec)()
            self._step = self._recode
            return self._recode(chunk)
        self._step = _unchanged
        return chunk


def _unchanged(chunk: bytes) -> bytes:
    return chunk


def _utf8_shortfall(chunk: bytes) -> int:
    """How many bytes the chunk's last UTF-8 character lacks (0 when it ends whole)."""
    for back in range(1, min(4, len(chunk)) + 1):
        byte = chunk[-back]
        if byte < 0x80:
            return 0
        if byte >= 0xC0:
            size = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return max(size - back, 0)
    return 0


def first_invalid_utf8(stream: IO[bytes]) -> Undecodable | None:
    """The first byte of the stream that is not UTF-8, with its offset and line, if any."""
    offset = lines = 0
    while chunk := stream.read(1 << 20):
        chunk += stream.read(_utf8_shortfall(chunk))
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = lines + _line(chunk, exc.start)
            return Undecodable("UTF-8", offset + exc.start, chunk[exc.start], line=line)
        offset += len(chunk)
        lines += chunk.count(b"\n")
    return None


def _line(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def line_at(stream: IO[bytes], offset: int) -> int:
    """The 1-based line holding byte `offset` of the stream."""
    lines = 0
    while offset > 0 and (chunk := stream.read(min(offset, 1 << 20))):
        lines += chunk.count(b"\n")
        offset -= len(chunk)
    return lines + 1


def text_lines(stream: IO[bytes]) -> Iterator[str]:
    """Physical lines, ends kept, from a UTF-8 stream (for the csv module; errors replaced)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    rest = ""
    while True:
        chunk = stream.read(1 << 20)
        text = rest + decoder.decode(chunk, not chunk)
        lines = split_lines(text)
        rest = lines.pop() if chunk and lines and not lines[-1].endswith("\n") else ""
        yield from lines
        if not chunk:
            return


def split_lines(text: str) -> list[str]:
    """Lines split at LF, CRLF or CR only, like pyarrow (not at `str.splitlines`'s extras)."""
    return _LINE.findall(text)
