"""load: the staged rows, the ledger row and an outbox event in one transaction.

transaction.py     the stage: ledger row, DDL or evolution, hypertable, binary COPY
evolution.py       what a file needs from the live table, and the DDL that does it
pgcopy.py          Arrow batches encoded as binary COPY, in bulk
pgcopy_numeric.py  numeric values of decimal columns, in bulk
prefetch.py        the COPY's chunks encoded a few ahead in a thread
outbox.py          events written in the load's transaction, relayed once
"""

from sluice.load.transaction import chunk_count, load_batches, run

__all__ = ["chunk_count", "load_batches", "run"]
