"""Model cards and version choice: what may serve, and which version serves."""

from __future__ import annotations

import hashlib
import json

import pytest
from streamtune_predictor.versions import (
    VersionRejected,
    committed_versions,
    read_card,
    read_labels,
    reload_decision,
    startup_candidates,
    verify_file,
)

DIGEST = "ab" * 32
FILES = {"model.safetensors": DIGEST, "config.json": DIGEST, "labels.json": DIGEST, "tokenizer.json": DIGEST}


def _card(**overrides) -> bytes:
    card = {"model_name": "disease-ner", "version": "20261128T120000Z-ab12cd34", "task": "token-classification",
            "dataset": "clinical-notes", "request_id": "r1", "metrics": {}, "files": FILES}
    card.update(overrides)
    return json.dumps(card).encode()


def _rejection(raw: bytes) -> str:
    with pytest.raises(VersionRejected) as caught:
        read_card(raw, "disease-ner", "20261128T120000Z-ab12cd34")
    return caught.value.reason


def test_a_good_card_lists_its_files():
    card = read_card(_card(), "disease-ner", "20261128T120000Z-ab12cd34")
    assert card.task == "token-classification"
    assert dict(card.files) == FILES


def test_a_tampered_file_is_refused_naming_it():
    data = b"weights"
    verify_file("model.safetensors", data, hashlib.sha256(data).hexdigest())
    with pytest.raises(VersionRejected, match="sha256 mismatch for model.safetensors"):
        verify_file("model.safetensors", data + b"!", hashlib.sha256(data).hexdigest())


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
    ({"task": "anomaly"}, "unknown task 'anomaly'"),
    ({"files": {}}, "card.json lists no files"),
    ({"files": {**FILES, "vocab.txt": "not-a-digest"}}, "no sha256 for vocab.txt"),
    ({"files": {**FILES, "card.json": DIGEST}}, "card.json lists itself"),
])
def test_inconsistent_cards_are_refused(overrides, reason):
    assert _rejection(_card(**overrides)) == reason


def test_a_card_that_is_not_json_is_refused():
    assert _rejection(b"{not json") == "card.json is not valid JSON"


def test_only_versions_with_a_card_are_committed():
    keys = [
        "models/disease-ner/20261128T120000Z-aa/card.json",
        "models/disease-ner/20261128T120000Z-aa/model.safetensors",
        "models/disease-ner/20261129T080000Z-bb/model.safetensors",  # still uploading: no card yet
        "models/disease-ner/20261127T000000Z-cc/card.json",
        "models/disease-ner-v2/20301231T000000Z-dd/card.json",
    ]
    assert committed_versions(keys, "disease-ner") == ["20261127T000000Z-cc", "20261128T120000Z-aa"]


def test_startup_takes_the_newest_version_unless_pinned():
    committed = ["20261127T000000Z-cc", "20261128T120000Z-aa", "20261126T000000Z-ee"]
    assert startup_candidates(committed, None) == ["20261128T120000Z-aa", "20261127T000000Z-cc",
                                                   "20261126T000000Z-ee"]
    assert startup_candidates(committed, "20261127T000000Z-cc") == ["20261127T000000Z-cc"]
    assert startup_candidates(committed, "20250101T000000Z-gone") == []
    assert startup_candidates(committed, None, refused={"20261128T120000Z-aa"})[0] == "20261127T000000Z-cc"


def test_reload_only_to_newer_versions_and_never_past_a_pin():
    assert reload_decision("20261129T000000Z-b", "20261128T000000Z-a", None) == "load"
    assert reload_decision("20261127T000000Z-z", "20261128T000000Z-a", None) == "not_newer"
    assert reload_decision("20261128T000000Z-a", "20261128T000000Z-a", None) == "not_newer"
    assert reload_decision("20261129T000000Z-b", None, None) == "load"
    assert reload_decision("20261129T000000Z-b", "20261128T000000Z-a", "20261128T000000Z-a") == "pinned"
    assert reload_decision("20261128T000000Z-a", None, "20261128T000000Z-a") == "load"


def test_labels_are_read_for_the_cards_task():
    raw = json.dumps({"task": "token-classification", "id2label": {"0": "O", "1": "B-Disease", "2": "I-Disease"},
                      "label2id": {}}).encode()
    assert read_labels(raw, "token-classification") == {0: "O", 1: "B-Disease", 2: "I-Disease"}
    with pytest.raises(VersionRejected, match="another task"):
        read_labels(raw, "sequence-classification")
    gap = json.dumps({"task": "token-classification", "id2label": {"0": "O", "2": "B-X"}}).encode()
    with pytest.raises(VersionRejected, match="0..n-1"):
        read_labels(gap, "token-classification")
