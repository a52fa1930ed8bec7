"""presidio-research's synthetic records (character spans) as rows with whitespace-token BIO tags.

The split is fixed for everyone: templates with ``template_id % 10`` in (0, 3, 7) are the validation
split, never trained or tuned on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from .bio import Span, spans_to_bio

VALIDATION_REMAINDERS = (0, 3, 7)
NER_TYPES = ("PERSON", "ORGANIZATION", "LOCATION", "STREET_ADDRESS", "NRP", "TITLE")
# presidio-research type -> the type this platform labels; types not named here keep their name.
TYPE_MAP = {"GPE": "LOCATION", "DOMAIN_NAME": "URL"}

Split = Literal["train", "validation", "all"]


def is_validation_template(template_id: int) -> bool:
    """Whether a presidio-research template belongs to the held-out validation split."""
    return template_id % 10 in VALIDATION_REMAINDERS


def record_spans(record: Mapping[str, Any], pattern_labels: bool) -> list[Span]:
    """A record's spans in this platform's types; pattern types (e-mail, card...) only when asked."""
    spans = []
    for span in record["spans"]:
        entity_type = TYPE_MAP.get(span["entity_type"], span["entity_type"])
        if entity_type in NER_TYPES or pattern_labels:
            spans.append(Span(span["start_position"], span["end_position"], entity_type))
    return spans


def from_presidio(records: Iterable[Mapping[str, Any]], split: Split = "train", *, pattern_labels: bool = False,
                  dataset: str = "pii-presidio") -> list[dict[str, Any]]:
    """Event-shaped rows of the records in ``split`` ("train" leaves the validation templates out)."""
    rows = []
    for index, record in enumerate(records):
        held_out = is_validation_template(int(record["template_id"]))
        if (split == "train" and held_out) or (split == "validation" and not held_out):
            continue
        text = record["full_text"]
        if not text.split():
            continue
        rows.append({
            "schema_version": 1,
            "event_id": f"presidio-{index}",
            "device_id": "presidio-research",
            "dataset": dataset,
            "ts": "2024-01-01T00:00:00+00:00",
            "text": text,
            "label": spans_to_bio(text, record_spans(record, pattern_labels)),
            "meta": {"source": "presidio-research", "template": int(record["template_id"])},
        })
    return rows
