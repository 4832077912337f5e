"""The outbox's pure parts: stable event ids, the sent key and the stream entry's fields."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

from sluice.load import outbox

AT = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)


def _event(id_: int = 7, at: datetime = AT, **payload: object) -> outbox.OutboxEvent:
    return outbox.OutboxEvent(
        id=id_,
        event=outbox.LOADED,
        file_id="abc",
        dataset="weather",
        created_at=at,
        payload=payload,
    )


def test_the_event_id_is_a_uuid5_stable_across_redeliveries() -> None:
    first, again = _event(rows=3), _event(rows=3)

    assert first.event_id == again.event_id
    assert first.event_id.version == 5
    assert isinstance(first.event_id, uuid.UUID)


def test_the_event_id_does_not_depend_on_the_sessions_time_zone() -> None:
    elsewhere = AT.astimezone(timezone(timedelta(hours=-5)))

    assert _event(at=elsewhere).event_id == _event().event_id


def test_a_reused_id_of_a_recreated_database_is_another_event() -> None:
    later = AT + timedelta(microseconds=1)

    assert _event(7).event_id != _event(8).event_id
    assert _event(7, at=later).event_id != _event(7).event_id


def test_stream_fields_are_flat_strings_with_the_payload_as_json() -> None:
    event = _event(rows=3, path="/inbox/weather/a.csv", added_columns=["x"])

    fields = outbox.stream_fields(event)

    assert fields == {
        "event": "sluice.file.loaded",
        "event_id": str(event.event_id),
        "outbox_id": "7",
        "file_id": "abc",
        "dataset": "weather",
        "created_at": "2024-05-01T12:30:15.123456+00:00",
        "payload": fields["payload"],
    }
    assert json.loads(fields["payload"]) == {
        "rows": 3,
        "path": "/inbox/weather/a.csv",
        "added_columns": ["x"],
    }


def test_events_are_hashable_despite_their_payload() -> None:
    assert hash(_event(rows=1)) == hash(_event(rows=2))
    assert _event(rows=1) != _event(rows=2)
