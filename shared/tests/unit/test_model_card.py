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


ADAPTER_FILES = {"adapter_model.safetensors": DIGEST, "adapter_config.json": DIGEST, "labels.json": DIGEST,
                 "tokenizer.json": DIGEST}
ADAPTER = {"method": "lora", "peft_config": {"r": 8}, "base": "minilm", "base_sha256": DIGEST}


def test_an_adapter_version_needs_the_adapter_and_tokenizer_not_full_weights():
    card = parse_card(_card(files=ADAPTER_FILES, adapter=ADAPTER), "disease-ner", VERSION)
    assert card.adapter is not None and card.adapter.base == "minilm" and card.adapter.mergeable
    missing = {k: v for k, v in ADAPTER_FILES.items() if k != "adapter_model.safetensors"}
    assert _rejection(_card(files=missing, adapter=ADAPTER)) == "card lists no adapter_model.safetensors"


def test_adapter_files_alone_do_not_make_a_full_version():
    assert _rejection(_card(files=ADAPTER_FILES)) == "card lists no model.safetensors"


@pytest.mark.parametrize("adapter", [{**ADAPTER, "method": "full"}, {**ADAPTER, "base": ""},
                                     {**ADAPTER, "base_sha256": "not-a-digest"}, {"method": "lora"}])
def test_a_malformed_adapter_block_is_refused(adapter):
    assert _rejection(_card(files=ADAPTER_FILES, adapter=adapter)).startswith("card.json does not fit the card schema")


def test_prompt_tuned_adapters_are_not_merged():
    card = parse_card(_card(files=ADAPTER_FILES, adapter={**ADAPTER, "method": "prompt"}), "disease-ner", VERSION)
    assert card.adapter is not None and not card.adapter.mergeable


def test_the_privacy_spent_is_part_of_the_card():
    privacy = {"epsilon": 7.9, "delta": 1e-5, "target_epsilon": 8, "noise_multiplier": 0.7, "max_grad_norm": 1.0,
               "sample_rate": 0.01, "steps": 300}
    card = parse_card(_card(privacy=privacy), "disease-ner", VERSION)
    assert card.privacy is not None and card.privacy.epsilon == 7.9 and card.privacy.steps == 300


def test_a_domain_adapted_base_card_needs_no_labels_but_its_weights_config_and_tokenizer():
    from streamtune_shared.model_card import BASE_MODEL_TASK, check_card_files

    digest = "0" * 64
    check_card_files({"model.safetensors": digest, "config.json": digest, "tokenizer.json": digest},
                     task=BASE_MODEL_TASK)
    with pytest.raises(VersionRejected, match="tokenizer.json"):
        check_card_files({"model.safetensors": digest, "config.json": digest}, task=BASE_MODEL_TASK)
    with pytest.raises(VersionRejected, match="labels.json"):
        check_card_files({"model.safetensors": digest, "config.json": digest, "tokenizer.json": digest},
                         task="token-classification")
