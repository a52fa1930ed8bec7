"""The detector: normalize a batch of texts, run the pattern recognizers on each and every entity model
once over the whole batch, map the spans back to the original offsets, and merge them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from .addresses import StreetAddressRecognizer, ZipCodeRecognizer
from .contact import EmailRecognizer, IpAddressRecognizer, UrlRecognizer
from .dates import AgeRecognizer, DateRecognizer, YearRecognizer
from .normalize import normalize
from .numbers import CardRecognizer, IbanRecognizer, SsnRecognizer, document_recognizers
from .phones import PhoneRecognizer
from .spans import PiiSpan, merge_spans, tidy_spans


class Recognizer(Protocol):
    """Finds one family of PII in one (normalized) text."""

    def find(self, text: str) -> Iterator[PiiSpan]:
        """The spans found in ``text``, in any order, possibly overlapping."""
        ...


class EntityModel(Protocol):
    """A model (NER) that finds PII in a whole batch of (normalized) texts at once."""

    def find_batch(self, texts: Sequence[str]) -> list[list[PiiSpan]]:
        """For each text, the spans found in it."""
        ...


def default_recognizers() -> list[Recognizer]:
    """Every pattern recognizer, with its default settings."""
    return [
        EmailRecognizer(), UrlRecognizer(), IpAddressRecognizer(), CardRecognizer(), IbanRecognizer(),
        SsnRecognizer(), PhoneRecognizer(), *document_recognizers(), DateRecognizer(), YearRecognizer(),
        AgeRecognizer(), ZipCodeRecognizer(), StreetAddressRecognizer(),
    ]


class PiiDetector:
    """Pattern recognizers plus optional entity models; spans come back in original offsets, merged."""

    def __init__(self, recognizers: Sequence[Recognizer], entity_models: Sequence[EntityModel] = ()) -> None:
        self.recognizers = tuple(recognizers)
        self.entity_models = tuple(entity_models)

    def detect(self, texts: Sequence[str]) -> list[list[PiiSpan]]:
        """For each text, its PII spans: non-overlapping, in text order, as offsets into the original text."""
        normalized = [normalize(text) for text in texts]
        found: list[list[PiiSpan]] = [
            [span for recognizer in self.recognizers for span in recognizer.find(norm.text)] for norm in normalized
        ]
        if self.entity_models and texts:
            views = [norm.text for norm in normalized]
            for model in self.entity_models:
                for spans, model_spans in zip(found, model.find_batch(views), strict=True):
                    spans.extend(model_spans)
        return [
            tidy_spans(text, merge_spans(norm.to_original(span) for span in spans))
            for text, norm, spans in zip(texts, normalized, found, strict=True)
        ]

    def detect_one(self, text: str) -> list[PiiSpan]:
        """The PII spans of a single text."""
        return self.detect([text])[0]
