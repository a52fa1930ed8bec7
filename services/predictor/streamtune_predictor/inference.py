"""Batched forward passes of a loaded transformers model, shaped into prediction outputs."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from streamtune_shared.batching import DEFAULT_TOKENS_PER_FORWARD, token_budget_chunks
from streamtune_shared.schemas import PredictionOutputs, Task
from streamtune_shared.word_labels import (
    decode_entities,
    first_pieces,
    vocabulary_readable,
    whitespace_words,
    word_tags,
)

from .domain import class_outputs

NO_ENTITIES = PredictionOutputs(entities=())


class TextModel:
    """A model and its tokenizer answering one task; forwards of at most ``batch_size`` texts and, padded,
    ``tokens_per_forward`` tokens (None: ``batch_size`` alone)."""

    def __init__(self, model: Any, tokenizer: Any, *, task: Task, id2label: Mapping[int, str],
                 max_length: int, batch_size: int,
                 tokens_per_forward: int | None = DEFAULT_TOKENS_PER_FORWARD) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.task = task
        self.id2label = dict(id2label)
        self.max_length = max_length
        self.batch_size = batch_size
        self.tokens_per_forward = tokens_per_forward
        # Where each word's tag is read (word_labels): its first piece with a letter or digit.
        self._readable = vocabulary_readable(tokenizer)
        # One forward at a time: torch already uses every core, and a fast tokenizer is not re-entrant.
        self._lock = threading.Lock()

    def predict(self, texts: Sequence[str]) -> list[PredictionOutputs]:
        """Outputs for each text, in order; blocking (call it through ``asyncio.to_thread``)."""
        if self.task == "token-classification":
            words = [whitespace_words(text) for text in texts]
            rows = [i for i, w in enumerate(words) if w]  # the tokenizer cannot take an empty word list
            inputs = [[texts[i][s:e] for s, e in words[i]] for i in rows]
        else:
            words, rows, inputs = [], list(range(len(texts))), list(texts)
        results: list[PredictionOutputs] = [NO_ENTITIES] * len(texts)  # wordless texts keep it; the rest are set below
        if not rows:
            return results
        with self._lock, torch.inference_mode():
            # One tokenizer call for the batch; forwards are then cut by padded length (shortest first).
            encoded = self.tokenizer(inputs, is_split_into_words=self.task == "token-classification",
                                     truncation=True, max_length=self.max_length)
            lengths = [len(ids) for ids in encoded["input_ids"]]
            for chunk in token_budget_chunks(lengths, max_rows=self.batch_size, max_tokens=self.tokens_per_forward):
                batch = self.tokenizer.pad({key: [encoded[key][j] for j in chunk] for key in encoded.keys()},
                                           return_tensors="pt")
                probabilities = torch.softmax(self.model(**batch).logits.float(), dim=-1)
                if self.task == "token-classification":
                    best_scores, best_ids = (t.tolist() for t in probabilities.max(dim=-1))
                    for row, j in enumerate(chunk):
                        i = rows[j]
                        firsts = first_pieces(encoded.word_ids(j),
                                              [self._readable[token] for token in encoded["input_ids"][j]])
                        tags, scores = word_tags(firsts, len(words[i]), best_ids[row], best_scores[row], self.id2label)
                        results[i] = PredictionOutputs(entities=decode_entities(texts[i], words[i], tags, scores))
                else:
                    for row, j in enumerate(chunk):
                        results[rows[j]] = class_outputs(probabilities[row].tolist(), self.id2label)
        return results
