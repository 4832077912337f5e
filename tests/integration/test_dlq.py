"""Dead letters and replay end to end: real Redis and TimescaleDB, Prefect's ephemeral API.

Letters of every test share the session's stream; each test keeps to a dataset of its own.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql
from typer.testing import CliRunner

from sluice import ledger
from sluice.cli import app
from sluice.settings import get_settings
from sluice.state import checkpoints, dlq
from sluice.state.checkpoints import Keys
from tests.data import weather_csv

pytestmark = [pytest.mark.services, pytest.mark.flow]


def ragged(tag: str) -> str:
    """A malformed CSV whose bytes (and so file id) are its test's own."""
    return f"time,v\n2024-01-01T00:00:00Z,{tag}\n2024-01-01T00:10:00Z,2,3\n"


@pytest.fixture
def replay(ingest: Any) -> Any:
    from flows.replay import replay

    def run(**params: Any) -> list[dlq.Replayed]:
        state = replay(**params, return_state=True)
        assert state.is_completed(), state.message
        summary: list[dlq.Replayed] = state.result()
        return summary

    return run


def _quarantine(ingest: Any, path: Path, text: str | None = None) -> dlq.Letter:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text or ragged(path.parent.name))
    assert ingest(path).is_failed()
    return _only_letter(path.parent.name)


def _only_letter(dataset: str) -> dlq.Letter:
    settings = get_settings()
    keys = ledger.keys_for(settings.dsn(), settings.schema_name)
    with checkpoints.client(settings.redis_url.get_secret_value()) as r:
        [letter] = dlq.letters(r, keys, dataset=dataset, history=True)
    return letter


def _duplicate_key_rule(home: Path, dataset: str, key: str) -> None:
    (home / "datasets.yaml").write_text(f"datasets:\n  {dataset}:\n    key: [{key}]\n")


def _rows(db: psycopg.Connection[Any], dataset: str) -> int:
    row = db.execute(
        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", dataset))
    ).fetchone()
    return int(row[0]) if row else 0


def test_a_quarantined_file_is_listed_and_found_by_letter_or_file_id(
    ingest: Any,
    home: Path,
    redis_client: redis.Redis,
    sink_keys: Keys,
) -> None:
    bad = home / "inbox" / "dlqlist" / "ragged.csv"

    letter = _quarantine(ingest, bad)

    assert (letter.dataset, letter.stage, letter.error, letter.name) == (
        "dlqlist",
        "read",
        "UnreadableFile",
        "ragged.csv",
    )
    assert letter.path == str(bad) and letter.attempts == 1
    assert "line 3 has 3 fields" in letter.message and letter.hint
    assert Path(letter.quarantined).parent == home / "quarantine" / "dlqlist"
    assert Path(letter.quarantined).read_text() == ragged("dlqlist")
    assert dlq.find(redis_client, sink_keys, letter.id) == letter
    assert dlq.find(redis_client, sink_keys, letter.file_id[:10]) == letter


def test_replay_after_the_rule_was_fixed_loads_the_file_once_and_clears_the_letter(
    ingest: Any,
    replay: Any,
    db: Any,
    home: Path,
    redis_client: redis.Redis,
    sink_keys: Keys,
) -> None:
    _duplicate_key_rule(home, "dlqfix", "station_id")  # five stations: the key repeats
    path = weather_csv(home / "inbox" / "dlqfix" / "day.csv", rows=50)
    assert ingest(path).is_failed()
    letter = _only_letter("dlqfix")
    assert letter.stage == "validate"
    _duplicate_key_rule(home, "dlqfix", "station_id, timestamp")  # the fix

    [done] = replay(ids=[letter.file_id[:12]])

    assert (done.outcome, done.rows, done.letter, done.file) == ("loaded", 50, letter.id, str(path))
    assert _rows(db, "dlqfix") == 50
    assert dlq.letters(redis_client, sink_keys, dataset="dlqfix", history=True) == []
    assert not Path(letter.quarantined).exists()
    assert path.exists()
    assert replay(all=True, dataset="dlqfix") == []  # nothing left to replay
    assert ingest(path).result().outcome == "duplicate"
    assert _rows(db, "dlqfix") == 50


def test_replaying_a_still_bad_file_leaves_one_new_letter_and_the_file_in_quarantine(
    ingest: Any, replay: Any, home: Path, redis_client: redis.Redis
) -> None:
    bad = home / "inbox" / "dlqbad" / "ragged.csv"
    old = _quarantine(ingest, bad)

    [done] = replay(ids=[old.id])

    assert done.outcome == "quarantined"
    assert "line 3 has 3 fields" in done.message
    new = _only_letter("dlqbad")
    assert new.id != old.id and new.file_id == old.file_id
    assert Path(new.quarantined).read_text() == ragged("dlqbad")
    assert not bad.exists()


def test_a_file_quarantined_twice_lists_once_and_replay_clears_both_letters(
    ingest: Any,
    replay: Any,
    db: Any,
    home: Path,
    redis_client: redis.Redis,
    sink_keys: Keys,
) -> None:
    path = home / "inbox" / "dlqtwice" / "k.csv"
    _duplicate_key_rule(home, "dlqtwice", "k")
    text = "ts,k\n2024-01-01T00:00:00Z,1\n2024-01-01T00:10:00Z,1\n"
    first = _quarantine(ingest, path, text)
    path.write_text(text)  # the same bytes arrive again
    assert ingest(path).is_failed()

    history = dlq.letters(redis_client, sink_keys, dataset="dlqtwice", history=True)
    assert len(history) == 2 and history[0] == first
    assert dlq.letters(redis_client, sink_keys, dataset="dlqtwice") == [history[1]]
    (home / "datasets.yaml").unlink()  # the fix: no key rule

    [done] = replay(all=True, dataset="dlqtwice")

    assert done.outcome == "loaded" and done.letter == history[1].id
    assert dlq.letters(redis_client, sink_keys, dataset="dlqtwice", history=True) == []
    assert _rows(db, "dlqtwice") == 2


def test_restore_refuses_a_different_file_and_the_other_replays_go_on(
    ingest: Any, replay: Any, home: Path, redis_client: redis.Redis
) -> None:
    blocked = _quarantine(ingest, home / "inbox" / "dlqclash" / "a.csv")
    other = home / "inbox" / "dlqclash" / "a.csv"
    other.write_text("time,v\n2024-01-01T00:00:00Z,7\n")  # a new file under the same name
    good = home / "inbox" / "dlqclash2" / "b.csv"
    ok = _quarantine(ingest, good, "time,v\n2024-01-01T00:00:00Z,1,2\n")
    good_copy = Path(ok.quarantined)
    good_copy.write_text("time,v\n2024-01-01T00:00:00Z,1\n")  # fixed by hand in quarantine

    summary = replay(ids=[blocked.id, ok.id, "nosuchletter"])

    by_letter = {item.letter: item for item in summary}
    assert by_letter[blocked.id].outcome == "failed"
    assert "already holds a different file" in by_letter[blocked.id].message
    assert by_letter["nosuchletter"].outcome == "failed"
    assert by_letter[ok.id].outcome == "loaded"
    assert other.read_text() == "time,v\n2024-01-01T00:00:00Z,7\n"
    assert Path(blocked.quarantined).read_text() == ragged("dlqclash")
    assert _only_letter("dlqclash") == blocked
    with pytest.raises(dlq.DeadLetterError, match="already holds a different file"):
        dlq.restore(blocked, home / "inbox")


def _run_name(state: Any) -> str:
    from prefect.client.orchestration import get_client

    async def read() -> str:
        async with get_client() as client:
            run = await client.read_flow_run(state.state_details.flow_run_id)
        return run.name

    return asyncio.run(read())


def test_the_replay_run_is_named_for_its_selection_and_refuses_unclear_ones(ingest: Any) -> None:
    from flows.replay import replay

    everything = replay(all=True, dataset="dlqnothing", return_state=True)
    unclear = replay(ids=["abc"], all=True, return_state=True)

    assert everything.result() == []
    assert _run_name(everything) == "replay/all/dlqnothing"
    assert unclear.is_failed()
    assert "give either ids or all=true" in str(unclear.result(raise_on_failure=False))


@pytest.fixture
def cli(ingest: Any) -> CliRunner:
    return CliRunner()


def test_cli_lists_shows_and_replays_with_exit_codes(
    cli: CliRunner, ingest: Any, home: Path, redis_client: redis.Redis
) -> None:
    letter = _quarantine(ingest, home / "inbox" / "dlqcli" / "ragged.csv")

    listed = cli.invoke(app, ["dlq", "list", "--dataset", "dlqcli", "--json"])
    shown = cli.invoke(app, ["dlq", "show", letter.file_id[:8], "--json"])
    text = cli.invoke(app, ["dlq", "show", letter.id])
    table = cli.invoke(app, ["dlq", "list", "--dataset", "dlqcli"])

    assert listed.exit_code == 0, listed.output
    assert [x["id"] for x in json.loads(listed.stdout)] == [letter.id]
    assert json.loads(shown.stdout) == letter.as_dict()
    assert text.exit_code == 0
    assert f"quarantined  {letter.quarantined}" in text.stdout
    assert f"hint         {letter.hint}" in text.stdout
    assert f"attempts     {letter.attempts}" in text.stdout
    assert letter.id in table.stdout  # the other cells wrap at the runner's 80 columns

    again = cli.invoke(app, ["dlq", "replay", letter.id])

    assert again.exit_code == 1
    assert again.stdout.split()[0] == "quarantined"
    assert "line 3 has 3 fields" in again.stderr
    new = _only_letter("dlqcli")
    Path(new.quarantined).write_text("time,v\n2024-01-01T00:00:00Z,42\n")  # fixed by hand

    fixed = cli.invoke(app, ["dlq", "replay", "--all", "--dataset", "dlqcli"])

    assert fixed.exit_code == 0, fixed.output
    assert fixed.stdout.split()[:3] == ["loaded", "1", "rows"]
    empty = cli.invoke(app, ["dlq", "list", "--dataset", "dlqcli", "--json"])
    assert json.loads(empty.stdout) == []


def test_cli_refuses_unclear_requests(cli: CliRunner, redis_client: redis.Redis) -> None:
    missing = cli.invoke(app, ["dlq", "show", "feedface"])
    neither = cli.invoke(app, ["dlq", "replay"])
    both = cli.invoke(app, ["dlq", "replay", "abc", "--all"])
    dataset_with_ids = cli.invoke(app, ["dlq", "replay", "abc", "--dataset", "x"])

    assert missing.exit_code == 1
    assert "no dead letter 'feedface'" in missing.stderr
    assert (neither.exit_code, both.exit_code, dataset_with_ids.exit_code) == (2, 2, 2)


def test_cli_drop_deletes_the_letter_and_keeps_the_file(
    cli: CliRunner,
    ingest: Any,
    home: Path,
    redis_client: redis.Redis,
    sink_keys: Keys,
) -> None:
    letter = _quarantine(ingest, home / "inbox" / "dlqdrop" / "ragged.csv")

    dropped = cli.invoke(app, ["dlq", "drop", letter.id])

    assert dropped.exit_code == 0, dropped.output
    assert dlq.letters(redis_client, sink_keys, dataset="dlqdrop", history=True) == []
    assert Path(letter.quarantined).read_text() == ragged("dlqdrop")
