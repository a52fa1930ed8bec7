"""Turning model outputs into prediction outputs: whitespace words, BIO tags to entity spans,
class probabilities. Pure: no torch, Redis, S3 or env."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from streamtune_shared.schemas import EntitySpan, PredictionOutputs

_WORD = re.compile(r"\S+")
PROBABILITY_DIGITS = 6


def whitespace_words(text: str) -> list[tuple[int, int]]:
    """Character offsets ``(start, end)`` of every whitespace-separated word, the unit BIO tags label."""
    return [match.span() for match in _WORD.finditer(text)]


def first_pieces(word_ids: Sequence[int | None]) -> dict[int, int]:
    """Word index -> token index of the word's first word piece (words cut by truncation are absent)."""
    firsts: dict[int, int] = {}
    for token, word in enumerate(word_ids):
        if word is not None and word not in firsts:
            firsts[word] = token
    return firsts


def word_tags(firsts: Mapping[int, int], n_words: int, token_label_ids: Sequence[int],
              token_scores: Sequence[float], id2label: Mapping[int, str]) -> tuple[list[str], list[float]]:
    """One tag and score per word, from its first word piece.

    A word with no piece (cut by truncation, or only characters the tokenizer drops) is ``O``,
    so every tag stays aligned with its own word.
    """
    tags = [id2label[token_label_ids[firsts[w]]] if w in firsts else "O" for w in range(n_words)]
    scores = [float(token_scores[firsts[w]]) if w in firsts else 0.0 for w in range(n_words)]
    return tags, scores


def split_tag(tag: str) -> tuple[str, str | None]:
    """``B-X`` -> ``("B", "X")``, ``I-X`` -> ``("I", "X")``, ``O`` -> ``("O", None)``; a bare ``X`` reads as ``I-X``."""
    if tag == "O":
        return "O", None
    prefix, sep, entity = tag.partition("-")
    if sep and prefix in ("B", "I") and entity:
        return prefix, entity
    return "I", tag


@dataclass
class _OpenSpan:
    label: str
    first: int
    last: int
    scores: list[float] = field(default_factory=list)


def decode_entities(
    text: str, words: Sequence[tuple[int, int]], tags: Sequence[str], scores: Sequence[float]
) -> tuple[EntitySpan, ...]:
    """Entity spans from one BIO tag and score per word; an ``I-`` without its ``B-`` opens a span.

    A span covers its words' characters in ``text``; its score is the mean of its words' scores.
    """
    spans: list[EntitySpan] = []
    current: _OpenSpan | None = None
    for index, (tag, score) in enumerate(zip(tags, scores, strict=False)):
        prefix, label = split_tag(tag)
        if current is not None and prefix == "I" and label == current.label:
            current.last = index
            current.scores.append(score)
            continue
        if current is not None:
            spans.append(_close(text, words, current))
            current = None
        if label is not None:
            current = _OpenSpan(label=label, first=index, last=index, scores=[score])
    if current is not None:
        spans.append(_close(text, words, current))
    return tuple(spans)


def _close(text: str, words: Sequence[tuple[int, int]], span: _OpenSpan) -> EntitySpan:
    start, end = words[span.first][0], words[span.last][1]
    score = round(sum(span.scores) / len(span.scores), PROBABILITY_DIGITS)
    return EntitySpan(start=start, end=end, label=span.label, text=text[start:end], score=score)


def class_outputs(probabilities: Sequence[float], id2label: Mapping[int, str]) -> PredictionOutputs:
    """The most probable label and the probability of every class, by label name."""
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    return PredictionOutputs(
        label=id2label[best],
        probabilities={id2label[i]: round(float(p), PROBABILITY_DIGITS) for i, p in enumerate(probabilities)},
    )
