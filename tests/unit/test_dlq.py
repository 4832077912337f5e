"""Dead letters without services: parsing stream entries, choosing letters, restoring files."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from sluice.state.dlq import DeadLetterError, Letter, match, newest_per_file, parse, restore


def _letter(entry: str, file_id: str, **fields: object) -> Letter:
    values: dict[str, object] = {
        "file_id": file_id,
        "path": "/in/weather/a.csv",
        "quarantined": "/q/weather/a.csv",
        "dataset": "weather",
        "stage": "read",
        "error": "UnreadableFile",
        "message": "bad",
        "hint": "fix it",
        "attempts": 1,
        "at": 1.0,
        **fields,
    }
    return Letter(id=entry, **values)  # type: ignore[arg-type]


def test_a_stream_entry_parses_into_a_typed_letter() -> None:
    raw = {b"file_id": b"ab12", b"dataset": b"weather", b"attempts": b"3", b"at": b"17.5"}

    letter = parse(b"1700000000000-0", raw)

    assert (letter.id, letter.file_id, letter.attempts, letter.at) == (
        "1700000000000-0",
        "ab12",
        3,
        17.5,
    )
    assert letter.hint == "" and letter.stage == ""  # fields a writer did not set
    assert letter.as_dict()["id"] == "1700000000000-0"
    assert list(letter.as_dict())[:2] == ["id", "file_id"]


def test_garbled_numbers_read_as_zero() -> None:
    assert parse("1-0", {"attempts": "many", "at": ""}).attempts == 0


def test_newest_per_file_keeps_the_last_letter_of_each_file_in_stream_order() -> None:
    letters = [_letter("1-0", "aaa"), _letter("2-0", "bbb"), _letter("3-0", "aaa")]

    assert [x.id for x in newest_per_file(letters)] == ["2-0", "3-0"]


def test_match_by_entry_id_file_id_or_unique_prefix() -> None:
    letters = [_letter("1-0", "abc111"), _letter("2-0", "abd222"), _letter("3-0", "abc111")]

    assert match(letters, "1-0").id == "1-0"  # an old letter, asked for by its id
    assert match(letters, "abc111").id == "3-0"  # a file: its newest letter
    assert match(letters, "ABD").id == "2-0"
    with pytest.raises(DeadLetterError, match="matches 2 files"):
        match(letters, "ab")
    with pytest.raises(DeadLetterError, match="no dead letter 'zz'"):
        match(letters, "zz")


def _quarantined(tmp_path: Path, content: bytes) -> Letter:
    kept = tmp_path / "quarantine" / "weather" / "0123456789ab-a.csv"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(content)
    file_id = hashlib.sha256(content).hexdigest()
    return _letter("1-0", file_id, quarantined=str(kept), path=str(tmp_path / "elsewhere/a.csv"))


def test_restore_moves_the_file_back_under_its_dataset_and_name(tmp_path: Path) -> None:
    letter = _quarantined(tmp_path, b"t,v\n1,2\n")

    path = restore(letter, tmp_path / "inbox")

    assert path == tmp_path / "inbox" / "weather" / "a.csv"
    assert path.read_bytes() == b"t,v\n1,2\n"
    assert not Path(letter.quarantined).exists()
    assert restore(letter, tmp_path / "inbox") == path  # again: already there, same bytes


def test_restore_drops_the_quarantined_copy_when_the_inbox_holds_the_same_bytes(
    tmp_path: Path,
) -> None:
    letter = _quarantined(tmp_path, b"t,v\n1,2\n")
    target = tmp_path / "inbox" / "weather" / "a.csv"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"t,v\n1,2\n")

    assert restore(letter, tmp_path / "inbox") == target
    assert not Path(letter.quarantined).exists()


def test_restore_never_overwrites_a_different_file(tmp_path: Path) -> None:
    letter = _quarantined(tmp_path, b"t,v\n1,2\n")
    target = tmp_path / "inbox" / "weather" / "a.csv"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"other")

    with pytest.raises(DeadLetterError, match="already holds a different file") as info:
        restore(letter, tmp_path / "inbox")

    assert "move that file away" in str(info.value)
    assert target.read_bytes() == b"other"
    assert Path(letter.quarantined).read_bytes() == b"t,v\n1,2\n"


def test_a_missing_quarantined_file_is_named_with_what_to_do(tmp_path: Path) -> None:
    letter = replace(_quarantined(tmp_path, b"x"), quarantined=str(tmp_path / "gone.csv"))

    with pytest.raises(DeadLetterError) as info:
        restore(letter, tmp_path / "inbox")

    text = str(info.value)
    assert f"the quarantined file {tmp_path / 'gone.csv'} is gone" in text
    assert "sluice dlq drop 1-0" in text
    assert not (tmp_path / "inbox" / "weather").exists()
