import pickle

import psycopg
import redis
from psycopg import errors as pgerrors

from sluice.errors import SchemaConflict, TerminalError, TransientError
from sluice.translate import translate, translating


def test_message_names_file_stage_and_hint() -> None:
    err = SchemaConflict("no time column", file="a.csv", stage="infer_schema", hint="add one")
    assert str(err) == "a.csv: infer_schema: no time column — add one"


def test_errors_survive_pickling_with_their_fields() -> None:
    err = pickle.loads(pickle.dumps(SchemaConflict("x", file="f", stage="s", hint="h")))
    assert (type(err), err.file, err.stage, err.hint) == (SchemaConflict, "f", "s", "h")


def test_driver_errors_are_classified() -> None:
    transient = [
        pgerrors.SerializationFailure(),
        pgerrors.DeadlockDetected(),
        pgerrors.LockNotAvailable(),
        pgerrors.AdminShutdown(),
        psycopg.OperationalError("connection refused"),
        redis.ConnectionError("down"),
    ]
    terminal = [
        pgerrors.NotNullViolation(),
        pgerrors.InvalidTextRepresentation(),
        pgerrors.SyntaxError(),
        ValueError("bug"),
    ]
    for exc in transient:
        assert isinstance(translate(exc, file="f", stage="load"), TransientError), exc
    for exc in terminal:
        assert isinstance(translate(exc, file="f", stage="load"), TerminalError), exc


def test_translating_fills_in_file_and_stage() -> None:
    try:
        with translating(file="a.csv", stage="load"):
            raise pgerrors.DeadlockDetected("deadlock detected")
    except TransientError as exc:
        assert (exc.file, exc.stage) == ("a.csv", "load")
        assert isinstance(exc.__cause__, pgerrors.DeadlockDetected)
    else:
        raise AssertionError("no error raised")
