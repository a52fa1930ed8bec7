"""Metrics on hand-made cases with known answers."""

from __future__ import annotations

import pytest
from streamtune_trainer.evaluation import classification_metrics, ner_metrics


def test_entity_scores_count_whole_entities():
    gold = [["B-Disease", "I-Disease", "O", "B-Disease"], ["O", "B-Chemical"]]
    pred = [["B-Disease", "I-Disease", "O", "O"], ["O", "B-Chemical"]]
    # 3 gold entities, 2 predicted, both right; a half-matched span would count as wrong.
    metrics = ner_metrics(gold, pred)
    assert metrics["precision"] == pytest.approx(1.0)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(0.8)
    assert metrics["report"]["Disease"]["support"] == 2
    assert metrics["report"]["Disease"]["recall"] == pytest.approx(0.5)
    assert metrics["report"]["Chemical"]["f1-score"] == pytest.approx(1.0)


def test_a_partial_span_is_not_a_hit():
    metrics = ner_metrics([["B-Disease", "I-Disease"]], [["B-Disease", "O"]])
    assert metrics["f1"] == 0.0


def test_classification_accuracy_and_macro_f1():
    gold = ["a", "a", "b", "c"]
    pred = ["a", "b", "b", "b"]
    metrics = classification_metrics(gold, pred, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(0.5)
    # a: p=1 r=.5 f=2/3; b: p=1/3 r=1 f=.5; c: 0
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 0) / 3)
    assert metrics["f1"] == metrics["macro_f1"]
    assert metrics["report"]["c"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1}
