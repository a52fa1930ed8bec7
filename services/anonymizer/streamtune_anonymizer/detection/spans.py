"""Detected PII spans, the names of the PII types, and how overlapping detections are resolved."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

EMAIL = "EMAIL"
PHONE = "PHONE"
URL = "URL"
IP_ADDRESS = "IP_ADDRESS"
CREDIT_CARD = "CREDIT_CARD"
IBAN = "IBAN"
US_SSN = "US_SSN"
PASSPORT = "PASSPORT"
DRIVER_LICENSE = "DRIVER_LICENSE"
MEDICAL_RECORD = "MEDICAL_RECORD"
DATE = "DATE"
AGE = "AGE"
ZIP_CODE = "ZIP_CODE"
STREET_ADDRESS = "STREET_ADDRESS"
# Types the entity models (NER) find; the pattern recognizers never emit them.
PERSON = "PERSON"
ORGANIZATION = "ORGANIZATION"
LOCATION = "LOCATION"
NRP = "NRP"
TITLE = "TITLE"

PATTERN_TYPES = (EMAIL, PHONE, URL, IP_ADDRESS, CREDIT_CARD, IBAN, US_SSN, PASSPORT, DRIVER_LICENSE,
                 MEDICAL_RECORD, DATE, AGE, ZIP_CODE, STREET_ADDRESS)
MODEL_TYPES = (PERSON, ORGANIZATION, LOCATION, NRP, TITLE, STREET_ADDRESS)
ALL_TYPES = tuple(dict.fromkeys(PATTERN_TYPES + MODEL_TYPES))

# Higher wins an overlap: check-digit and syntax-validated values first, context-dependent ones last.
PRIORITY = {
    EMAIL: 90, URL: 85, IBAN: 80, CREDIT_CARD: 80, IP_ADDRESS: 75, US_SSN: 70, PHONE: 60,
    PASSPORT: 55, DRIVER_LICENSE: 55, MEDICAL_RECORD: 55, DATE: 50, AGE: 45, ZIP_CODE: 40,
    STREET_ADDRESS: 30, PERSON: 20, ORGANIZATION: 20, LOCATION: 20, NRP: 15, TITLE: 15,
}
UNKNOWN_PRIORITY = 10


@dataclass(frozen=True, slots=True)
class PiiSpan:
    """A detected PII value: character offsets (end exclusive), its type, who found it and how sure it is."""

    start: int
    end: int
    pii_type: str
    source: str = "pattern"
    score: float = 1.0

    def __len__(self) -> int:
        return self.end - self.start


def merge_spans(spans: Iterable[PiiSpan]) -> list[PiiSpan]:
    """Non-overlapping spans in text order.

    Spans of one type that overlap or touch become one. Where types overlap, the higher-priority
    (then longer, then surer) span keeps the overlap, and the other keeps only its parts outside it,
    so no character that any detector flagged is left out.
    """
    ranked = sorted(_union_same_type(spans), key=_rank, reverse=True)
    taken: list[PiiSpan] = []
    for span in ranked:
        taken.extend(_outside(span, taken))
    return sorted(taken, key=lambda s: s.start)


def _rank(span: PiiSpan) -> tuple[int, int, float, int]:
    return PRIORITY.get(span.pii_type, UNKNOWN_PRIORITY), len(span), span.score, -span.start


def _union_same_type(spans: Iterable[PiiSpan]) -> list[PiiSpan]:
    merged: list[PiiSpan] = []
    for span in sorted(spans, key=lambda s: (s.pii_type, s.start, -s.end)):
        if span.end <= span.start:
            continue
        last = merged[-1] if merged else None
        if last is not None and last.pii_type == span.pii_type and span.start <= last.end:
            merged[-1] = replace(last, end=max(last.end, span.end), score=max(last.score, span.score))
        else:
            merged.append(span)
    return merged


def _outside(span: PiiSpan, taken: list[PiiSpan]) -> list[PiiSpan]:
    """The pieces of ``span`` that no span in ``taken`` covers."""
    pieces = [span]
    for other in taken:
        if other.start >= span.end or other.end <= span.start:
            continue
        next_pieces = []
        for piece in pieces:
            if piece.start < other.start:
                next_pieces.append(replace(piece, end=min(piece.end, other.start)))
            if piece.end > other.end:
                next_pieces.append(replace(piece, start=max(piece.start, other.end)))
        pieces = next_pieces
    return pieces


def tidy_spans(text: str, spans: Iterable[PiiSpan]) -> list[PiiSpan]:
    """Spans without surrounding whitespace or separators; a span left with no letter or digit is dropped."""
    tidy = []
    for span in spans:
        start, end = span.start, span.end
        while start < end and (text[start].isspace() or text[start] in _EDGE_PUNCTUATION):
            start += 1
        while end > start and (text[end - 1].isspace() or text[end - 1] in _EDGE_PUNCTUATION):
            end -= 1
        if any(char.isalnum() for char in text[start:end]):
            tidy.append(span if (start, end) == (span.start, span.end) else replace(span, start=start, end=end))
    return tidy


# A trimmed piece of a longer span may be left with these at its edges ("Main St, " beside a ZIP code).
_EDGE_PUNCTUATION = frozenset(",;|>")
