"""The end of a delimited file's rows: a footer of notes below them is cut off as it streams.

Exports from PVGIS and others end with a blank line, then free text (what each column means,
a copyright line). A footer is detected as an empty line followed, to the end of the file, only
by lines that do not have the header's number of fields. `FooterCut` passes the UTF-8 bytes on
to pyarrow and holds back what follows a blank line until a line of the header's width shows it
was not a footer (then everything held goes on) or the file ends (then the held lines are the
footer: left out of the rows, kept as the file's metadata). A blank line inside a quoted value
is not one: the parity of the quotes passed so far tells (a stray quote outside a quoted value
turns detection off until another, so the rows are read as they would be without it). Memory
is bounded: at most `HOLD_MAX` bytes are held; a longer stretch after a blank line is not a
footer. The dataset's `skip_footer: N` fixes the footer to the last N non-blank lines instead
(0: none).

A plain file whose last bytes hold no blank line cannot end in a footer (`may_end_in_footer`):
its bytes go to pyarrow as they are, without the scan, which cost half of reading's CPU on a
140 MB CSV.
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import IO

HOLD_MAX = 1 << 20  # a footer is at most this long
KEPT_LINES = 200  # footer lines kept as metadata (the rest are still cut)
_CHUNK = 1 << 20
_LINES = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_BLANKS = (b"\n\n", b"\n\r\n", b"\r\r")  # a line end, then an empty line (LF, CRLF, CR)


class FooterCut(io.RawIOBase):
    """The stream's bytes without its footer; `footer` holds the footer's lines once read."""

    def __init__(self, raw: IO[bytes], delimiter: str, width: int, lines: int | None) -> None:
        super().__init__()
        self._raw = raw
        self._delimiter = delimiter
        self._width = width
        self._fixed = lines  # skip_footer: the last N non-blank lines; None: detect
        self._out = bytearray()  # ready to go
        self._held = bytearray()  # after a blank line (detect) or the last N lines (fixed)
        self._carry = b""  # an incomplete last line
        self._quoted = 0  # 1 while inside a quoted value: an odd number of quotes so far
        self._eof = False
        self.footer: list[str] = []
        self.cut_lines = 0  # non-blank lines cut

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        want = -1 if size is None else size
        while not self._eof and (want < 0 or len(self._out) < max(want, 1)):
            self._pull()
        if want < 0 or want >= len(self._out):
            out = bytes(self._out)
            self._out.clear()
            return out
        with memoryview(self._out) as view:
            out = bytes(view[:want])
        del self._out[:want]
        return out

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()

    def _pull(self) -> None:
        chunk = self._raw.read(_CHUNK)
        data = self._carry + chunk
        if not chunk:
            self._eof = True
            self._carry = b""
            self._lines(data)
            self._end()
            return
        end = len(data) - data.endswith(b"\r")  # a last CR may be half a CRLF: wait for more
        cut = max(data.rfind(b"\n", 0, end), data.rfind(b"\r", 0, end))
        self._carry = data[cut + 1 :]
        self._lines(data, cut + 1)

    def _lines(self, data: bytes, end: int | None = None) -> None:
        """The whole lines of `data[:end]`: passed on, or held (no copy but into `_out`)."""
        end = len(data) if end is None else end
        if self._fixed is not None:
            self._hold_last(data[:end])
            return
        at = 0
        view = memoryview(data)
        while at < end:
            if not self._held:
                blank = self._blank(data, at, end)
                if blank is None:
                    self._out += view[at:end]
                    return
                self._out += view[at:blank]
                at = blank
            line = _LINES.match(data, at, end)
            assert line is not None  # `data` holds whole lines only
            at = line.end()
            self._held += line[0]
            if self._conforms(line[0]) or len(self._held) > HOLD_MAX:
                self._quoted ^= self._held.count(b'"') & 1
                self._out += self._held  # rows after all (or too long for a footer)
                self._held.clear()

    def _blank(self, data: bytes, at: int, end: int) -> int | None:
        """Where the first blank line in `data[at:end]` starts, outside quoted values (by the
        parity of the quotes so far: a value may hold a blank line), counting the quotes
        before it."""
        while (blank := _next_blank(data, at, end)) is not None:
            self._quoted ^= data.count(b'"', at, blank) & 1
            if not self._quoted:
                return blank
            at = blank + 1  # inside a quoted value (a blank line holds no quote)
        self._quoted ^= data.count(b'"', at, end) & 1
        return None

    def _conforms(self, line: bytes) -> bool:
        """A non-blank line with the header's number of fields: a row, not a footer."""
        if not line.strip():
            return False
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        fields = next(csv.reader([text], delimiter=self._delimiter), [])
        return len(fields) == self._width

    def _hold_last(self, data: bytes) -> None:
        """skip_footer: N: hold the last N non-blank lines, pass on what comes before them."""
        self._held += data
        go = _last_lines_start(self._held, self._fixed or 0)
        self._out += self._held[:go]
        del self._held[:go]

    def _end(self) -> None:
        lines = [
            line.decode("utf-8", "replace").rstrip("\r\n") for line in _LINES.findall(self._held)
        ]
        kept = [line for line in lines if line.strip()]
        # only blank lines (or spaces) after the rows: dropped, nothing to keep or report
        self.cut_lines = len(kept)
        self.footer = [line[:500] for line in kept[:KEPT_LINES]]
        self._held.clear()


def may_end_in_footer(path: Path) -> bool:
    """Whether a footer could be cut from the file at `path` (its bytes as they are, in an
    encoding where a line end is the byte CR or LF, as in UTF-8): a footer follows a blank
    line within the last `HOLD_MAX` bytes (a longer stretch is released as rows), so a file
    whose tail holds no blank line has none, whatever its quotes."""
    tail = 2 * HOLD_MAX + 4  # twice the span a footer can have, and its blank line
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - tail))
        data = handle.read()
    # a window that starts with a line end counts as a blank line: a footer read for nothing
    return _next_blank(data, 0, len(data)) is not None


def _last_lines_start(buffer: bytearray, count: int) -> int:
    """Where the last `count` non-blank lines of `buffer` (whole lines) start: 0 if it has
    fewer, its length for none."""
    end = len(buffer)
    found = 0
    while found < count and end > 0:
        stop = end - (buffer[end - 2 : end] == b"\r\n") - 1  # the line's text ends here
        start = max(buffer.rfind(b"\n", 0, stop), buffer.rfind(b"\r", 0, stop)) + 1
        found += bool(buffer[start:end].strip())
        end = start
    return end


def _next_blank(data: bytes, at: int, end: int) -> int | None:
    """Where the first empty line in `data[at:end]` (`at` a line start) begins: `bytes.find`,
    not a regular expression, which cost 4x the CSV parse on a 35 MB file."""
    if at < end and data[at : at + 1] in (b"\n", b"\r"):
        return at
    lf = data.find(b"\n\n", at, end)
    if data.find(b"\r", at, end) < 0:  # LF line ends only (most files): one search, not three
        return lf + 1 if lf >= 0 else None
    found = [i for i in (lf, *(data.find(b, at, end) for b in _BLANKS[1:])) if i >= 0]
    return min(found) + 1 if found else None
