"""Classifier outputs: the best label and the probability of every class."""

from __future__ import annotations

from streamtune_predictor.domain import class_outputs


def test_class_outputs_name_the_best_label_and_every_probability():
    outputs = class_outputs([0.1, 0.7, 0.2], {0: "normal", 1: "fault", 2: "risk"})
    assert outputs.label == "fault"
    assert outputs.probabilities == {"normal": 0.1, "fault": 0.7, "risk": 0.2}
    assert outputs.entities is None
