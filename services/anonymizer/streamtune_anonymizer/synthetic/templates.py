"""Sentence templates (``templates.txt``) and how one is filled: text plus the character span of every value."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from faker import Faker

from .bio import OUTSIDE, Span
from .values import PLACEHOLDERS, Placeholder

_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")
# Shouting and lower-case chat both occur in real text; the model must not key on capitals alone.
_UPPER, _LOWER = 0.06, 0.04


@dataclass(frozen=True, slots=True)
class Template:
    """One template: its position in the file and its text with ``{{NAME}}`` placeholders."""

    template_id: int
    text: str

    def placeholders(self) -> list[str]:
        """The placeholder names, in order."""
        return _PLACEHOLDER.findall(self.text)


def parse_templates(lines: str) -> list[Template]:
    """Templates of a file: one per non-empty line, ``#`` lines skipped, ``\\n`` turned into a line break.

    Raises ValueError naming the line of an unknown placeholder.
    """
    templates = []
    for number, line in enumerate(lines.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        template = Template(len(templates), line.replace("\\n", "\n"))
        unknown = set(template.placeholders()) - PLACEHOLDERS.keys()
        if unknown:
            raise ValueError(f"line {number}: unknown placeholder(s) {sorted(unknown)}")
        templates.append(template)
    return templates


@cache
def packaged_templates() -> tuple[Template, ...]:
    """The templates shipped in this package."""
    text = resources.files(__package__).joinpath("templates.txt").read_text(encoding="utf-8")
    return tuple(parse_templates(text))


def _vary_case(value: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < _UPPER:
        return value.upper()
    if roll < _UPPER + _LOWER:
        return value.lower()
    return value


def fill(template: Template, fake: Faker, rng: random.Random, pattern_labels: bool) -> tuple[str, list[Span]]:
    """The template with fake values, and the span of each labeled value.

    Pattern values (e-mail, phone...) get a span only when ``pattern_labels``; look-alikes never do.
    """
    parts: list[str] = []
    spans: list[Span] = []
    position, cursor = 0, 0
    for match in _PLACEHOLDER.finditer(template.text):
        literal = template.text[cursor:match.start()]
        parts.append(literal)
        position += len(literal)
        value, value_spans = _value(PLACEHOLDERS[match.group(1)], fake, rng, pattern_labels)
        spans.extend(Span(s.start + position, s.end + position, s.entity_type) for s in value_spans)
        parts.append(value)
        position += len(value)
        cursor = match.end()
    parts.append(template.text[cursor:])
    return "".join(parts), spans


def _value(placeholder: Placeholder, fake: Faker, rng: random.Random, pattern_labels: bool) -> tuple[str, list[Span]]:
    """One placeholder's text and its labeled spans, offsets relative to the value."""
    if placeholder.kind == "shape":  # a snippet of placeholders (an address): each part labeled as its own
        return fill(Template(-1, placeholder.factory(fake, rng)), fake, rng, pattern_labels)
    value = placeholder.factory(fake, rng).strip() or "x"
    if placeholder.kind == "ner":
        value = _vary_case(value, rng)
    labeled = placeholder.kind == "ner" or (placeholder.kind == "pattern" and pattern_labels)
    return value, [Span(0, len(value), placeholder.entity_type)] if labeled and placeholder.entity_type != OUTSIDE else []
