"""Validation errors turned into dead-letter field errors: the field named, the input never echoed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from streamtune_shared.schemas import CleanEvent, Event, FieldError, field_errors

SECRET = "555-0100"


def event_errors(**changes: Any) -> tuple[FieldError, ...]:
    document = {"schema_version": 1, "event_id": "e1", "device_id": "d1", "dataset": "notes",
                "ts": "2026-01-01T00:00:00Z", **changes}
    with pytest.raises(ValidationError) as caught:
        Event.model_validate(document)
    return field_errors(caught.value)


def messages(errors: tuple[FieldError, ...]) -> str:
    return " | ".join(e.message for e in errors)


def test_field_errors_name_the_field_and_not_the_value():
    with pytest.raises(ValidationError) as caught:
        CleanEvent.model_validate_json(b'{"schema_version": 1, "event_id": "e1", "text": "secret 555-0100"}')
    errors = field_errors(caught.value)
    assert "device_id" in {e.field for e in errors}
    assert all(SECRET not in e.message for e in errors)


def test_a_tag_that_is_not_bio_is_reported_on_label_by_position_not_by_value():
    errors = event_errors(text="call me", label=["O", SECRET])
    assert [e.field for e in errors] == ["label"]
    assert SECRET not in messages(errors)
    assert "position 1" in errors[0].message


@pytest.mark.parametrize(("changes", "words"), [
    ({"text": "call me now", "label": ["O", "O"]}, "2 tags for 3 whitespace tokens"),
    ({"label": ["O"]}, "need a text"),
])
def test_bio_tags_that_do_not_fit_the_text_are_reported_on_label(changes, words):
    errors = event_errors(**changes)
    assert [e.field for e in errors] == ["label"]
    assert words in errors[0].message


def test_a_reading_that_is_not_a_number_is_not_named_in_the_message():
    # The sensor name is a valid name, so it is the reading's path (readings.<name>); the message says nothing of it.
    errors = event_errors(readings={SECRET: "x", "temp": 1.5})
    assert [e.field for e in errors] == [f"readings.{SECRET}"]
    assert SECRET not in messages(errors)
    assert "must be a number or null" in errors[0].message


def test_a_reading_value_is_not_echoed():
    errors = event_errors(readings={"temp": SECRET})
    assert [e.field for e in errors] == ["readings.temp"]
    assert SECRET not in messages(errors)


def test_field_errors_of_a_payload_that_is_not_json():
    with pytest.raises(ValidationError) as caught:
        CleanEvent.model_validate_json(b"not json")
    assert field_errors(caught.value)[0].field == "payload"
