"""Validation errors turned into dead-letter field errors: the field named, the input never echoed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from streamtune_shared.schemas import CleanEvent, Event, FieldError, Prediction, TrainRequest, field_errors

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
    assert [e.field for e in field_errors(caught.value, root="event")] == ["event"]


def test_union_member_tags_are_not_path_steps_and_a_field_is_reported_once():
    (error,) = event_errors(label={"class": "fault"})
    assert error.field == "label"
    assert error.message == ("Input should be a valid string; Input should be a valid integer;"
                             " Input should be a valid list")


@pytest.mark.parametrize(("changes", "fields"), [
    ({"label": ["O", 5], "text": "two words"}, ["label", "label.1"]),
    ({"meta": {"site": {"nested": 1}}}, ["meta.site"]),
    ({"meta": {"int": [1]}}, ["meta.int"]),  # a key that looks like a union tag is still a key
    ({"readings": {"temp": "hot", "pressure": 1.0, "rpm": True}}, ["readings.temp", "readings.rpm"]),
    ({"colour": "red"}, ["colour"]),
])
def test_paths_are_steps_of_the_document(changes, fields):
    assert [e.field for e in event_errors(**changes)] == fields


@pytest.mark.parametrize(("changes", "field"), [
    ({"readings": {f"call {SECRET}!": "x"}}, "readings"),
    ({"meta": {f"call {SECRET}!": [1]}}, "meta"),
    ({SECRET: 1}, "payload"),
])
def test_a_key_that_is_not_a_valid_name_is_input_and_stays_out_of_paths(changes, field):
    errors = event_errors(**changes)
    assert [e.field for e in errors] == [field]
    assert SECRET not in messages(errors)


def test_a_value_under_an_invalid_key_is_reported_on_the_enclosing_field():
    (error,) = event_errors(readings={f"call {SECRET}!": "x"})
    assert error.message.startswith("invalid key: String should match pattern")
    assert error.message.endswith("; value of an invalid key: must be a number or null")


def test_nested_models_and_tuples_are_walked():
    document = {"schema_version": 1, "event_id": "e1", "dataset": "notes", "model": "ner", "version": "v1",
                "task": "token-classification", "latency_ms": 1.0,
                "outputs": {"entities": [{"start": "x", "end": 1, "label": "a", "text": "b", "score": 1.0}]}}
    with pytest.raises(ValidationError) as caught:
        Prediction.model_validate(document)
    assert [e.field for e in field_errors(caught.value)] == ["outputs.entities.0.start"]


def test_limit_caps_the_number_of_fields():
    with pytest.raises(ValidationError) as caught:
        Event.model_validate({"schema_version": 1})
    assert len(field_errors(caught.value)) == 4
    assert [e.field for e in field_errors(caught.value, limit=2)] == ["event_id", "device_id"]


@pytest.mark.parametrize("request_id", ["ab/cd:ef", "abc:def", "../x", ".hidden", "-x", "a b", "x" * 129, ""])
def test_a_request_id_that_cannot_name_a_version_is_a_field_error(request_id):
    with pytest.raises(ValidationError) as caught:
        TrainRequest(request_id=request_id, model_name="ner", task="token-classification", dataset="notes")
    errors = field_errors(caught.value)
    assert [e.field for e in errors] == ["request_id"]
    if request_id:
        assert request_id not in messages(errors)


@pytest.mark.parametrize("request_id", ["run-1", "it-clinical-ner", "0123456789abcdef", "a.b_c-D", "x" * 128, None])
def test_request_ids_that_name_versions_are_accepted(request_id):
    request = TrainRequest(request_id=request_id, model_name="ner", task="token-classification", dataset="notes")
    assert request.request_id == request_id
