"""sluice.load.prefetch: an iterator run ahead in a thread keeps order, bounds, errors and stops."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from sluice.load.prefetch import prefetched


def test_items_arrive_in_order_and_all_of_them() -> None:
    assert list(prefetched(iter(range(1000)), depth=3)) == list(range(1000))


def test_the_producer_runs_in_another_thread() -> None:
    def where() -> Iterator[str]:
        yield threading.current_thread().name

    assert list(prefetched(where(), name="sluice-prefetch-test")) == ["sluice-prefetch-test"]


def test_the_producer_never_runs_more_than_depth_items_ahead() -> None:
    made: list[int] = []
    full = threading.Event()

    def counting() -> Iterator[int]:
        for i in range(100):
            made.append(i)
            if i == 3:
                full.set()  # one handed out, two in the queue, this one waiting for room
            yield i

    items = prefetched(counting(), depth=2)
    assert next(items) == 0
    assert full.wait(10)
    # a producer that ran past the bound would have made the rest by now (it does nothing else)
    assert len(made) <= 4
    items.close()


def test_an_error_in_the_producer_is_raised_to_the_consumer_after_the_items_before_it() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("bad batch")

    got: list[int] = []
    with pytest.raises(ValueError, match="bad batch"):
        got.extend(prefetched(failing()))
    assert got == [1, 2]


def test_a_consumer_that_stops_early_stops_the_producer() -> None:
    finished = threading.Event()

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            finished.set()

    before = threading.active_count()
    items = prefetched(endless(), depth=2)
    assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]
    items.close()  # e.g. the COPY failed

    assert threading.active_count() == before  # the producer thread has ended
    assert finished.is_set()  # and closed the source it left half-read
