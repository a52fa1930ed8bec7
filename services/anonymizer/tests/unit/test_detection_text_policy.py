"""Text policies (tag, mask, pseudonym, drop) per type and dataset, and the token-count invariant."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from streamtune_anonymizer.domain import AnonymizationPolicy, Pseudonymizer, anonymize_event
from streamtune_anonymizer.redaction import keyed_pseudonyms, pattern_detector, redact_text, redact_texts
from streamtune_anonymizer.text_policy import TextPolicy
from streamtune_shared.schemas import ValidEvent

KEY = b"unit-test-key-0123456789abcdefghijklmnopqrstuv"
PSEUDONYMS = keyed_pseudonyms(Pseudonymizer(KEY))
TEXT = "Mail Jane.Doe@example.com or call 555 123 4567"


def _redact(texts, policy, **kwargs):
    return redact_texts(texts, pattern_detector(), policy, pseudonym_of=PSEUDONYMS, **kwargs)


def test_the_policy_is_read_from_json_and_refuses_unknown_actions():
    policy = TextPolicy.model_validate_json(
        '{"default": "tag", "types": {"EMAIL": "pseudonym"}, "datasets": {"clinical-notes": {"EMAIL": "mask"}}}')
    assert policy.action("EMAIL") == "pseudonym"
    assert policy.action("EMAIL", "clinical-notes") == "mask"
    assert policy.action("PHONE", "clinical-notes") == "tag"
    with pytest.raises(ValidationError):
        TextPolicy.model_validate({"default": "shred"})


def test_tag_and_mask_keep_every_token():
    policy = TextPolicy(types={"PHONE": "mask"})
    [redacted] = _redact([TEXT], policy)
    assert redacted.text == "Mail <EMAIL> or call *** *** ****"
    assert redacted.counts == {"EMAIL": 1, "PHONE": 1}


def test_pseudonyms_are_stable_across_events_case_and_spacing_but_differ_between_values():
    policy = TextPolicy(default="pseudonym")
    first, second, other = _redact(["to JANE.DOE@example.com", "from jane.doe@EXAMPLE.com", "to bob@example.com"],
                                   policy)
    tag = first.text.split()[1]
    assert tag.startswith("<EMAIL_") and len(tag) == len("<EMAIL_") + 6 + 1
    assert second.text.split()[1] == tag
    assert other.text.split()[1] != tag
    assert "jane" not in first.text.lower()


def test_a_pseudonym_spanning_tokens_repeats_once_per_token():
    [redacted] = _redact(["call 555 123 4567"], TextPolicy(default="pseudonym"))
    tokens = redacted.text.split()
    assert len(tokens) == 4 and tokens[1] == tokens[2] == tokens[3]


def test_drop_removes_an_unlabeled_text_and_masks_a_labeled_one():
    policy = TextPolicy(datasets={"support": {"EMAIL": "drop"}})
    dropped, masked = _redact([TEXT, TEXT], policy, datasets=["support", "support"], labeled=[False, True])
    assert dropped.text is None
    assert masked.text == " ".join("*" * len(token) for token in TEXT.split())
    assert masked.counts == {"EMAIL": 1, "PHONE": 1}
    assert _redact([TEXT], policy, datasets=["other"])[0].text == "Mail <EMAIL> or call <PHONE> <PHONE> <PHONE>"


def test_pseudonyms_need_a_pseudonym_function():
    with pytest.raises(ValueError):
        redact_texts([TEXT], pattern_detector(), TextPolicy(default="pseudonym"))


_PIECES = st.sampled_from(["a@b.io", "+1-415-555-0100", "4111 1111 1111 1111", "10.0.0.1", "12/03/1985", "aged 42",
                           "90 Main Street", "Apt. 5", "ZIP 12345", "460-89-9847", "http://x.io/a", "word", "Straße",
                           "jo\u00adhn@x.org", "\uff14\uff11", "日本", "😀", "-", "."])
_SPACES = st.sampled_from(["", " ", "  ", "\n", "\t", "\u00a0", "\u2003"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_PIECES, _SPACES), max_size=12), st.sampled_from(["tag", "mask", "pseudonym"]))
def test_redaction_never_changes_the_number_of_whitespace_tokens(parts, action):
    text = "".join(piece + space for piece, space in parts)
    [redacted] = _redact([text], TextPolicy(default=action))
    assert len(redacted.text.split()) == len(text.split())
    assert len(redact_text(text, compact=True).text.split()) == len(text.split())


def test_a_result_past_the_length_limit_falls_back_to_one_character_masks():
    [redacted] = _redact([TEXT], TextPolicy(default="pseudonym"), max_chars=len(TEXT))
    assert redacted.text == "Mail * or call * * *"


def test_anonymize_event_uses_the_batch_redaction_of_its_text():
    event = ValidEvent.model_validate({
        "schema_version": 1, "event_id": "e-1", "device_id": "pump-7", "dataset": "support", "ts": "2026-11-28T11:59:00Z",
        "readings": {}, "text": TEXT, "label": None, "meta": {}, "ingested_at": "2026-11-28T11:59:01Z"})
    [redacted] = _redact([TEXT], TextPolicy(default="pseudonym"), datasets=[event.dataset])
    clean = anonymize_event(event, AnonymizationPolicy(key=KEY), datetime(2026, 11, 28, 12, tzinfo=UTC),
                            redacted_text=redacted)
    assert clean.text == redacted.text and "<EMAIL_" in clean.text
    assert clean.redactions == {"EMAIL": 1, "PHONE": 1}
