"""sluice.retry: the stage tasks' retry policy for work outside a task run (a file's claim)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sluice.errors import FileBusy, TerminalError, TransientError
from sluice.retry import retrying


def _failing(errors: list[Exception], then: str = "done") -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def work() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return then

    return calls, work


def test_a_transient_error_is_retried_until_the_work_succeeds() -> None:
    heard: list[str] = []
    calls, work = _failing([TransientError("down"), TransientError("still down")])

    result = retrying(work, retries=2, backoff_s=0, on_retry=lambda e: heard.append(e.message))

    assert result == "done"
    assert len(calls) == 3
    assert heard == ["down", "still down"]


def test_past_the_retries_the_last_error_is_raised() -> None:
    calls, work = _failing([TransientError(str(n)) for n in range(5)])

    with pytest.raises(TransientError, match="2"):
        retrying(work, retries=2, backoff_s=0, on_retry=lambda _e: None)
    assert len(calls) == 3


@pytest.mark.parametrize("error", [FileBusy("held"), TerminalError("bad")])
def test_an_error_not_retried_is_raised_at_once(error: Exception) -> None:
    calls, work = _failing([error])

    with pytest.raises(type(error)):
        retrying(work, retries=2, backoff_s=0, on_retry=lambda _e: None, never=(FileBusy,))
    assert len(calls) == 1
