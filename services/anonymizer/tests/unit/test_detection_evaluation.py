"""Scoring predictions against gold spans, by whitespace token and by span, per type and overall."""

from __future__ import annotations

import math

from streamtune_anonymizer.detection import PiiSpan
from streamtune_anonymizer.detection.evaluation import GoldRecord, presidio_records, score

TEXT = "mail a@b.io or call 555 123 4567 today"


def test_presidio_rows_are_read_with_the_type_map():
    rows = [{"full_text": TEXT, "spans": [{"entity_type": "EMAIL_ADDRESS", "entity_value": "a@b.io",
                                           "start_position": 5, "end_position": 11}]}]
    assert presidio_records(rows) == [GoldRecord(TEXT, ((5, 11, "EMAIL"),))]


def test_token_and_span_figures_per_type_and_overall():
    record = GoldRecord(TEXT, ((5, 11, "EMAIL"), (20, 32, "PHONE")))
    predicted = [PiiSpan(5, 11, "EMAIL"), PiiSpan(20, 27, "PHONE"), PiiSpan(33, 38, "DATE")]
    scores = score([record], [predicted])
    phone = scores.of("PHONE")
    assert (phone.token_recall, phone.token_precision) == (2 / 3, 1.0)
    assert (phone.span_recall, phone.span_precision) == (0.0, 1.0)  # "4567" was left out
    assert scores.of("EMAIL").span_recall == 1.0
    assert scores.of("DATE").token_precision == 0.0
    assert math.isnan(scores.of("DATE").token_recall)
    assert (scores.overall.token_recall, scores.overall.token_precision) == (3 / 4, 3 / 4)


def test_the_overall_figures_ignore_the_type():
    record = GoldRecord("at 12 Main St 62704", ((3, 13, "STREET_ADDRESS"), (14, 19, "ZIP_CODE")))
    scores = score([record], [[PiiSpan(3, 19, "STREET_ADDRESS")]])
    assert scores.overall.span_recall == 1.0 and scores.overall.token_precision == 1.0
    assert scores.of("ZIP_CODE").token_recall == 0.0
