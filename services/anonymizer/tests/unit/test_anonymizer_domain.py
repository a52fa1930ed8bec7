"""Pseudonyms, meta policies, anonymizing a whole event, decoding entries, and refusing weak keys."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from streamtune_anonymizer.config import AnonymizerSettings
from streamtune_anonymizer.domain import (
    AnonymizationPolicy,
    InvalidPayload,
    Pseudonymizer,
    WeakPseudonymKey,
    anonymize_event,
    anonymize_meta,
    check_pseudonym_key,
    decode_clean_event,
    decode_valid_event,
    pseudonym,
)
from streamtune_shared.schemas import MAX_TEXT_CHARS, ValidEvent

KEY = b"unit-test-key-0123456789abcdefghijklmnopqrstuv"
OTHER_KEY = b"another-key-0123456789abcdefghijklmnopqrstuvw"
STRONG = "k3Y-9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _valid(**overrides) -> ValidEvent:
    fields = {
        "schema_version": 1, "event_id": "e-1", "device_id": "pump-7", "dataset": "pump-sensors",
        "ts": "2026-11-28T11:59:00Z", "readings": {"p": 0.5}, "text": None, "label": 1,
        "meta": {"site": "plant-3", "operator": "op-042"}, "ingested_at": "2026-11-28T11:59:01Z",
    }
    return ValidEvent.model_validate({**fields, **overrides})


def test_pseudonym_is_stable_keyed_and_field_scoped():
    first = pseudonym(KEY, "device_id", "pump-7")
    assert first == pseudonym(KEY, "device_id", "pump-7")
    assert re.fullmatch(r"ps_[0-9a-f]{24}", first)
    assert first != pseudonym(OTHER_KEY, "device_id", "pump-7")
    assert first != pseudonym(KEY, "operator", "pump-7")
    assert first != pseudonym(KEY, "device_id", "pump-8")
    assert "pump" not in first


def test_meta_policy_keeps_pseudonymizes_and_drops():
    policy = AnonymizationPolicy(key=KEY, meta_actions={"site": "keep", "operator": "pseudonymize", "gps": "drop"})
    meta = {"site": "plant-3", "operator": "op-042", "gps": "52.52,13.40", "badge": 42, "shift": None}
    out = anonymize_meta(meta, policy)
    assert out["site"] == "plant-3"
    assert out["operator"] == pseudonym(KEY, "operator", "op-042")
    assert "gps" not in out
    assert out["badge"] == pseudonym(KEY, "badge", "42"), "unlisted keys are pseudonymized, numbers as text"
    assert out["shift"] is None


def test_the_same_meta_value_gets_the_same_pseudonym_across_events():
    policy = AnonymizationPolicy(key=KEY)
    a = anonymize_event(_valid(event_id="a"), policy, NOW)
    b = anonymize_event(_valid(event_id="b", device_id="pump-9"), policy, NOW)
    assert a.meta["operator"] == b.meta["operator"]
    assert a.device_id != b.device_id


def test_anonymize_event_pseudonymizes_the_device_and_redacts_text_and_notes():
    event = _valid(text="call +1-415-555-0100 or mail a@b.io", label=None,
                   notes=("reading temp dropped: NaN", "forwarded from 10.0.0.7"))
    clean = anonymize_event(event, AnonymizationPolicy(key=KEY), NOW)
    assert clean.device_id == pseudonym(KEY, "device_id", "pump-7")
    assert clean.text == "call <PHONE> or mail <EMAIL>"
    assert clean.notes == ("reading temp dropped: NaN", "forwarded from <IP_ADDRESS>")
    assert clean.redactions == {"PHONE": 1, "EMAIL": 1, "IP_ADDRESS": 1}
    assert clean.anonymized_at == NOW
    assert (clean.event_id, clean.dataset, clean.readings, clean.ts) == (event.event_id, event.dataset,
                                                                         event.readings, event.ts)


def test_bio_labels_stay_aligned_when_a_phone_spans_three_tokens():
    text = "Patient reachable at 555 123 4567 after surgery"
    labels = ["O"] * len(text.split())
    clean = anonymize_event(_valid(text=text, label=labels), AnonymizationPolicy(key=KEY), NOW)
    assert clean.text == "Patient reachable at <PHONE> <PHONE> <PHONE> after surgery"
    assert clean.label == labels


def test_a_text_that_tags_would_push_past_the_limit_is_masked_compactly():
    unit = "ip 1.1.1.1 "
    text = (unit * (MAX_TEXT_CHARS // len(unit)))[:MAX_TEXT_CHARS].rstrip()
    labels = ["O"] * len(text.split())
    clean = anonymize_event(_valid(text=text, label=labels), AnonymizationPolicy(key=KEY), NOW)
    assert len(clean.text) <= MAX_TEXT_CHARS
    assert "1.1.1.1" not in clean.text
    assert clean.redactions["IP_ADDRESS"] == text.count("1.1.1.1")


@pytest.mark.parametrize("payload", [
    None, b"not json", b"\xff\xfe binary", b"[1, 2]", b'{"schema_version": 1}',
    json.dumps({"schema_version": 2, "event_id": "x"}).encode(),
])
def test_anything_but_a_valid_event_is_an_invalid_payload(payload):
    with pytest.raises(InvalidPayload) as caught:
        decode_valid_event(payload)
    assert caught.value.reason


def test_invalid_payload_names_fields_and_the_event_without_echoing_values():
    secret = "jane@example.com"
    payload = json.dumps({"schema_version": 1, "event_id": "e-9", "device_id": secret, "dataset": "BAD NAME",
                          "ts": "yesterday", "ingested_at": "now"}).encode()
    with pytest.raises(InvalidPayload) as caught:
        decode_valid_event(payload)
    fields = {error.field for error in caught.value.errors}
    assert {"dataset", "ts", "ingested_at"} <= fields
    assert caught.value.event_id == "e-9"
    assert secret not in repr(caught.value.errors) and "BAD NAME" not in repr(caught.value.errors)


def test_a_clean_event_is_not_a_valid_event_and_back():
    clean = anonymize_event(_valid(), AnonymizationPolicy(key=KEY), NOW)
    payload = clean.model_dump_json().encode()
    assert decode_clean_event(payload) == clean
    with pytest.raises(InvalidPayload):
        decode_valid_event(payload)
    with pytest.raises(InvalidPayload):
        decode_clean_event(_valid().model_dump_json().encode())


@pytest.mark.parametrize("key", [
    "", "changeme", "secret", "dev", "test", "default", "password", "Password", "short-but-random-9f8a",
    "changeme" * 5, "ab" * 20, "secretsecret-passwordtest-devdev1",
])
def test_weak_keys_are_refused(key):
    with pytest.raises(WeakPseudonymKey):
        check_pseudonym_key(key)


def test_a_random_key_is_accepted_and_a_dev_key_only_when_allowed():
    check_pseudonym_key(STRONG)
    check_pseudonym_key("changeme", allow_dev_key=True)
    with pytest.raises(WeakPseudonymKey):
        check_pseudonym_key("", allow_dev_key=True)


def test_settings_refuse_to_load_without_a_strong_key(monkeypatch):
    monkeypatch.setenv("STREAMTUNE_S3_ACCESS_KEY", "a")
    monkeypatch.setenv("STREAMTUNE_S3_SECRET_KEY", "b")
    monkeypatch.delenv("ANONYMIZER_PSEUDONYM_KEY", raising=False)
    with pytest.raises(ValidationError, match="pseudonym_key"):
        AnonymizerSettings()
    monkeypatch.setenv("ANONYMIZER_PSEUDONYM_KEY", "changeme")
    with pytest.raises(ValidationError, match="well-known default") as caught:
        AnonymizerSettings()
    assert "changeme" not in str(caught.value), "the error must not echo the key"
    monkeypatch.setenv("ANONYMIZER_ALLOW_DEV_KEY", "true")
    assert AnonymizerSettings().allow_dev_key


def test_settings_read_the_meta_policy_as_json(monkeypatch):
    monkeypatch.setenv("STREAMTUNE_S3_ACCESS_KEY", "a")
    monkeypatch.setenv("STREAMTUNE_S3_SECRET_KEY", "b")
    monkeypatch.setenv("ANONYMIZER_PSEUDONYM_KEY", STRONG)
    monkeypatch.setenv("ANONYMIZER_META_POLICY", '{"site": "drop", "ward": "keep"}')
    assert AnonymizerSettings().meta_policy == {"site": "drop", "ward": "keep"}
    monkeypatch.setenv("ANONYMIZER_META_POLICY", '{"site": "publish"}')
    with pytest.raises(ValidationError, match="meta_policy"):
        AnonymizerSettings()


def test_settings_refuse_a_shard_reclaim_shorter_than_the_shard_age(monkeypatch):
    monkeypatch.setenv("STREAMTUNE_S3_ACCESS_KEY", "a")
    monkeypatch.setenv("STREAMTUNE_S3_SECRET_KEY", "b")
    with pytest.raises(ValidationError, match="shard_claim_idle_ms"):
        AnonymizerSettings(pseudonym_key=STRONG, shard_max_age_s=10, shard_claim_idle_ms=5000)


def test_the_memoized_pseudonymizer_matches_the_definition_and_stays_bounded():
    pseudonymize = Pseudonymizer(KEY, memo_size=4)
    values = [f"device-{i}" for i in range(10)] * 2
    assert [pseudonymize("device_id", v) for v in values] == [pseudonym(KEY, "device_id", v) for v in values]
    assert len(pseudonymize._memo) <= 4
