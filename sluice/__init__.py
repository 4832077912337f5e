"""Sluice's engine: stage logic and I/O adapters that turn files into hypertables; no Prefect."""

__version__ = "0.1.0"
