"""What the terminal of `sluice serve` and `sluice worker` shows of a run's log records."""

from __future__ import annotations

import logging

import pytest

from sluice.cli.runs import _not_detail


def _record(name: str, level: int) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, "message", None, None)


@pytest.mark.parametrize(
    "name",
    ["sluice.stages", "sluice.read.readers.delimited", "sluice.validate", "prefect.task_runs"],
)
def test_stage_details_stay_off_the_terminal_unless_they_warn(name: str) -> None:
    assert not _not_detail(_record(name, logging.INFO))
    assert _not_detail(_record(name, logging.WARNING))


@pytest.mark.parametrize("name", ["prefect.flow_runs", "sluice.serve", "sluice.sensor"])
def test_each_runs_own_lines_and_the_processes_lines_show(name: str) -> None:
    assert _not_detail(_record(name, logging.INFO))
