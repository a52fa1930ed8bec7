"""Character spans to BIO tags over whitespace tokens (the unit the platform labels)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

OUTSIDE = "O"
_TOKEN = re.compile(r"\S+")


class Span(NamedTuple):
    """An entity's characters in a text, end exclusive, and its type."""

    start: int
    end: int
    entity_type: str


def token_offsets(text: str) -> list[tuple[int, int]]:
    """Start and end of every whitespace token, in order (the tokens of ``text.split()``)."""
    return [m.span() for m in _TOKEN.finditer(text)]


def spans_to_bio(text: str, spans: Iterable[Span]) -> list[str]:
    """One BIO tag per whitespace token: a token touching a span takes its type ("Anna's" is B-PERSON).

    The first token of a span is B-, the rest I-; where two spans share a token, the earlier span wins.
    """
    offsets = token_offsets(text)
    tags = [OUTSIDE] * len(offsets)
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        first = True
        for i, (start, end) in enumerate(offsets):
            if start < span.end and span.start < end:
                if tags[i] == OUTSIDE:
                    tags[i] = f"{'B' if first else 'I'}-{span.entity_type}"
                first = False
    return tags


def entity_types(tags: Sequence[str]) -> list[str]:
    """The type of each tag with its B-/I- prefix dropped ("O" stays "O")."""
    return [tag if tag == OUTSIDE else tag[2:] for tag in tags]
