"""validate: the quality gate. The baseline suite the schema implies and the dataset's own,
natively where the checks allow and on Great Expectations for the rest, plus drift.

    runner.py   the stage: suites run on a staged file (or batch by batch), as a report
    chunks.py   bounded memory: row-local expectations per chunk, the rest on projected columns
    checks.py   the baseline's expectation types, natively (pyarrow.compute, numpy)
    gx.py       Great Expectations, imported only for a suite that needs it
    suites.py   suites as data: the baseline, suite files, a suite from a profile
    drift.py    a file's profile against its dataset's recent loaded files
    reject.py   row-level mode: the rows set aside and the rows file
    verdict.py  how a report reads: the failure message, the UI's table
"""

from sluice.validate.runner import run, run_batches, validate_table

__all__ = ["run", "run_batches", "validate_table"]
