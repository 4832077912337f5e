"""Benchmarks of a checkout: they find it by this file, and run on its local services and its
`.sluice/` (as `make bench` does) unless SLUICE_HOME says otherwise."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SLUICE_HOME", str(PROJECT_ROOT / ".sluice"))
