"""The model card every reader checks: safe file names, sha256 digests, safetensors weights, no pickle."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from streamtune_shared.model_card import ModelCard, VersionRejected, parse_card, read_labels

DIGEST = "ab" * 32
FILES = {"model.safetensors": DIGEST, "config.json": DIGEST, "labels.json": DIGEST, "tokenizer.json": DIGEST}
VERSION = "20261128T120000Z-ab12cd34"


def _card(**overrides) -> bytes:
    card = ModelCard(model_name="disease-ner", version=VERSION, task="token-classification", dataset="clinical-notes",
                     request_id="r1", files=FILES, created_at=datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    document = json.loads(card.to_bytes())
    document.update(overrides)
    return json.dumps(document).encode()


def _rejection(raw: bytes) -> str:
    with pytest.raises(VersionRejected) as caught:
        parse_card(raw, "disease-ner", VERSION)
    return caught.value.reason


def test_a_good_card_parses_into_the_typed_card():
    card = parse_card(_card(), "disease-ner", VERSION)
    assert card.task == "token-classification" and card.dataset == "clinical-notes"
    assert dict(card.files) == FILES
    assert card.summary() == {"dev": {}, "test": {}, "best_epoch": 0}


def test_a_card_without_safetensors_weights_is_refused():
    files = {k: v for k, v in FILES.items() if k != "model.safetensors"}
    assert _rejection(_card(files=files)) == "card lists no model.safetensors"


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.PTH", "head.pkl", "last.ckpt"])
def test_a_card_listing_pickle_weights_is_refused(name):
    assert _rejection(_card(files={**FILES, name: DIGEST})) == f"pickle-based weights listed: {name}"


@pytest.mark.parametrize("name", ["../escape.json", "/etc/passwd", "a/../../b", "sub/./x", "", "a\\b"])
def test_file_names_that_leave_the_version_folder_are_refused(name):
    assert _rejection(_card(files={**FILES, name: DIGEST})).startswith("unsafe file name")


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"version": "20270101T000000Z-other"}, "card.json names another model or version"),
    ({"model_name": "other"}, "card.json names another model or version"),
    ({"task": "anomaly"}, "card.json does not fit the card schema: task"),
    ({"card_format": 9}, "card.json does not fit the card schema: card_format"),
    ({"surprise": 1}, "card.json does not fit the card schema: surprise"),
    ({"files": {}}, "card.json lists no files"),
    ({"files": {**FILES, "vocab.txt": "not-a-digest"}}, "no sha256 for vocab.txt"),
    ({"files": {**FILES, "card.json": DIGEST}}, "card.json lists itself"),
])
def test_inconsistent_cards_are_refused(overrides, reason):
    assert _rejection(_card(**overrides)) == reason


def test_a_card_that_is_not_json_is_refused():
    assert _rejection(b"{not json") == "card.json is not valid JSON"
    assert _rejection(b"[1, 2]") == "card.json is not a JSON object"


def test_labels_are_read_for_the_cards_task():
    raw = json.dumps({"task": "token-classification", "id2label": {"0": "O", "1": "B-Disease", "2": "I-Disease"},
                      "label2id": {}}).encode()
    assert read_labels(raw, "token-classification") == {0: "O", 1: "B-Disease", 2: "I-Disease"}
    with pytest.raises(VersionRejected, match="another task"):
        read_labels(raw, "sequence-classification")
    gap = json.dumps({"task": "token-classification", "id2label": {"0": "O", "2": "B-X"}}).encode()
    with pytest.raises(VersionRejected, match="0..n-1"):
        read_labels(gap, "token-classification")
