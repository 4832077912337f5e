"""The `sluice` command: the package's face, and the one engine package that reaches flows/.

Flows and Prefect are imported inside the commands that run them, so `sluice --help` stays fast.
An error ends a command with one line on stderr (what, where, what to do) and exit status 1;
`sluice --debug ...` shows the traceback instead.

base.py      the Typer apps, --debug, errors as one line
runs.py      where runs go (the Prefect API, services started), Prefect's console, `run_files`
render.py    what the commands print: lines, tables, JSON, progress bars
ingest.py    ingest, demo          status.py    status, datasets
serve.py     serve, worker         services.py  services install|up|down|status
dlq.py       dlq list|show|replay|drop
forget.py    forget                suite.py     suite init
"""

from __future__ import annotations

import sys

from sluice.cli import dlq, forget, ingest, serve, services, status, suite
from sluice.cli.base import PROCESS, app, dlq_app, services_app, suite_app
from sluice.cli.render import err, out
from sluice.cli.runs import imported, run_files, runs_api

__all__ = ["app", "err", "main", "out", "run_files", "runs_api"]

# The commands, in the order `sluice --help` lists them (the groups follow).
app.command()(ingest.ingest)
app.command()(status.status)
app.command()(status.datasets)
app.command()(serve.serve)
app.command()(serve.worker)
app.command()(ingest.demo)
app.command()(forget.forget)
services_app.command("install")(services.services_install)
services_app.command("up")(services.services_up)
services_app.command("down")(services.services_down)
services_app.command("status")(services.services_status)
dlq_app.command("list")(dlq.dlq_list)
dlq_app.command("show")(dlq.dlq_show)
dlq_app.command("replay")(dlq.dlq_replay)
dlq_app.command("drop")(dlq.dlq_drop)
suite_app.command("init")(suite.suite_init)


def main() -> None:
    PROCESS.command = True
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        imported()  # the interpreter's last collection at exit skips what the command built
