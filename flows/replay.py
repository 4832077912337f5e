"""replay-dead-letters: put quarantined files back in the inbox and run `ingest_file` on each again.

For after the cause was fixed (a dataset rule, a suite, the table). Each chosen letter's file is
restored to inbox/<dataset>/<name> and runs as an `ingest-file` subflow. Loaded or duplicate:
the file's letters go. Quarantined again: the new letter the quarantine wrote stays, the older
ones go, so a file has one letter. Any other failure (e.g. a database outage outlasting the
retries) keeps the letter; the file waits in the inbox, and replaying the letter again runs it.
One replay failing never stops the others; the summary is the flow's result and a table artifact.
"""

from __future__ import annotations

from dataclasses import asdict

import redis
from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run

from flows.ingest_file import ingest_file
from sluice import ledger
from sluice.contracts import FileOutcome
from sluice.errors import SluiceError, TerminalError
from sluice.settings import get_settings
from sluice.state import checkpoints, dlq
from sluice.state.checkpoints import Keys


def run_name() -> str:
    """`replay/all`, `replay/all/<dataset>`, `replay/<letter id>` or `replay/<n> letters`."""
    params = flow_run.parameters
    ids = params.get("ids") or []
    if params.get("all"):
        return "replay/all" + (f"/{params['dataset']}" if params.get("dataset") else "")
    return f"replay/{ids[0]}" if len(ids) == 1 else f"replay/{len(ids)} letters"


@flow(name="replay-dead-letters", flow_run_name=run_name, persist_result=False)
def replay(
    ids: list[str] | None = None, all: bool = False, dataset: str | None = None
) -> list[dlq.Replayed]:
    """Replay dead letters: `ids` (letter ids or file id prefixes), or `all` (of one `dataset`)."""
    if bool(ids) == all:
        raise ValueError("give either ids or all=true")
    if dataset and not all:
        raise ValueError("dataset narrows all=true; with ids, leave it empty")
    settings = get_settings()
    r = checkpoints.client(settings.redis_url.get_secret_value())
    keys = ledger.keys_for(settings.dsn(), settings.schema_name)
    chosen, summary = _choose(r, keys, ids or [], all, dataset)
    summary += [_replay_one(r, keys, letter) for letter in chosen]
    _report(summary)
    return summary


def _choose(
    r: redis.Redis, keys: Keys, ids: list[str], all: bool, dataset: str | None
) -> tuple[list[dlq.Letter], list[dlq.Replayed]]:
    """The letters to replay, one per file; ids that find none become failed summary lines."""
    if all:
        return dlq.letters(r, keys, dataset=dataset), []
    chosen: dict[str, dlq.Letter] = {}
    missing = []
    for key in ids:
        try:
            letter = dlq.find(r, keys, key)
        except dlq.DeadLetterError as exc:
            missing.append(dlq.Replayed(letter=key, file="", outcome="failed", message=str(exc)))
        else:
            chosen.setdefault(letter.file_id, letter)
    return list(chosen.values()), missing


def _replay_one(r: redis.Redis, keys: Keys, letter: dlq.Letter) -> dlq.Replayed:
    try:
        path = dlq.restore(letter, get_settings().inbox)
    except SluiceError as exc:
        return dlq.Replayed(letter.id, letter.path, "failed", str(exc), file_id=letter.file_id)
    mark = dlq.last_id(r, keys)
    state = ingest_file(path=str(path), dataset=letter.dataset, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, FileOutcome):
        dlq.prune(r, keys, letter.file_id)
        return dlq.Replayed(
            letter.id, str(path), result.outcome, result.message, result.rows, letter.file_id
        )
    if isinstance(result, TerminalError):
        dlq.prune(r, keys, letter.file_id, through=mark)  # the quarantine wrote a newer one
        return dlq.Replayed(letter.id, str(path), "quarantined", str(result), 0, letter.file_id)
    text = str(result) if isinstance(result, BaseException) else (state.message or state.name)
    return dlq.Replayed(letter.id, str(path), "failed", text, 0, letter.file_id)


def _report(summary: list[dlq.Replayed]) -> None:
    logger = get_run_logger()
    for item in summary:
        log = logger.info if item.outcome in ("loaded", "duplicate") else logger.error
        log("%s %s (letter %s) %s", item.outcome, item.file, item.letter, item.message)
    if summary:
        create_table_artifact(
            key="replay-summary",
            table=[asdict(item) for item in summary],
            description="What replaying each dead letter did",
        )
