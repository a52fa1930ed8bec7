"""PII in free text replaced without changing the number of whitespace tokens (BIO labels depend on it).

Detection is ``detection.PiiDetector``; this module turns spans into a redacted text by a text policy:
each whitespace-separated piece of a value becomes one tag (``<EMAIL>``), one pseudonym tag
(``<PERSON_3f9a1c>``) or one mask (``****``), so "555 123 4567" turns into "<PHONE> <PHONE> <PHONE>".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import groupby

from .detection import PiiDetector, PiiSpan, default_recognizers
from .detection.spans import CREDIT_CARD, EMAIL, IBAN, IP_ADDRESS, PATTERN_TYPES, PHONE
from .text_policy import TextAction, TextPolicy, normalized_value

PII_TYPES = PATTERN_TYPES
COMPACT_MASK = "*"
MASK_CHAR = "*"
PSEUDONYM_TAG_HEX_CHARS = 6
__all__ = ["CREDIT_CARD", "EMAIL", "IBAN", "IP_ADDRESS", "PHONE", "PII_TYPES", "PiiSpan", "Redaction",
           "find_pii", "keyed_pseudonyms", "redact_text", "redact_texts"]

# A pseudonym of a value: (PII type, normalized value) -> hex string; the HMAC lives in domain.Pseudonymizer.
PseudonymOf = Callable[[str, str], str]


@dataclass(frozen=True, slots=True)
class Redaction:
    """A redacted text (None when the policy dropped it) and how many values of each PII type it replaced."""

    text: str | None
    counts: dict[str, int]


@lru_cache(maxsize=1)
def pattern_detector() -> PiiDetector:
    """The detector with the pattern recognizers only (no model), built once."""
    return PiiDetector(default_recognizers())


def find_pii(text: str) -> list[PiiSpan]:
    """Non-overlapping PII spans of ``text`` in text order, found by the pattern recognizers."""
    return pattern_detector().detect([text])[0]


def redact_text(text: str, *, compact: bool = False) -> Redaction:
    """Replace every PII value by its tag (``<EMAIL>``...), keeping whitespace and the token count.

    ``compact`` uses a one-character mask instead, which never makes a text longer (for texts that
    would outgrow the schema limit).
    """
    spans = find_pii(text)
    return apply_spans(text, spans, lambda span, value: COMPACT_MASK if compact else f"<{span.pii_type}>")


def redact_texts(texts: Sequence[str], detector: PiiDetector, policy: TextPolicy, *,
                 datasets: Sequence[str | None] | None = None, labeled: Sequence[bool] | None = None,
                 pseudonym_of: PseudonymOf | None = None, max_chars: int | None = None) -> list[Redaction]:
    """Redact a batch with one detector call, each PII type by the policy's action for the text's dataset.

    ``drop`` makes a text None, except a labeled one (``labeled[i]``), whose every token is masked
    instead so that it keeps its token count. ``pseudonym`` needs ``pseudonym_of``. A result longer
    than ``max_chars`` is redone with one-character masks, which never make a text longer.
    """
    spans_per_text = detector.detect(texts)
    dataset_of = datasets if datasets is not None else [None] * len(texts)
    flags = labeled if labeled is not None else [False] * len(texts)
    results = []
    for text, spans, dataset, is_labeled in zip(texts, spans_per_text, dataset_of, flags, strict=True):
        redacted = _redact_one(text, spans, policy.actions_for(dataset), is_labeled, pseudonym_of, False)
        if max_chars is not None and redacted.text is not None and len(redacted.text) > max_chars:
            redacted = _redact_one(text, spans, policy.actions_for(dataset), is_labeled, pseudonym_of, True)
        results.append(redacted)
    return results


def keyed_pseudonyms(pseudonymize: Callable[[str, str], str]) -> PseudonymOf:
    """A PseudonymOf from ``domain.Pseudonymizer`` (or any keyed ``(field, value) -> "prefix_hex"`` function).

    The field is ``text.<TYPE>``, so a value has one pseudonym per type in every event and dataset.
    """
    return lambda pii_type, value: pseudonymize(f"text.{pii_type}", value).rsplit("_", 1)[-1]


def _redact_one(text: str, spans: list[PiiSpan], action_of: Callable[[str], TextAction], labeled: bool,
                pseudonym_of: PseudonymOf | None, compact: bool) -> Redaction:
    if any(action_of(span.pii_type) == "drop" for span in spans):
        counts = dict(Counter(span.pii_type for span in spans))
        return Redaction(_mask_every_token(text), counts) if labeled else Redaction(None, counts)

    def replacement(span: PiiSpan, value: str) -> str:
        if compact:
            return COMPACT_MASK
        action = action_of(span.pii_type)
        if action == "mask":
            return ""  # each piece masked character by character in apply_spans
        if action == "pseudonym":
            if pseudonym_of is None:
                raise ValueError("the text policy asks for pseudonyms but no pseudonym function was given")
            digest = pseudonym_of(span.pii_type, normalized_value(value))
            return f"<{span.pii_type}_{digest[:PSEUDONYM_TAG_HEX_CHARS]}>"
        return f"<{span.pii_type}>"

    return apply_spans(text, spans, replacement)


def apply_spans(text: str, spans: Sequence[PiiSpan], replacement: Callable[[PiiSpan, str], str]) -> Redaction:
    """Replace each span's whitespace-separated pieces by ``replacement(span, value)`` ("" masks by character)."""
    if not spans:
        return Redaction(text, {})
    pieces, cursor = [], 0
    for span in spans:
        value = text[span.start:span.end]
        pieces.append(text[cursor:span.start])
        pieces.append(_replace_pieces(value, replacement(span, value)))
        cursor = span.end
    pieces.append(text[cursor:])
    return Redaction("".join(pieces), dict(Counter(span.pii_type for span in spans)))


def _replace_pieces(value: str, tag: str) -> str:
    # Grouping by str.isspace is exactly how str.split() sees tokens, so their count cannot change.
    runs = (("".join(chars), is_space) for is_space, chars in groupby(value, key=str.isspace))
    return "".join(run if is_space else (tag or MASK_CHAR * len(run)) for run, is_space in runs)


def _mask_every_token(text: str) -> str:
    return _replace_pieces(text, "")
