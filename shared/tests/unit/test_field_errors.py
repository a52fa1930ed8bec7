"""Validation errors turned into dead-letter field errors: the field named, the input never echoed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from streamtune_shared.schemas import CleanEvent, field_errors


def test_field_errors_name_the_field_and_not_the_value():
    with pytest.raises(ValidationError) as caught:
        CleanEvent.model_validate_json(b'{"schema_version": 1, "event_id": "e1", "text": "secret 555-0100"}')
    errors = field_errors(caught.value)
    assert "device_id" in {e.field for e in errors}
    assert all("555-0100" not in e.message for e in errors)


def test_field_errors_of_a_payload_that_is_not_json():
    with pytest.raises(ValidationError) as caught:
        CleanEvent.model_validate_json(b"not json")
    assert field_errors(caught.value)[0].field == "payload"
