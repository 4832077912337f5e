"""Fault points for the reliability tests: a process dies where a test tells it to.

`SLUICE_FAULTS=read,copy` makes this process kill itself with SIGKILL (no cleanup, no
`finally`, like a power cut or the OOM killer) the first time it reaches a named point:

    read       the read stage has staged its first batch
    validate   validation has evaluated its first chunk
    copy       load has sent its first COPY chunk (the transaction is open)
    commit     load's transaction has committed (the rows and ledger row are durable)

Unset (always, outside tests) a point costs one set lookup.
"""

from __future__ import annotations

import os
import signal

_ARMED = frozenset(p.strip() for p in os.environ.get("SLUICE_FAULTS", "").split(",") if p.strip())


def point(name: str) -> None:
    if name in _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
