"""read: a file's bytes as Arrow record batches in staged Parquet (`staging/<file_id>/raw.parquet`).

raw.py       the stage: fingerprint, format detection, staging, what the reader noted
readers/     one reader per format family (delimited text, JSON, columnar, Excel)
"""

from sluice.read.raw import STAGE, fingerprint, run

__all__ = ["STAGE", "fingerprint", "run"]
