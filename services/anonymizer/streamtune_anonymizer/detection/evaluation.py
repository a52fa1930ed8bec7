"""How well detected spans match gold spans: recall and precision per PII type and overall.

Pure. Two views: whitespace tokens (what redaction replaces; the measure BIO labels care about) and
spans. The overall figures merge every type into one PII class, so a ZIP code found as part of a street
address still counts there; per-type figures need the same type on both sides.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .spans import PiiSpan

OVERALL = "PII"
# Types of the presidio-research data (and similar sets) under the names the detector uses.
GOLD_TYPE_MAP: Mapping[str, str] = {
    "EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "IBAN_CODE": "IBAN", "DATE_TIME": "DATE",
    "GPE": "LOCATION", "DOMAIN_NAME": "URL", "US_DRIVER_LICENSE": "DRIVER_LICENSE",
}
_TOKEN = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class GoldRecord:
    """A text and its gold spans as ``(start, end, type)``, offsets end-exclusive."""

    text: str
    spans: tuple[tuple[int, int, str], ...]


def presidio_records(rows: Iterable[Mapping], type_map: Mapping[str, str] = GOLD_TYPE_MAP) -> list[GoldRecord]:
    """GoldRecords from presidio-style rows (``full_text`` or ``text``; ``spans`` with start/end_position)."""
    return [
        GoldRecord(row.get("full_text", row.get("text", "")), tuple(
            (s["start_position"], s["end_position"], type_map.get(s["entity_type"], s["entity_type"]))
            for s in row["spans"]))
        for row in rows
    ]


@dataclass
class Figures:
    """Counts behind one row of scores; the ratios are NaN where nothing was there to count."""

    gold_tokens: int = 0
    found_tokens: int = 0
    predicted_tokens: int = 0
    correct_tokens: int = 0
    gold_spans: int = 0
    found_spans: int = 0
    predicted_spans: int = 0
    correct_spans: int = 0

    @property
    def token_recall(self) -> float:
        """Gold PII tokens that a predicted span touches."""
        return _ratio(self.found_tokens, self.gold_tokens)

    @property
    def token_precision(self) -> float:
        """Predicted PII tokens that a gold span touches."""
        return _ratio(self.correct_tokens, self.predicted_tokens)

    @property
    def span_recall(self) -> float:
        """Gold spans whose every non-space character is covered by predicted spans."""
        return _ratio(self.found_spans, self.gold_spans)

    @property
    def span_precision(self) -> float:
        """Predicted spans that overlap a gold span."""
        return _ratio(self.correct_spans, self.predicted_spans)


@dataclass
class Scores:
    """Figures over every type merged into one PII class (``overall``) and per type (``per_type``)."""

    overall: Figures = field(default_factory=Figures)
    per_type: dict[str, Figures] = field(default_factory=dict)

    def of(self, pii_type: str) -> Figures:
        """The figures of one type (empty figures for a type seen on neither side)."""
        return self.per_type.get(pii_type, Figures())


def score(records: Sequence[GoldRecord], predictions: Sequence[Sequence[PiiSpan]]) -> Scores:
    """Token- and span-level recall and precision of ``predictions`` (one list of spans per record)."""
    scores = Scores()
    for record, predicted in zip(records, predictions, strict=True):
        pred = [(s.start, s.end, s.pii_type) for s in predicted]
        _count_tokens(scores, record.text, record.spans, pred)
        _count_spans(scores, record.text, record.spans, pred)
    return scores


def _figures(scores: Scores, pii_type: str) -> Figures:
    return scores.per_type.setdefault(pii_type, Figures())


def _count_tokens(scores: Scores, text: str, gold: Sequence[tuple], pred: Sequence[tuple]) -> None:
    for token in _TOKEN.finditer(text):
        start, end = token.span()
        gold_types = {t for s, e, t in gold if s < end and start < e}
        pred_types = {t for s, e, t in pred if s < end and start < e}
        for pii_type in gold_types:
            _figures(scores, pii_type).gold_tokens += 1
            _figures(scores, pii_type).found_tokens += pii_type in pred_types
        for pii_type in pred_types:
            _figures(scores, pii_type).predicted_tokens += 1
            _figures(scores, pii_type).correct_tokens += pii_type in gold_types
        scores.overall.gold_tokens += bool(gold_types)
        scores.overall.found_tokens += bool(gold_types and pred_types)
        scores.overall.predicted_tokens += bool(pred_types)
        scores.overall.correct_tokens += bool(gold_types and pred_types)


def _count_spans(scores: Scores, text: str, gold: Sequence[tuple], pred: Sequence[tuple]) -> None:
    covered_by_type: Counter[tuple[str, int]] = Counter((t, i) for s, e, t in pred for i in range(s, e))
    covered = {i for _, i in covered_by_type}
    for start, end, pii_type in gold:
        needed = [i for i in range(start, end) if not text[i].isspace()]
        figures = _figures(scores, pii_type)
        figures.gold_spans += 1
        figures.found_spans += all((pii_type, i) in covered_by_type for i in needed)
        scores.overall.gold_spans += 1
        scores.overall.found_spans += all(i in covered for i in needed)
    for start, end, pii_type in pred:
        figures = _figures(scores, pii_type)
        figures.predicted_spans += 1
        figures.correct_spans += any(t == pii_type and start < e and s < end for s, e, t in gold)
        scores.overall.predicted_spans += 1
        scores.overall.correct_spans += any(start < e and s < end for s, e, _ in gold)


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")
