"""Bounded read-ahead for pyarrow's streaming CSV reader.

pyarrow reads blocks ahead of parsing without a bound, so when parsing is the bottleneck the
whole file ends up in memory (measured: 182 MB of read-ahead for a 216 MB CSV). The streaming
reader yields one batch per block, so this file object lets a read proceed only while fewer
than `ahead` blocks wait unparsed. A wait is bounded in time: a record longer than the window
(a field of many megabytes) slows reading down but cannot deadlock it.
"""

from __future__ import annotations

import io
import threading
from typing import IO


class Throttled(io.RawIOBase):
    """A binary stream whose reads wait until the consumer has taken enough batches."""

    def __init__(self, raw: IO[bytes], block_size: int, ahead: int = 4, wait_s: float = 2.0):
        super().__init__()
        self._raw = raw
        self._block = block_size
        self._ahead = ahead
        self._wait_s = wait_s
        self._read = 0
        self._taken = 0
        self._moved = threading.Condition()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """The stream's next bytes as it gives them: pyarrow calls `read`, and the default
        one, through `readinto`, would copy each block twice more."""
        with self._moved:
            self._moved.wait_for(self._may_read, timeout=self._wait_s)
        data = self._raw.read(size)
        self._read += len(data)
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _may_read(self) -> bool:
        return self._read < (self._taken + self._ahead) * self._block

    def took_batch(self) -> None:
        """The consumer took one batch (one block of input): reading may move on."""
        with self._moved:
            self._taken += 1
            self._moved.notify_all()

    def close(self) -> None:
        self._raw.close()
        super().close()
