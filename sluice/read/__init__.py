"""read: a file's bytes as Arrow record batches in staged Parquet (`staging/<file_id>/raw.parquet`).

identify.py  fingerprint: the content id and size, the dataset and its rules
detect.py    what the file is (compression, format) and the reader that opens it
readers/     one reader per format family (delimited text, JSON, columnar, Excel)
raw.py       the stage: the reader's batches staged under safe names, with its notes
"""

from sluice.read.detect import detect_format, detect_source, reader_for
from sluice.read.identify import Identified, fingerprint, identify
from sluice.read.raw import STAGE, json_columns, read_notes, run, source_names, staged_schema

__all__ = [
    "STAGE",
    "Identified",
    "detect_format",
    "detect_source",
    "fingerprint",
    "identify",
    "json_columns",
    "read_notes",
    "reader_for",
    "run",
    "source_names",
    "staged_schema",
]
