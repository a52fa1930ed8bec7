"""The shared version loader: free to import, and an adapter's base must be the one it was trained on."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest
from streamtune_shared.hf_loading import check_base, fetch_base, file_sha256, merged_version_folder
from streamtune_shared.model_card import CardAdapter, ModelCard, VersionRejected
from streamtune_shared.model_registry import RegistryLayout, file_checksums, write_version
from streamtune_shared.testing import InMemoryObjectStore

VERSION = "20261201T080000Z-abcd1234"
ADAPTER_FILES = {"adapter_model.safetensors": b"a", "adapter_config.json": b"{}", "labels.json": b"{}",
                 "tokenizer.json": b"{}"}


def _adapter(**fields) -> CardAdapter:
    return CardAdapter(**{"method": "lora", "base": "minilm", **fields})


def _card(files: dict[str, bytes], adapter: CardAdapter | None) -> ModelCard:
    return ModelCard(model_name="pii-ner", version=VERSION, task="token-classification", dataset="notes",
                     request_id="r1", files=file_checksums(files), created_at=datetime.now(UTC), adapter=adapter)


def test_importing_the_loader_imports_neither_torch_nor_peft():
    code = "import sys, streamtune_shared.hf_loading; print(sorted({'torch', 'peft', 'transformers'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_a_base_with_other_weights_than_the_adapter_was_trained_on_is_refused(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    check_base(tmp_path, _adapter(base_sha256=file_sha256(tmp_path / "model.safetensors")))
    with pytest.raises(VersionRejected, match="not the one the adapter was trained on"):
        check_base(tmp_path, _adapter(base_sha256="0" * 64))


def test_a_base_without_weights_is_refused(tmp_path):
    with pytest.raises(VersionRejected, match="has no model.safetensors"):
        check_base(tmp_path, _adapter())


def test_an_adapter_cannot_be_the_base_of_another(tmp_path):
    store = InMemoryObjectStore()
    write_version(store, RegistryLayout(), _card(ADAPTER_FILES, _adapter()), ADAPTER_FILES)
    with pytest.raises(VersionRejected, match="is itself an adapter version"):
        fetch_base(f"pii-ner/{VERSION}", store, RegistryLayout(), tmp_path)


def test_only_mergeable_adapters_become_full_weights(tmp_path):
    store = InMemoryObjectStore()
    write_version(store, RegistryLayout(), _card(ADAPTER_FILES, _adapter(method="prompt")), ADAPTER_FILES)
    card = _card(ADAPTER_FILES, _adapter(method="prompt"))
    with pytest.raises(VersionRejected, match="a prompt adapter cannot be merged"):
        merged_version_folder(store, RegistryLayout(), card, tmp_path)
