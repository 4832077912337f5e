"""Rows with the wrong number of fields: the first is remembered for the error message, or under
the dataset's `ragged: pad` a short row is read with its missing trailing fields as null.

pyarrow's CSV reader can only skip or refuse a row of another width, not pad it. Under `pad`
its invalid-row handler sets a short row aside with its number (pyarrow numbers rows only when
it reads on one thread, which `pad` asks for), parses and pads it, and `merge` puts it back at
its place among the batch's rows: `_row` and the rows' order stay the file's. A long row (more
fields than the header) is never padded: it refuses the file, as does any row without `pad`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from sluice.contracts import Ragged


class BadRows:
    """pyarrow's invalid-row handler: the first bad row, and under `pad` the short ones."""

    def __init__(
        self,
        mode: Ragged,
        *,
        delimiter: str = ",",
        above: int = 0,
        nulls: Sequence[str] = (),
        schema: pa.Schema | None = None,
    ) -> None:
        self.mode = mode
        self.expected = 0
        self.found = 0
        self.text = ""
        self.padded = 0  # short rows read with nulls
        self.first_padded: int | None = None  # the 1-based data row of the first one
        self._delimiter = delimiter
        self._above = above  # records before the first data row (pyarrow counts rows from 1)
        self._nulls = frozenset(nulls)
        self._schema = schema
        self._pending: list[tuple[int, list[str | None]]] = []  # (data row, fields)
        self._emitted = 0  # data rows handed on so far

    def __call__(self, row: pacsv.InvalidRow) -> str:
        number = row.number if row.number is not None and row.number > 0 else None
        if self.mode == "pad" and row.actual_columns < row.expected_columns and number:
            self._pending.append((number - self._above, self._fields(row)))
            self.padded += 1
            return "skip"
        if not self.text:
            self.expected, self.found, self.text = (
                row.expected_columns,
                row.actual_columns,
                row.text,
            )
        return "error"

    def _fields(self, row: pacsv.InvalidRow) -> list[str | None]:
        parsed = next(csv.reader([row.text], delimiter=self._delimiter), [])
        values: list[str | None] = [None if v in self._nulls else v for v in parsed]
        return values + [None] * (row.expected_columns - len(values))

    def merge(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch with the short rows that belong among its rows put back in their place."""
        if not self._pending:
            self._emitted += batch.num_rows
            return batch
        self._pending.sort(key=lambda item: item[0])
        end = self._emitted + batch.num_rows
        taken = 0  # a row set aside right after the rows so far belongs here (the order holds)
        while taken < len(self._pending) and self._pending[taken][0] <= end + taken + 1:
            taken += 1
        rows, self._pending = self._pending[:taken], self._pending[taken:]
        merged = self._splice(batch, rows) if rows else batch
        self._emitted += merged.num_rows
        return merged

    def rest(self) -> pa.RecordBatch | None:
        """The short rows after the last batch (the file ended with them), as a batch."""
        if not self._pending or self._schema is None:
            return None
        return self.merge(pa.RecordBatch.from_pylist([], schema=self._schema))

    def _splice(
        self, batch: pa.RecordBatch, rows: list[tuple[int, list[str | None]]]
    ) -> pa.RecordBatch:
        first = self._emitted + 1
        if self.first_padded is None:
            self.first_padded = rows[0][0]
        columns = list(zip(*(fields for _, fields in rows), strict=True))
        extra = pa.RecordBatch.from_arrays(
            [pa.array(list(c), pa.string()) for c in columns], schema=batch.schema
        )
        total = batch.num_rows + len(rows)
        places = np.array([number - first for number, _ in rows], dtype=np.int64)
        order = np.empty(total, dtype=np.int64)
        mask = np.ones(total, dtype=bool)
        mask[places] = False
        order[mask] = np.arange(batch.num_rows)
        order[places] = batch.num_rows + np.arange(len(rows))
        both = pa.Table.from_batches([batch, extra]).combine_chunks()
        return both.take(pa.array(order)).to_batches()[0]
