"""Retrying outside a task run: the stage tasks' policy (only a TransientError, `retries` times,
`backoff_s` doubling) for work that must not cost a task run of its own (a file's claim)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from sluice.errors import TransientError

T = TypeVar("T")


def retrying(
    work: Callable[[], T],
    *,
    retries: int,
    backoff_s: float,
    on_retry: Callable[[TransientError], None],
    never: tuple[type[TransientError], ...] = (),
) -> T:
    """`work()`, again after a TransientError (but those in `never`) up to `retries` times,
    waiting `backoff_s * 2**attempt`; `on_retry` hears of each error retried."""
    for attempt in range(retries):
        try:
            return work()
        except never:
            raise
        except TransientError as exc:
            on_retry(exc)
            time.sleep(backoff_s * 2**attempt)
    return work()
