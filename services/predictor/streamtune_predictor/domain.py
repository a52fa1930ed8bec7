"""Turning classifier outputs into prediction outputs (word tags to entity spans live in
``streamtune_shared.word_labels``, shared with the trainer). Pure: no torch, Redis, S3 or env."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from streamtune_shared.schemas import PredictionOutputs

PROBABILITY_DIGITS = 6


def class_outputs(probabilities: Sequence[float], id2label: Mapping[int, str]) -> PredictionOutputs:
    """The most probable label and the probability of every class, by label name."""
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    return PredictionOutputs(
        label=id2label[best],
        probabilities={id2label[i]: round(float(p), PROBABILITY_DIGITS) for i, p in enumerate(probabilities)},
    )
