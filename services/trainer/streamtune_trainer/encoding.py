"""Tokenization with label alignment, dynamic padding and seeded shuffling (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from streamtune_shared.word_labels import IGNORE_INDEX, align_word_labels, vocabulary_readable

from .domain import TOKEN_CLASSIFICATION, Example, LabelMap


@dataclass(frozen=True, slots=True)
class EncodedExample:
    """Token ids of one example and its label ids.

    NER: one label per token (``IGNORE_INDEX`` on special tokens and non-first word pieces), and
    ``word_indices`` naming the word each labeled token starts, in order. Classification: one label.
    """

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    word_indices: tuple[int, ...] = ()
    word_count: int = 0


def encode_examples(tokenizer: Any, examples: Sequence[Example], label_map: LabelMap,
                    max_length: int) -> list[EncodedExample]:
    """Tokenize examples for the label map's task, truncated at ``max_length`` and not padded."""
    if label_map.task == TOKEN_CLASSIFICATION:
        return _encode_words(tokenizer, examples, label_map, max_length)
    label2id = label_map.label2id
    encoded = tokenizer([e.text for e in examples], truncation=True, max_length=max_length)
    return [EncodedExample(tuple(ids), (label2id[str(e.label)],))
            for ids, e in zip(encoded["input_ids"], examples, strict=True)]


def _encode_words(tokenizer: Any, examples: Sequence[Example], label_map: LabelMap,
                  max_length: int) -> list[EncodedExample]:
    label2id = label_map.label2id
    words = [e.words for e in examples]
    encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
    readable = vocabulary_readable(tokenizer)
    result = []
    for i, example in enumerate(examples):
        word_label_ids = [label2id[tag] for tag in example.label]
        labels, starts = align_word_labels(encoded.word_ids(i), word_label_ids,
                                           [readable[token] for token in encoded["input_ids"][i]])
        result.append(EncodedExample(tuple(encoded["input_ids"][i]), tuple(labels), tuple(starts), len(words[i])))
    return result


def collate(batch: Sequence[EncodedExample], pad_token_id: int, token_labels: bool) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest example (dynamic padding); labels padded with IGNORE_INDEX."""
    width = max(len(e.input_ids) for e in batch)
    input_ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        input_ids[row, : len(example.input_ids)] = torch.tensor(example.input_ids)
        attention_mask[row, : len(example.input_ids)] = 1
    if token_labels:
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        for row, example in enumerate(batch):
            labels[row, : len(example.labels)] = torch.tensor(example.labels)
    else:
        labels = torch.tensor([e.labels[0] for e in batch], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def batch_order(size: int, batch_size: int, generator: torch.Generator | None) -> list[list[int]]:
    """Indices of each batch: shuffled with ``generator`` (training) or in order when it is None."""
    order = torch.randperm(size, generator=generator).tolist() if generator is not None else list(range(size))
    return [order[i : i + batch_size] for i in range(0, size, batch_size)]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The shuffling generator of one epoch: the same order whether the run was resumed or not."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def iterate_batches(examples: Sequence[EncodedExample], batch_size: int, pad_token_id: int, token_labels: bool,
                    generator: torch.Generator | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """Collated batches over the examples, shuffled when a generator is given."""
    for indices in batch_order(len(examples), batch_size, generator):
        yield collate([examples[i] for i in indices], pad_token_id, token_labels)
