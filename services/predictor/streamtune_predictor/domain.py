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


def agreement(primary: PredictionOutputs, shadow: PredictionOutputs) -> float:
    """How far a shadow's output agrees with the primary's: 1/0 for labels, entity-span F1 for entities.

    Spans agree when start, end and label are equal; two empty entity lists agree fully.
    """
    if primary.entities is not None or shadow.entities is not None:
        ours = {(s.start, s.end, s.label) for s in primary.entities or ()}
        theirs = {(s.start, s.end, s.label) for s in shadow.entities or ()}
        if not ours and not theirs:
            return 1.0
        return 2 * len(ours & theirs) / (len(ours) + len(theirs))
    return 1.0 if primary.label == shadow.label else 0.0
