"""Stopping a long-lived process (`sluice serve`, `sluice worker`, the sensor alone) on a signal."""

from __future__ import annotations

import signal
import threading


def stop_on_signals(stop: threading.Event) -> threading.Event:
    """SIGTERM and SIGINT set `stop` (the process ends what it does, then returns); only the main
    thread may install handlers, so elsewhere (a test's thread) `stop` alone ends it."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    return stop
