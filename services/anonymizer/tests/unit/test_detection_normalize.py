"""Normalization: obfuscated values are found, and spans map back to the characters the user wrote."""

from __future__ import annotations

import time

import pytest
from streamtune_anonymizer.detection import PiiDetector, PiiSpan, default_recognizers, normalize

DETECTOR = PiiDetector(default_recognizers())


def _found(text: str) -> list[tuple[str, str]]:
    return [(s.pii_type, text[s.start:s.end]) for s in DETECTOR.detect([text])[0]]


@pytest.mark.parametrize("text, value, pii_type", [
    ("mail jo\u00adhn@example.com now", "jo\u00adhn@example.com", "EMAIL"),
    ("mail jo\u200bhn@exa\u200dmple.com now", "jo\u200bhn@exa\u200dmple.com", "EMAIL"),
    ("card \uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 ok",
     "\uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11",
     "CREDIT_CARD"),
    ("ip 10.0.\u200b0.1 seen", "10.0.\u200b0.1", "IP_ADDRESS"),
])
def test_obfuscated_values_are_found_at_their_original_offsets(text, value, pii_type):
    assert _found(text) == [(pii_type, value)]


def test_the_offset_map_points_expanded_characters_back_to_their_source():
    normalized = normalize("\ufb01x \u00ad9")  # the "fi" ligature expands to two characters
    assert normalized.text == "fix 9"
    assert normalized.to_original(PiiSpan(0, 3, "X")) == PiiSpan(0, 2, "X")
    assert normalized.to_original(PiiSpan(4, 5, "X")) == PiiSpan(4, 5, "X")  # the soft hyphen is gone


def test_ascii_text_is_its_own_normalization():
    assert normalize("plain text 123").origins is None


@pytest.mark.parametrize("text", ["Привет, мир", "日本語のテキスト 😀 👩‍👩‍👧", "مرحبا بالعالم", "\u0301\u200d", ""])
def test_other_scripts_and_emoji_never_crash_and_find_nothing(text):
    assert DETECTOR.detect([text]) == [[]]


def test_a_ten_thousand_character_text_is_fast():
    text = ("Ring 555-123-4567 or jo\u00adhn@example.com. 日本語 😀 Straße ") * 200
    started = time.perf_counter()
    spans = DETECTOR.detect([text[:10_000]])[0]
    assert time.perf_counter() - started < 2.0
    assert {s.pii_type for s in spans} == {"PHONE", "EMAIL"}
