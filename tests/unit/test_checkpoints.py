"""The Redis key scheme: every key of a sink carries its id, so sinks sharing a Redis never meet."""

from __future__ import annotations

import uuid

import pytest

from sluice.state.checkpoints import Keys

FILE = "ab" * 32


def _every_key(keys: Keys) -> list[str]:
    return [
        keys.file(FILE),
        keys.lock(FILE),
        keys.seen("/inbox/a.csv", 10, 123),
        keys.result("read", 1, FILE, "rules"),
        keys.sent(uuid.UUID(int=7)),
        keys.dead,
        keys.events,
    ]


def test_two_sinks_share_no_key() -> None:
    a, b = _every_key(Keys("aaaa1111")), _every_key(Keys("bbbb2222"))

    assert len(set(a)) == len(a)
    assert not set(a) & set(b)


def test_every_key_is_under_the_sink_s_hash_tag() -> None:
    """A Redis Cluster hashes only the part in braces: a sink's keys share one slot, so the
    outbox's script (a sent key and the stream) runs on a cluster too."""
    for key in _every_key(Keys("cafe01")):
        assert key.startswith("sluice:{cafe01}:")


def test_scan_patterns_match_the_keys_they_stand_for() -> None:
    from fnmatch import fnmatchcase

    keys = Keys("cafe01")
    result = keys.result("profile", 2, FILE, "h")
    assert fnmatchcase(result, keys.results_of(FILE))
    assert not fnmatchcase(keys.result("profile", 2, "cd" * 32, "h"), keys.results_of(FILE))
    assert fnmatchcase("lock:" + result, keys.stage_locks)
    assert fnmatchcase(keys.seen("/p", 1, 2), keys.seen_marks)
    assert not fnmatchcase(Keys("other1").seen("/p", 1, 2), keys.seen_marks)


@pytest.mark.parametrize("sink", ["", "a:b", "a*", "{x}"])
def test_a_sink_id_that_could_break_the_scheme_is_refused(sink: str) -> None:
    with pytest.raises(ValueError, match="sink id"):
        Keys(sink)
