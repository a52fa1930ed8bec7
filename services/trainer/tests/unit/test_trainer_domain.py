"""The data phase: which rows fit a task, the deterministic split, the label set."""

from __future__ import annotations

import random

import pytest
from streamtune_trainer.domain import (
    SEQUENCE_CLASSIFICATION,
    TOKEN_CLASSIFICATION,
    Example,
    TrainingRejected,
    build_label_map,
    example_for_task,
    split_dataset,
    split_of,
)


def _ner_row(i: int, tags: list[str] | None = None) -> dict:
    return {"event_id": f"note-{i:05d}", "text": "aspirin eases migraine pain", "label": tags or ["O", "O", "B-Disease", "O"]}


def test_split_of_is_a_function_of_the_event_id_alone():
    ids = [f"ev-{i}" for i in range(3000)]
    first = {i: split_of(i, 0.1, 0.2) for i in ids}
    again = {i: split_of(i, 0.1, 0.2) for i in reversed(ids)}
    assert first == again
    counts = {name: sum(1 for s in first.values() if s == name) for name in ("train", "dev", "test")}
    # 3000 uniform hashes: each share within a few points of what was asked.
    assert abs(counts["test"] / 3000 - 0.2) < 0.03
    assert abs(counts["dev"] / 3000 - 0.1) < 0.03


def test_adding_rows_never_moves_an_existing_row_to_another_split():
    rows = [_ner_row(i) for i in range(200)]
    before = split_dataset(rows, TOKEN_CLASSIFICATION, 0.1, 0.1)
    more = rows + [_ner_row(i) for i in range(200, 600)]
    random.Random(7).shuffle(more)
    after = split_dataset(more, TOKEN_CLASSIFICATION, 0.1, 0.1)
    for name in ("train", "dev", "test"):
        old_ids = {e.event_id for e in getattr(before, name)}
        new_ids = {e.event_id for e in getattr(after, name)}
        assert old_ids <= new_ids


def test_ner_rows_need_one_bio_tag_per_whitespace_token():
    assert example_for_task(_ner_row(1), TOKEN_CLASSIFICATION) is not None
    assert example_for_task(_ner_row(1, ["O", "B-Disease"]), TOKEN_CLASSIFICATION) is None
    assert example_for_task(_ner_row(1, ["O", "O", "X-Disease", "O"]), TOKEN_CLASSIFICATION) is None
    assert example_for_task({"event_id": "a", "text": None, "label": ["O"]}, TOKEN_CLASSIFICATION) is None
    assert example_for_task({"event_id": "a", "text": "pump ok", "label": "normal"}, TOKEN_CLASSIFICATION) is None


def test_classification_rows_take_string_or_integer_classes_as_strings():
    assert example_for_task({"event_id": "a", "text": "valve stuck", "label": 1}, SEQUENCE_CLASSIFICATION).label == "1"
    assert example_for_task({"event_id": "a", "text": "ok", "label": "normal"}, SEQUENCE_CLASSIFICATION).label == "normal"
    assert example_for_task({"event_id": "a", "text": "ok", "label": ["O"]}, SEQUENCE_CLASSIFICATION) is None
    assert example_for_task({"event_id": "a", "text": "ok", "label": True}, SEQUENCE_CLASSIFICATION) is None
    assert example_for_task({"event_id": "a", "text": "  ", "label": "x"}, SEQUENCE_CLASSIFICATION) is None


def test_ner_label_map_puts_o_first_then_sorted_tags():
    examples = [Example("a", "x y z", ("I-Disease", "B-Chemical", "O")), Example("b", "x", ("B-Disease",))]
    label_map = build_label_map(TOKEN_CLASSIFICATION, examples)
    assert label_map.labels == ("O", "B-Chemical", "B-Disease", "I-Disease")
    assert label_map.label2id["B-Disease"] == 2 and label_map.id2label[0] == "O"
    assert label_map.to_json()["id2label"] == {"0": "O", "1": "B-Chemical", "2": "B-Disease", "3": "I-Disease"}


def test_classification_label_map_is_the_sorted_class_names():
    examples = [Example("a", "t", "risk-high"), Example("b", "t", "1"), Example("c", "t", "risk-low"), Example("d", "t", "1")]
    assert build_label_map(SEQUENCE_CLASSIFICATION, examples).labels == ("1", "risk-high", "risk-low")


def test_too_little_data_is_rejected_with_a_reason():
    with pytest.raises(TrainingRejected, match="too little data"):
        split_dataset([_ner_row(i) for i in range(8)], TOKEN_CLASSIFICATION, 0.1, 0.1)
    mismatched = [_ner_row(i, ["O"]) for i in range(100)]
    with pytest.raises(TrainingRejected, match="0 of 100 rows fit"):
        split_dataset(mismatched, TOKEN_CLASSIFICATION, 0.1, 0.1)


def test_an_empty_dev_split_is_rejected():
    rows = [_ner_row(i) for i in range(400)]
    train_only = [r for r in rows if split_of(r["event_id"], 0.1, 0.1) == "train"][:20]
    with pytest.raises(TrainingRejected, match="dev split is empty"):
        split_dataset(train_only, TOKEN_CLASSIFICATION, 0.1, 0.1)


def test_a_single_class_is_rejected():
    rows = [{"event_id": f"e{i}", "text": "fine", "label": "ok"} for i in range(200)]
    with pytest.raises(TrainingRejected, match="single label"):
        split_dataset(rows, SEQUENCE_CLASSIFICATION, 0.1, 0.1)
