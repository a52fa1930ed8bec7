"""Merging overlapping detections: same type unions, the stronger type keeps the overlap, nothing is lost."""

from __future__ import annotations

from streamtune_anonymizer.detection import PiiSpan, merge_spans
from streamtune_anonymizer.detection.spans import tidy_spans


def test_spans_of_one_type_that_overlap_or_touch_become_one():
    merged = merge_spans([PiiSpan(0, 5, "STREET_ADDRESS"), PiiSpan(5, 9, "STREET_ADDRESS"),
                          PiiSpan(3, 7, "STREET_ADDRESS"), PiiSpan(12, 14, "STREET_ADDRESS")])
    assert merged == [PiiSpan(0, 9, "STREET_ADDRESS"), PiiSpan(12, 14, "STREET_ADDRESS")]


def test_the_higher_priority_type_keeps_the_overlap_and_the_other_keeps_the_rest():
    merged = merge_spans([PiiSpan(0, 20, "STREET_ADDRESS", source="model", score=0.8), PiiSpan(14, 19, "ZIP_CODE")])
    assert merged == [PiiSpan(0, 14, "STREET_ADDRESS", source="model", score=0.8), PiiSpan(14, 19, "ZIP_CODE"),
                      PiiSpan(19, 20, "STREET_ADDRESS", source="model", score=0.8)]


def test_a_checked_value_beats_a_longer_model_guess():
    merged = merge_spans([PiiSpan(0, 30, "PERSON", source="model"), PiiSpan(5, 25, "EMAIL")])
    assert PiiSpan(5, 25, "EMAIL") in merged
    assert all(not (s.pii_type == "PERSON" and s.start < 25 and 5 < s.end) for s in merged)


def test_between_equal_priorities_the_longer_span_wins():
    merged = merge_spans([PiiSpan(0, 4, "PERSON"), PiiSpan(2, 12, "ORGANIZATION")])
    assert merged == [PiiSpan(0, 2, "PERSON"), PiiSpan(2, 12, "ORGANIZATION")]


def test_every_flagged_character_stays_covered():
    spans = [PiiSpan(0, 10, "DATE"), PiiSpan(5, 15, "PHONE"), PiiSpan(8, 30, "PERSON"), PiiSpan(29, 31, "AGE")]
    merged = merge_spans(spans)
    covered = {i for s in merged for i in range(s.start, s.end)}
    assert covered == set(range(0, 31))
    assert all(a.end <= b.start for a, b in zip(merged, merged[1:]))


def test_tidy_drops_pieces_left_with_only_separators():
    text = "12 Main St, 12345"
    assert tidy_spans(text, [PiiSpan(0, 12, "STREET_ADDRESS"), PiiSpan(10, 12, "STREET_ADDRESS")]) == [
        PiiSpan(0, 10, "STREET_ADDRESS")]
