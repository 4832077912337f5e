"""Run an iterator in a background thread, a few items ahead of its consumer.

The load encodes COPY chunks from Arrow (numpy and Arrow compute, which release the GIL) while
the connection sends the previous chunk and PostgreSQL ingests it: encoding no longer waits on
the server, nor the server on encoding. At most `depth` items wait in memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()
_POLL_S = 0.1


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Producer:
    """Iterates `items` in its thread, handing each to the queue unless told to stop."""

    def __init__(self, items: Iterable[object], depth: int) -> None:
        self.items = items
        self.ahead: queue.Queue[object] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()

    def put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.ahead.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        try:
            for item in self.items:
                if not self.put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self.put(_Failed(exc))
            return
        finally:
            if self.stop.is_set() and isinstance(self.items, Generator):
                self.items.close()  # a source left half-read closes its files now
        self.put(_DONE)


def prefetched(items: Iterable[T], depth: int = 2, name: str = "sluice-prefetch") -> Iterator[T]:
    """The items of `items`, produced in a thread up to `depth` ahead; the producer's exception
    is raised here, and a consumer that stops early stops the producer."""
    producer = _Producer(items, depth)
    thread = threading.Thread(target=producer.run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = producer.ahead.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]  # the items of `items`
    finally:
        producer.stop.set()
        thread.join()
