"""The synthetic PII data set: templates filled by Faker in several locales, as labeled Event-shaped rows."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from faker import Faker

from .bio import spans_to_bio
from .templates import Template, fill, packaged_templates

DEFAULT_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "pl_PL", "hu_HU",
                   "fi_FI", "cs_CZ", "da_DK", "sv_SE", "es_AR", "es_MX", "de_CH", "en_IE")
DEFAULT_DATASET = "pii-synthetic"
# Fixed so that the same seed gives the same rows, timestamps included.
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
# Chat text is often all lower case; whole-sentence variants on top of the per-value ones.
_LOWER_SENTENCE = 0.05


def _fakers(locales: Sequence[str], seed: int) -> dict[str, Faker]:
    fakers = {}
    for index, locale in enumerate(locales):
        fake = Faker(locale)
        fake.seed_instance(seed * 1_000 + index)
        fakers[locale] = fake
    return fakers


def _row(index: int, text: str, tags: list[str], template: Template, locale: str, seed: int,
         dataset: str) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": f"synthetic-{seed}-{index}",
        "device_id": "synthetic-generator",
        "dataset": dataset,
        "ts": (_EPOCH + timedelta(seconds=index)).isoformat(),
        "text": text,
        "label": tags,
        "meta": {"source": "synthetic", "template": template.template_id, "locale": locale},
    }


def generate(n: int, seed: int = 0, locales: Sequence[str] = DEFAULT_LOCALES, *, pattern_labels: bool = False,
             dataset: str = DEFAULT_DATASET, templates: Sequence[Template] | None = None) -> list[dict[str, Any]]:
    """``n`` labeled rows shaped like ``Event`` documents, the same for the same arguments within a process;
    across processes only under the same ``PYTHONHASHSEED`` (some Faker locales, e.g. it_IT's cities, draw from
    hash-ordered data).

    ``label`` holds one BIO tag per whitespace token of ``text`` (PERSON, ORGANIZATION, LOCATION,
    STREET_ADDRESS, NRP, TITLE; with ``pattern_labels`` also EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, ...).
    """
    if not locales:
        raise ValueError("at least one locale is needed")
    rng = random.Random(seed)
    fakers = _fakers(locales, seed)
    pool = list(templates or packaged_templates())
    rows = []
    for index in range(n):
        template = rng.choice(pool)
        locale = rng.choice(list(locales))
        text, spans = fill(template, fakers[locale], rng, pattern_labels)
        tags = spans_to_bio(text, spans)
        if rng.random() < _LOWER_SENTENCE:
            text = text.lower()  # after tagging: lower() may change lengths, never the whitespace tokens
        rows.append(_row(index, text, tags, template, locale, seed, dataset))
    return rows
