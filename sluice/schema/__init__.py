"""infer_schema: the column types over the whole staged file, the time column, every guess.

inference.py  the stage: candidate types per column, narrowed batch by batch
casts.py      staged columns to the Arrow types that encode as their PostgreSQL types
timeparts.py  a time made of several columns (date and time, year..second)
guesses.py    how a file was read, for the run's summary and the ledger's file_meta
"""

from sluice.schema.inference import infer

run = infer  # the stage, by the name every stage package gives it

__all__ = ["infer", "run"]
