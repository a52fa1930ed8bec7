"""Word labels: the one alignment between whitespace words, word pieces and BIO tags.

Training and serving must agree on it, or a model learns one thing and is read as another:
a label belongs to a whitespace word (``text.split()``), and a model sees it on the word's
first word piece with a letter or digit (its first piece when it has none): a word opening with
punctuation (">Ella", "(John", '"Acme') is labeled and read at "Ella", not at a ">" piece that says little
about it. The trainer uses ``align_word_labels``; the predictor and the anonymizer use ``first_pieces``,
``word_tags`` and ``decode_entities``; all of them pass ``vocabulary_readable(tokenizer)``.
Pure: no torch, no tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .schemas import EntitySpan

IGNORE_INDEX = -100  # the label id a loss ignores (special tokens, later pieces of a word)
OUTSIDE = "O"
SCORE_DIGITS = 6
_WORD = re.compile(r"\S+")


def whitespace_words(text: str) -> list[tuple[int, int]]:
    """Character offsets ``(start, end)`` of every whitespace-separated word, the unit BIO tags label."""
    return [match.span() for match in _WORD.finditer(text)]


def readable_pieces(vocabulary: Sequence[str | None]) -> list[bool]:
    """Per token id of a vocabulary (``tokenizer.convert_ids_to_tokens``): whether the piece has a letter or digit."""
    return [any(c.isalnum() for c in piece or "") for piece in vocabulary]


def vocabulary_readable(tokenizer: Any) -> list[bool]:
    """``readable_pieces`` of a tokenizer's whole vocabulary (any object with ``__len__`` and
    ``convert_ids_to_tokens``, as transformers tokenizers have): what ``first_pieces`` takes, per token id."""
    return readable_pieces(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))))


def first_pieces(word_ids: Sequence[int | None], readable: Sequence[bool] | None = None) -> dict[int, int]:
    """Word index -> token index where the word's label lives: its first word piece with a letter or digit
    (``readable[token]``), or its first piece when it has none or ``readable`` is None. Words cut by
    truncation are absent."""
    firsts: dict[int, int] = {}
    settled: set[int] = set()  # words whose readable piece was found: pieces come in order
    for token, word in enumerate(word_ids):
        if word is None or word in settled:
            continue
        if word not in firsts:
            firsts[word] = token
        if readable is None or readable[token]:
            firsts[word] = token
            settled.add(word)
    return firsts


def align_word_labels(word_ids: Sequence[int | None], word_label_ids: Sequence[int],
                      readable: Sequence[bool] | None = None) -> tuple[list[int], list[int]]:
    """Token labels from word labels: the piece ``first_pieces`` names gets its word's label, every other token
    IGNORE_INDEX. ``readable`` is per token of this sequence, as ``first_pieces`` takes it.

    Returns the token labels and, in token order, the index of the word each labeled token starts.
    """
    labels = [IGNORE_INDEX] * len(word_ids)
    firsts = first_pieces(word_ids, readable)
    for word, token in firsts.items():
        labels[token] = word_label_ids[word]
    return labels, sorted(firsts, key=firsts.__getitem__)


def word_tags(firsts: Mapping[int, int], n_words: int, token_label_ids: Sequence[int],
              token_scores: Sequence[float], id2label: Mapping[int, str]) -> tuple[list[str], list[float]]:
    """One tag and score per word, read at the piece ``firsts`` names (``first_pieces``).

    A word with no piece (cut by truncation, or only characters the tokenizer drops) is ``O``,
    so every tag stays aligned with its own word.
    """
    tags = [id2label[token_label_ids[firsts[w]]] if w in firsts else OUTSIDE for w in range(n_words)]
    scores = [float(token_scores[firsts[w]]) if w in firsts else 0.0 for w in range(n_words)]
    return tags, scores


def split_tag(tag: str) -> tuple[str, str | None]:
    """``B-X`` -> ``("B", "X")``, ``I-X`` -> ``("I", "X")``, ``O`` -> ``("O", None)``; a bare ``X`` reads as ``I-X``."""
    if tag == OUTSIDE:
        return OUTSIDE, None
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
    score = round(sum(span.scores) / len(span.scores), SCORE_DIGITS)
    return EntitySpan(start=start, end=end, label=span.label, text=text[start:end], score=score)
