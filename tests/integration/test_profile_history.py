"""The profile store's history on a real PostgreSQL: the loaded files' profiles, newest first,
parsed once per process and read again when a file's stored profile is replaced."""

from __future__ import annotations

import uuid

import psycopg

from sluice import catalog
from sluice.contracts import FileRef, Profile
from sluice.profile import store as profiles


def _loaded(db: psycopg.Connection, dataset: str, rows: int) -> FileRef:
    """A file in the ledger of `dataset` with a stored profile of `rows` rows."""
    ref = FileRef(f"/in/{uuid.uuid4().hex}.csv", uuid.uuid4().hex, dataset, 10, "h")
    db.execute(
        "INSERT INTO sluice.files (file_id, dataset, target, path, size, rows, rules_hash) "
        "VALUES (%s, %s, %s, %s, 10, %s, 'h')",
        (ref.file_id, dataset, f"public.{dataset}", ref.path, rows),
    )
    profiles.save(db, ref, Profile(rows=rows, columns=()))
    return ref


def test_history_is_the_loaded_files_newest_first_without_the_excluded_one(
    db: psycopg.Connection,
) -> None:
    catalog.ensure_catalog(db)
    catalog.ensure_profiles(db)
    dataset = f"hist_{uuid.uuid4().hex[:8]}"
    refs = [_loaded(db, dataset, rows) for rows in (1, 2, 3)]

    newest_first = profiles.history(db, dataset, 5, exclude=refs[2].file_id)

    assert [p.rows for p in newest_first] == [2, 1]
    assert [p.rows for p in profiles.history(db, dataset, 1)] == [3]


def test_a_replaced_profile_is_read_again_not_taken_from_the_process(
    db: psycopg.Connection,
) -> None:
    catalog.ensure_catalog(db)
    catalog.ensure_profiles(db)
    dataset = f"hist_{uuid.uuid4().hex[:8]}"
    ref = _loaded(db, dataset, 7)
    assert [p.rows for p in profiles.history(db, dataset, 5)] == [7]

    profiles.save(db, ref, Profile(rows=8, columns=()))  # the file profiled again

    assert [p.rows for p in profiles.history(db, dataset, 5)] == [8]
