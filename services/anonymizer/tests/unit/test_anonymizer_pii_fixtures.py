"""Redaction measured on the committed fixtures: recall and precision per PII type on the presidio texts
(gold character spans), no PII value surviving, and BIO alignment kept on every clinical note.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamtune_anonymizer.domain import AnonymizationPolicy, anonymize_event
from streamtune_anonymizer.redaction import PII_TYPES, find_pii, redact_text
from streamtune_shared.schemas import ValidEvent

FIXTURES = Path(__file__).resolve().parents[4] / "tests" / "fixtures"
GOLD_TYPES = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CREDIT_CARD",
              "IP_ADDRESS": "IP_ADDRESS", "IBAN_CODE": "IBAN"}
# Measured on this fixture: 1.00 for every type (67 cards, 38 phones, 26 e-mails, 8 IBANs, 5 IPs).
# The thresholds leave a margin of about one miss per type; a regression below them fails.
MIN_RECALL = {"EMAIL": 0.95, "IP_ADDRESS": 0.95, "CREDIT_CARD": 0.97, "IBAN": 0.95, "PHONE": 0.95}
MIN_PRECISION = {"EMAIL": 0.95, "IP_ADDRESS": 0.95, "CREDIT_CARD": 0.97, "IBAN": 0.95, "PHONE": 0.90}
CONTACT_MARKERS = (" Call the ward", " Results sent", " Billing card")
KEY = b"unit-test-key-0123456789abcdefghijklmnopqrstuv"


def _jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]


PII_TEXTS = _jsonl("pii_texts.jsonl")
NOTES = _jsonl("clinical_notes.jsonl")


def _scores() -> tuple[dict[str, float], dict[str, float]]:
    """Recall: gold spans whose every character is covered by a predicted span of the same type.
    Precision: predicted spans that overlap a gold span of the same type."""
    gold, hit, predicted, correct = Counter(), Counter(), Counter(), Counter()
    for record in PII_TEXTS:
        spans = find_pii(record["text"])
        golds = [(GOLD_TYPES[g["entity_type"]], g["start_position"], g["end_position"]) for g in record["spans"]]
        for pii_type, start, end in golds:
            gold[pii_type] += 1
            covered = {i for s in spans if s.pii_type == pii_type for i in range(s.start, s.end)}
            hit[pii_type] += set(range(start, end)) <= covered
        for span in spans:
            predicted[span.pii_type] += 1
            correct[span.pii_type] += any(t == span.pii_type and span.start < e and s < span.end for t, s, e in golds)
    recall = {t: hit[t] / gold[t] for t in gold}
    precision = {t: correct[t] / predicted[t] for t in predicted}
    return recall, precision


def test_every_pii_type_is_in_the_fixture():
    recall, _ = _scores()
    assert set(recall) == set(MIN_RECALL)
    assert set(recall) <= set(PII_TYPES)


@pytest.mark.parametrize("pii_type", sorted(MIN_RECALL))
def test_recall_per_type_meets_the_measured_threshold(pii_type):
    recall, _ = _scores()
    assert recall[pii_type] >= MIN_RECALL[pii_type], f"{pii_type} recall {recall[pii_type]:.3f}"


@pytest.mark.parametrize("pii_type", sorted(MIN_PRECISION))
def test_precision_per_type_meets_the_measured_threshold(pii_type):
    _, precision = _scores()
    assert precision[pii_type] >= MIN_PRECISION[pii_type], f"{pii_type} precision {precision[pii_type]:.3f}"


@pytest.mark.parametrize("record", PII_TEXTS, ids=lambda r: r["text"][:30])
def test_no_gold_value_survives_redaction(record):
    redacted = redact_text(record["text"]).text
    survivors = [g["entity_type"] for g in record["spans"] if g["entity_value"] in redacted]
    assert not survivors
    assert len(redacted.split()) == len(record["text"].split())


def _contact_values(text: str) -> list[str]:
    """The PII values the fixture builder appended to a note (every token of its contact sentence with digits or @)."""
    starts = [text.find(marker) for marker in CONTACT_MARKERS if marker in text]
    if not starts:
        return []
    tokens = text[min(starts):].split()
    return [t for t in tokens if "@" in t or any(c.isdigit() for c in t)]


@pytest.mark.parametrize("note", NOTES, ids=lambda n: n["event_id"])
def test_every_clinical_note_keeps_its_bio_alignment_and_loses_its_contact_details(note):
    event = ValidEvent.model_validate({**note, "ingested_at": "2026-11-01T09:00:00Z"})
    clean = anonymize_event(event, AnonymizationPolicy(key=KEY), datetime(2026, 11, 1, 9, 1, tzinfo=UTC))
    assert len(clean.text.split()) == len(clean.label) == len(note["label"])
    assert clean.label == note["label"]
    assert not [value for value in _contact_values(note["text"]) if value in clean.text]


# Dates and ages in the notes ("in 1986", "at age 60 years") are fine to redact; measured: 9 in 400 notes.
TOLERATED_IN_PROSE = {"DATE", "AGE"}
MAX_TOLERATED_IN_PROSE = 12


def test_clinical_prose_has_no_false_positives():
    """NCBI sentences hold gene names, mutations, years and ratios but no PII: nothing outside the
    appended contact sentences may be redacted, except a few dates and ages."""
    wrongly, tolerated = [], []
    for note in NOTES:
        text = note["text"]
        cut = min([text.find(m) for m in CONTACT_MARKERS if m in text], default=len(text))
        for span in find_pii(text):
            if span.start < cut:
                found = tolerated if span.pii_type in TOLERATED_IN_PROSE else wrongly
                found.append((span.pii_type, text[span.start:span.end]))
    assert wrongly == []
    assert len(tolerated) <= MAX_TOLERATED_IN_PROSE, tolerated
    assert sum(bool(_contact_values(n["text"])) for n in NOTES) == 50


def test_random_texts_always_keep_their_token_count():
    rng = random.Random(3)
    pieces = ["a@b.io", "+1-415-555-0100", "4111 1111 1111 1111", "10.0.0.1", "::1", "GB82 WEST 1234 5698 7654 32",
              "555", "123-4567", "(0)", "x12", "-", ".", "2020-01-01", "word", "\u00a0", "\t", "\n", " ", "  "]
    for _ in range(2000):
        text = "".join(rng.choice(pieces) + rng.choice(["", " ", "  ", "\n"]) for _ in range(rng.randrange(1, 12)))
        assert len(redact_text(text).text.split()) == len(text.split()), repr(text)
