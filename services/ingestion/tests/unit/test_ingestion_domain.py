"""Validation and cleaning of producer payloads: every rejection names its field, every drop leaves a note."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from streamtune_ingestion.domain import Accepted, IngestionPolicy, Rejected, clean_readings, ingest_payload
from streamtune_shared.schemas import ValidEvent

POLICY = IngestionPolicy(max_payload_bytes=4096, sensor_limits={"temp": (-50.0, 200.0), "pressure": (0.0, 16.0)})


def event(now, **changes: Any) -> dict[str, Any]:
    base = {"schema_version": 1, "event_id": "evt-1", "device_id": "pump-7", "dataset": "pump-sensors",
            "ts": now.isoformat(), "readings": {"temp": 21.5, "pressure": 3.0}}
    base.update(changes)
    return base


def ingest(document: Any, now, policy: IngestionPolicy = POLICY):
    return ingest_payload(json.dumps(document).encode(), policy, now)


def rejected(outcome) -> Rejected:
    assert isinstance(outcome, Rejected), outcome
    return outcome


def fields(outcome) -> list[str]:
    return [e.field for e in rejected(outcome).errors]


def test_fixture_events_are_accepted_unchanged_and_stamped(now, pump_events, clinical_events):
    policy = IngestionPolicy()
    for document in pump_events + clinical_events:
        outcome = ingest_payload(json.dumps(document).encode(), policy, now)
        assert isinstance(outcome, Accepted), (document["event_id"], outcome)
        assert outcome.event.readings == pytest.approx(document["readings"])
        assert outcome.event.label == document["label"] and outcome.event.notes == ()
        assert outcome.event.ingested_at == now


def test_the_valid_event_is_a_valid_wire_message(now):
    outcome = ingest(event(now, readings={"temp": 999, "x": None}, meta={"site": "plant-3"}), now)
    assert isinstance(outcome, Accepted)
    wire = ValidEvent.model_validate_json(outcome.event.model_dump_json())
    assert wire == outcome.event
    assert wire.readings == {} and len(wire.notes) == 2


@pytest.mark.parametrize(("raw", "code", "words"), [
    (None, "missing_payload", "no 'payload' field"),
    (b"x" * 5000, "too_large", "5000 bytes (max 4096)"),
    (b"\xff\xfe{}", "not_utf8", "not UTF-8"),
    (b"{not json", "not_json", "not JSON"),
    (b"", "not_json", "not JSON"),
    (b"[" * 2000 + b"]" * 2000, "not_json", "nested too deeply"),
    (b"[1, 2]", "not_object", "JSON array, not an object"),
    (b'"just text"', "not_object", "JSON string, not an object"),
    (b"null", "not_object", "JSON null, not an object"),
])
def test_unusable_payloads_are_rejected_naming_the_payload(now, raw, code, words):
    outcome = rejected(ingest_payload(raw, POLICY, now))
    assert outcome.code == code
    assert words in outcome.reason
    assert [e.field for e in outcome.errors] == ["payload"]


def test_duplicate_keys_are_rejected_naming_each_path(now):
    raw = (b'{"schema_version": 1, "event_id": "a", "event_id": "b", "device_id": "d", "dataset": "ds",'
           b' "ts": "' + now.isoformat().encode() + b'", "readings": {"temp": 1, "temp": 2}}')
    outcome = rejected(ingest_payload(raw, POLICY, now))
    assert outcome.code == "duplicate_key"
    assert fields(outcome) == ["event_id", "readings.temp"]
    assert "event_id" in outcome.reason and "readings.temp" in outcome.reason


def test_missing_schema_version_is_rejected(now):
    document = event(now)
    del document["schema_version"]
    outcome = rejected(ingest(document, now))
    assert outcome.reason == "missing schema_version (supported: 1)"
    assert fields(outcome) == ["schema_version"]


@pytest.mark.parametrize(("version", "shown"), [(7, "7"), ("1", '"1"'), (True, "true"), (1.0, "1.0")])
def test_unsupported_schema_version_is_rejected_with_the_supported_list(now, version, shown):
    outcome = rejected(ingest(event(now, schema_version=version), now))
    assert outcome.reason == f"unsupported schema_version {shown} (supported: 1)"
    assert fields(outcome) == ["schema_version"]


@pytest.mark.parametrize(("changes", "field"), [
    ({"device_id": None}, "device_id"),
    ({"dataset": "Has Spaces"}, "dataset"),
    ({"ts": "2026-01-01T00:00:00"}, "ts"),
    ({"ts": "yesterday"}, "ts"),
    ({"text": 42}, "text"),
    ({"label": {"class": "fault"}}, "label"),
    ({"label": True}, "label"),
    ({"meta": {"site": {"nested": 1}}}, "meta.site"),
    ({"readings": [1.0, 2.0]}, "readings"),
    ({"colour": "red"}, "colour"),
    ({"meta": {"int": [1]}}, "meta.int"),
    ({"readings": {"Bad Sensor!": 1.0}}, "readings"),
])
def test_schema_errors_name_the_field_in_the_document(now, changes, field):
    outcome = rejected(ingest(event(now, **changes), now))
    assert outcome.code == "invalid"
    assert fields(outcome) == [field]
    assert field in outcome.reason
    assert outcome.event_id == "evt-1"


def test_a_bad_tag_in_a_label_list_is_named_by_its_index(now):
    outcome = rejected(ingest(event(now, label=["O", 5], text="two words"), now))
    # A union: "not a class name or int" for label, and "not a string" for the tag at index 1.
    assert fields(outcome) == ["label", "label.1"]


def test_a_missing_field_is_named(now):
    document = event(now)
    del document["device_id"]
    outcome = rejected(ingest(document, now))
    assert [(e.field, e.message) for e in outcome.errors] == [("device_id", "Field required")]


def test_every_non_numeric_reading_is_named(now):
    outcome = rejected(ingest(event(now, readings={"temp": "hot", "pressure": 1.0, "rpm": True}), now))
    assert fields(outcome) == ["readings.temp", "readings.rpm"]


def test_a_sensor_name_that_is_not_a_valid_name_is_not_echoed(now):
    outcome = rejected(ingest(event(now, readings={"call 555-0100!": "hot", "temp": 1.0}), now))
    assert [(e.field, e.message.split(":")[0]) for e in outcome.errors] == [("readings", "invalid key")]
    assert "555-0100" not in repr(outcome.errors) and "555-0100" not in outcome.reason


def test_union_errors_are_merged_into_one_error_per_field(now):
    outcome = rejected(ingest(event(now, label={"class": "fault"}), now))
    (error,) = outcome.errors
    assert "valid string" in error.message and "valid integer" in error.message


def test_bio_tags_that_do_not_match_the_text_name_the_label(now):
    outcome = rejected(ingest(event(now, text="pain in the chest", label=["O", "B-Disease"]), now))
    (error,) = outcome.errors
    assert error.field == "label"
    assert "2 tags for 4 whitespace tokens" in error.message


def test_a_tag_that_is_not_bio_is_named_by_position_on_the_label(now):
    outcome = rejected(ingest(event(now, text="call 555-0100", label=["O", "555-0100"]), now))
    assert [(e.field, e.message) for e in outcome.errors] == [
        ("label", "not BIO tags (O, B-<type>, I-<type>) at position 1")]


def test_several_errors_are_all_reported(now):
    outcome = rejected(ingest(event(now, device_id="", dataset="UPPER", extra=1), now))
    assert sorted(fields(outcome)) == ["dataset", "device_id", "extra"]


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_readings_are_dropped_with_a_note(now, literal):
    raw = json.dumps(event(now, readings={"temp": 0.0, "pressure": 2.0})).encode().replace(b"0.0", literal, 1)
    outcome = ingest_payload(raw, POLICY, now)
    assert isinstance(outcome, Accepted)
    assert outcome.event.readings == {"pressure": 2.0}
    assert outcome.event.notes == ("reading 'temp' dropped: not finite",)
    assert outcome.dropped == ("not_finite",)


def test_out_of_range_readings_are_dropped_with_the_limits_in_the_note(now):
    outcome = ingest(event(now, readings={"temp": 999, "pressure": -0.5, "rpm": 1e9}), now)
    assert isinstance(outcome, Accepted)
    assert outcome.event.readings == {"rpm": 1e9}  # no limit configured for rpm
    assert outcome.event.notes == (
        "reading 'temp' dropped: 999.0 outside [-50, 200]",
        "reading 'pressure' dropped: -0.5 outside [0, 16]",
    )
    assert outcome.dropped == ("out_of_range", "out_of_range")


def test_limits_are_inclusive():
    kept, notes, _ = clean_readings({"temp": -50.0, "pressure": 16.0}, POLICY.sensor_limits)
    assert kept == {"temp": -50.0, "pressure": 16.0} and notes == []


def test_fractional_limits_are_shown_exactly():
    _, notes, _ = clean_readings({"v": 0.3}, {"v": (0.25, 0.275)})
    assert notes == ["reading 'v' dropped: 0.3 outside [0.25, 0.275]"]


def test_null_readings_are_dropped_with_a_note(now):
    outcome = ingest(event(now, readings={"temp": None, "pressure": 1.0}), now)
    assert isinstance(outcome, Accepted)
    assert outcome.event.readings == {"pressure": 1.0}
    assert outcome.event.notes == ("reading 'temp' dropped: null",)
    assert outcome.dropped == ("null",)


def test_a_timestamp_too_far_in_the_future_is_rejected_naming_ts(now):
    outcome = rejected(ingest(event(now, ts=(now + timedelta(seconds=301)).isoformat()), now))
    assert outcome.code == "ts_out_of_window" and fields(outcome) == ["ts"]
    assert outcome.reason == "ts is 301 s in the future (max skew 300 s)"
    assert outcome.event_id == "evt-1"


def test_a_little_clock_skew_is_accepted(now):
    assert isinstance(ingest(event(now, ts=(now + timedelta(seconds=299)).isoformat()), now), Accepted)


def test_a_timestamp_older_than_the_max_age_is_rejected_naming_ts(now):
    policy = IngestionPolicy(max_age_s=3600)
    outcome = rejected(ingest(event(now, ts=(now - timedelta(hours=2)).isoformat()), now, policy))
    assert fields(outcome) == ["ts"]
    assert outcome.reason == "ts is 7200 s in the past (max age 3600 s)"
    assert isinstance(ingest(event(now, ts=(now - timedelta(minutes=59)).isoformat()), now, policy), Accepted)


def test_timestamps_in_other_zones_are_compared_as_instants(now):
    local = (now + timedelta(hours=5)).isoformat().replace("+00:00", "+05:00")
    assert isinstance(ingest(event(now, ts=local), now), Accepted)
