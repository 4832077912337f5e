"""Sluice's state in Redis, scoped to one sink: statuses and keys, locks, dead letters, leftovers.

Redis hints and coordinates; the ledger (`sluice.files`) decides what is loaded.

    checkpoints.py  the key scheme of a sink, file statuses, seen-marks, the dead-letter stream
    locks.py        the file lock with a lease, the sink's writer slots
    dlq.py          dead letters: list, find, restore their file, drop
    janitor.py      staging and stage locks that crashed runs left behind
"""
