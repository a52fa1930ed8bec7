"""A base model named as a registry version ``<model>/<version>``: copied with every sha256 checked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from streamtune_shared.model_card import ModelCard
from streamtune_shared.model_registry import RegistryLayout, file_checksums, write_version
from streamtune_shared.testing import InMemoryObjectStore
from streamtune_trainer.artifacts import resolve_base_model
from streamtune_trainer.domain import TrainingRejected

VERSION = "20261201T080000Z-abcd1234"


def _publish(store, files: dict[str, bytes], **card_fields) -> None:
    card = ModelCard(model_name="base-ner", version=VERSION, task="token-classification", dataset="notes",
                     request_id="r1", files=file_checksums(files), created_at=datetime.now(UTC), **card_fields)
    write_version(store, RegistryLayout(), card, files)


def test_a_published_full_version_is_a_base(tiny_base_model, tmp_path):
    store = InMemoryObjectStore()
    files = {p.name: p.read_bytes() for p in tiny_base_model.iterdir() if p.is_file()}
    files["labels.json"] = b'{"task": "token-classification", "id2label": {"0": "O", "1": "B-X"}}'
    _publish(store, files)
    folder = resolve_base_model(f"base-ner/{VERSION}", store, tmp_path)
    assert (folder / "model.safetensors").read_bytes() == (tiny_base_model / "model.safetensors").read_bytes()


def test_an_adapter_version_or_a_missing_one_is_not_a_base(tmp_path):
    store = InMemoryObjectStore()
    files = {"adapter_model.safetensors": b"a", "adapter_config.json": b"{}", "labels.json": b"{}",
             "tokenizer.json": b"{}"}
    _publish(store, files, adapter={"method": "lora", "base": "minilm"})
    with pytest.raises(TrainingRejected, match="is itself an adapter version"):
        resolve_base_model(f"base-ner/{VERSION}", store, tmp_path)
    with pytest.raises(TrainingRejected, match="no card.json"):
        resolve_base_model("base-ner/20261201T090000Z-ffff0000", store, tmp_path)


def test_a_base_the_serving_side_refuses_is_a_rejected_request_not_a_retried_failure(tmp_path):
    store = InMemoryObjectStore()
    store.bucket = "datasets"
    with pytest.raises(TrainingRejected, match="bucket 'elsewhere' is not reachable"):
        resolve_base_model("s3://elsewhere/bases/ner/", store, tmp_path)

