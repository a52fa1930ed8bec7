"""Label-preserving augmentation of the training split (pure, seeded; dev and test are never augmented).

    splits = augment_training_split(splits, request.augmentation, tokenizer, seed)       # train: originals + copies
    train = augment_window_set(train, request.augmentation, seed)                        # labeled sensor windows

NER: an entity mention is replaced by another mention of the same type taken from the training split
itself (its BIO tags follow the new mention's word count), and words outside entities are masked.
Classification: words are masked and swapped with their right neighbour. Sensor windows: Gaussian
jitter, a per-sensor scale and a smooth time-warp that keeps the window's last event (which labels it).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from streamtune_shared.adaptation import AugmentationOptions
from streamtune_shared.word_labels import split_tag

from .anomaly_data import UNLABELED, WindowSet
from .domain import OUTSIDE, TOKEN_CLASSIFICATION, DatasetSplits, Example

MentionPool = dict[str, tuple[tuple[str, ...], ...]]
# Knots of the time-warp's speed curve: few enough that the warp is smooth.
WARP_KNOTS = 4


@dataclass(frozen=True, slots=True)
class Mention:
    """Words ``start`` up to (not including) ``end`` of a sentence form one entity of type ``kind``."""

    start: int
    end: int
    kind: str


def entity_mentions(tags: Sequence[str]) -> list[Mention]:
    """The entity spans of a tag sequence, read as the predictor reads them (``split_tag``): an I- tag that
    continues no mention starts one, and a bare ``X`` reads as ``I-X``."""
    mentions: list[Mention] = []
    for i, tag in enumerate(tags):
        prefix, kind = split_tag(tag)
        if kind is None:
            continue
        last = mentions[-1] if mentions else None
        if prefix == "I" and last is not None and last.end == i and last.kind == kind:
            mentions[-1] = Mention(last.start, i + 1, kind)
        else:
            mentions.append(Mention(i, i + 1, kind))
    return mentions


def mention_pool(examples: Sequence[Example]) -> MentionPool:
    """Every distinct mention of the examples, by entity type, in first-seen order."""
    pool: dict[str, dict[tuple[str, ...], None]] = {}
    for example in examples:
        words = example.words
        for mention in entity_mentions(example.label):
            pool.setdefault(mention.kind, {})[tuple(words[mention.start:mention.end])] = None
    return {kind: tuple(mentions) for kind, mentions in pool.items()}


def mention_tags(first: str, kind: str, length: int) -> list[str]:
    """The tags of a ``length``-word mention of ``kind`` in the scheme of the mention it replaces (whose first tag
    is ``first``): B-X then I-X, or I-X / bare X throughout, so every tag is one the label map already holds."""
    inside = f"I-{kind}" if first == f"B-{kind}" else first
    return [first, *[inside] * (length - 1)]


def replace_mentions(words: Sequence[str], tags: Sequence[str], pool: MentionPool, rate: float,
                     rng: random.Random) -> tuple[list[str], list[str]]:
    """Each mention, with chance ``rate``, becomes a pool mention of its type; tags follow the new length."""
    out_words, out_tags, at = [], [], 0
    for mention in entity_mentions(tags):
        out_words += words[at:mention.start]
        out_tags += tags[at:mention.start]
        original = tuple(words[mention.start:mention.end])
        choices = [m for m in pool.get(mention.kind, ()) if m != original]
        chosen = rng.choice(choices) if choices and rng.random() < rate else None
        if chosen is None:
            out_words += original
            out_tags += tags[mention.start:mention.end]
        else:
            out_words += chosen
            out_tags += mention_tags(tags[mention.start], mention.kind, len(chosen))
        at = mention.end
    return out_words + list(words[at:]), out_tags + list(tags[at:])


def mask_words(words: Sequence[str], rate: float, mask: str, rng: random.Random,
               keep: Sequence[bool] | None = None) -> list[str]:
    """Each word, with chance ``rate``, becomes ``mask``; words where ``keep`` is true never do."""
    return [mask if not (keep and keep[i]) and rng.random() < rate else word for i, word in enumerate(words)]


def swap_adjacent(words: Sequence[str], rate: float, rng: random.Random) -> list[str]:
    """Left to right, each word swaps places with its right neighbour with chance ``rate`` (each word moves once)."""
    out, i = list(words), 0
    while i < len(out) - 1:
        if rng.random() < rate:
            out[i], out[i + 1] = out[i + 1], out[i]
            i += 2
        else:
            i += 1
    return out


def augment_ner(example: Example, pool: MentionPool, options: AugmentationOptions, mask: str,
                rng: random.Random) -> Example:
    """One augmented copy of an NER example: mentions replaced, then words outside entities masked."""
    words, tags = replace_mentions(example.words, example.label, pool, options.mention_replacement, rng)
    words = mask_words(words, options.token_mask, mask, rng, keep=[tag != OUTSIDE for tag in tags])
    return Example(example.event_id, " ".join(words), tuple(tags))


def augment_classification(example: Example, options: AugmentationOptions, mask: str,
                           rng: random.Random) -> Example:
    """One augmented copy of a classification example: words swapped with a neighbour, then masked."""
    words = swap_adjacent(example.words, options.token_swap, rng)
    return Example(example.event_id, " ".join(mask_words(words, options.token_mask, mask, rng)), example.label)


def augment_examples(examples: Sequence[Example], task: str, options: AugmentationOptions, mask_token: str,
                     seed: int) -> tuple[Example, ...]:
    """The examples followed by ``options.copies`` augmented copies of each (mentions from ``examples`` only)."""
    rng = random.Random(seed)
    pool = mention_pool(examples) if task == TOKEN_CLASSIFICATION else {}
    copies = []
    for copy in range(1, options.copies + 1):
        for example in examples:
            augmented = (augment_ner(example, pool, options, mask_token, rng) if task == TOKEN_CLASSIFICATION
                         else augment_classification(example, options, mask_token, rng))
            copies.append(Example(f"{example.event_id}#aug{copy}", augmented.text, augmented.label))
    return (*examples, *copies)


def mask_token_of(tokenizer: object) -> str:
    """The tokenizer's mask token, or its unknown token when it has none."""
    token = getattr(tokenizer, "mask_token", None) or getattr(tokenizer, "unk_token", None)
    if not token:
        raise ValueError("the tokenizer has neither a mask nor an unknown token")
    return str(token)


def time_warp(x: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Resample each window (W, S) along a smooth, monotone warp of its time axis; both ends stay put."""
    m, width, _ = x.shape
    if strength == 0 or width < 2:
        return x.copy()
    knots = 1 + rng.uniform(-strength, strength, size=(m, WARP_KNOTS))
    grid = np.linspace(0, WARP_KNOTS - 1, width)
    out = np.empty_like(x)
    for i in range(m):
        speed = np.interp(grid, np.arange(WARP_KNOTS), knots[i])
        position = np.concatenate([[0.0], np.cumsum(speed[1:])])
        position *= (width - 1) / position[-1]
        for sensor in range(x.shape[2]):
            out[i, :, sensor] = np.interp(position, np.arange(width), x[i, :, sensor])
    return out


def augment_window_copy(x: np.ndarray, options: AugmentationOptions, rng: np.random.Generator) -> np.ndarray:
    """One augmented copy of windows (m, W, S): time-warped, scaled per window and sensor, jittered."""
    warped = time_warp(x, options.time_warp, rng)
    scale = 1 + rng.normal(0, options.scaling, size=(x.shape[0], 1, x.shape[2]))
    noise = rng.normal(0, options.jitter, size=x.shape)
    return (warped * scale + noise).astype(x.dtype)


def window_copies(x: np.ndarray, y: np.ndarray, options: AugmentationOptions,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``options.copies`` augmented copies of the windows, one after another, and their (unchanged) labels."""
    rng = np.random.default_rng(seed)
    copies = [augment_window_copy(x, options, rng) for _ in range(options.copies)]
    return np.concatenate(copies), np.concatenate([y] * options.copies)


def augment_window_set(windows: WindowSet, options: AugmentationOptions, seed: int) -> WindowSet:
    """Training windows followed by augmented copies of their labeled ones (only those reach the classifier)."""
    labeled = windows.y != UNLABELED
    x, y = window_copies(windows.x[labeled], windows.y[labeled], options, seed)
    return WindowSet(np.concatenate([windows.x, x]), np.concatenate([windows.y, y]),
                     np.concatenate([windows.scored, np.ones(len(y), dtype=bool)]))


def augment_training_split(splits: DatasetSplits, options: AugmentationOptions | None, tokenizer: object,
                           seed: int) -> DatasetSplits:
    """The splits with the training split augmented per ``options`` (unchanged when None); dev and test as they are."""
    if options is None:
        return splits
    train = augment_examples(splits.train, splits.label_map.task, options, mask_token_of(tokenizer), seed)
    return replace(splits, train=train)
