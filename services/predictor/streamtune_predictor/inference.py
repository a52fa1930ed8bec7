"""Batched forward passes of a loaded transformers model, shaped into prediction outputs."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from streamtune_shared.schemas import PredictionOutputs, Task
from streamtune_shared.word_labels import decode_entities, first_pieces, whitespace_words, word_tags

from .domain import class_outputs

NO_ENTITIES = PredictionOutputs(entities=())


class TextModel:
    """A model and its tokenizer answering one task, on chunks of at most ``batch_size`` texts."""

    def __init__(self, model: Any, tokenizer: Any, *, task: Task, id2label: Mapping[int, str],
                 max_length: int, batch_size: int) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.task = task
        self.id2label = dict(id2label)
        self.max_length = max_length
        self.batch_size = batch_size
        # One forward at a time: torch already uses every core, and a fast tokenizer is not re-entrant.
        self._lock = threading.Lock()

    def predict(self, texts: Sequence[str]) -> list[PredictionOutputs]:
        """Outputs for each text, in order; blocking (call it through ``asyncio.to_thread``)."""
        # Chunks of similar length pad less (dynamic padding pads to the longest of a chunk).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: list[PredictionOutputs | None] = [None] * len(texts)
        with self._lock, torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start:start + self.batch_size]
                for index, outputs in zip(chunk, self._predict_chunk([texts[i] for i in chunk]), strict=True):
                    results[index] = outputs
        return [r for r in results if r is not None]

    def _predict_chunk(self, texts: list[str]) -> list[PredictionOutputs]:
        if self.task == "token-classification":
            return self._entities(texts)
        return self._classes(texts)

    def _classes(self, texts: list[str]) -> list[PredictionOutputs]:
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=True,
                                 return_tensors="pt")
        probabilities = torch.softmax(self.model(**encoded).logits.float(), dim=-1).tolist()
        return [class_outputs(row, self.id2label) for row in probabilities]

    def _entities(self, texts: list[str]) -> list[PredictionOutputs]:
        words = [whitespace_words(text) for text in texts]
        # A text without words has no entities; the tokenizer cannot take an empty word list.
        rows = [i for i, w in enumerate(words) if w]
        results = [NO_ENTITIES] * len(texts)
        if not rows:
            return results
        pieces = [[texts[i][s:e] for s, e in words[i]] for i in rows]
        encoded = self.tokenizer(pieces, is_split_into_words=True, truncation=True, max_length=self.max_length,
                                 padding=True, return_tensors="pt")
        probabilities = torch.softmax(self.model(**encoded).logits.float(), dim=-1)
        best_scores, best_ids = (t.tolist() for t in probabilities.max(dim=-1))
        for row, i in enumerate(rows):
            tags, scores = word_tags(first_pieces(encoded.word_ids(row)), len(words[i]), best_ids[row],
                                     best_scores[row], self.id2label)
            results[i] = PredictionOutputs(entities=decode_entities(texts[i], words[i], tags, scores))
        return results
