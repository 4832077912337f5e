"""Fault points for the reliability tests: a process dies, or stalls, where a test tells it to.

`SLUICE_FAULTS` is a comma-separated list of `point` or `point=action` entries:

    read       the read stage has staged its first batch
    validate   validation has evaluated its first chunk
    copy       load has sent its first COPY chunk (the transaction is open)
    commit     load's transaction has committed (the rows and ledger row are durable)

    action     `kill` (the default): SIGKILL this process, no cleanup, no `finally`, like a
               power cut or the OOM killer; `sleep:S`: stall S seconds, the first time only,
               so a test can restart a service while the run is at that point.

Unset (always, outside tests) a point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal
import time


def _parse(spec: str) -> dict[str, str]:
    armed = {}
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        name, _, action = entry.partition("=")
        armed[name.strip()] = action.strip() or "kill"
    return armed


_ARMED = _parse(os.environ.get("SLUICE_FAULTS", ""))


def point(name: str) -> None:
    action = _ARMED.get(name)
    if action is None:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("sleep:"):
        del _ARMED[name]  # once per process: a retry of the stage runs through
        time.sleep(float(action.removeprefix("sleep:")))
    else:
        raise ValueError(f"SLUICE_FAULTS: unknown action {action!r} for point {name!r}")
