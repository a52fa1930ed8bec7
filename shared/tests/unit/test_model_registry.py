"""The registry layout from one prefix, version names, checksums, and writing and reading versions."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from streamtune_shared.model_card import ModelCard, VersionRejected
from streamtune_shared.model_registry import (
    RegistryLayout,
    download_verified,
    fetch_card,
    file_checksums,
    find_card_for_request,
    list_versions,
    mismatched_files,
    verify_file,
    version_name,
    write_version,
)
from streamtune_shared.testing import InMemoryObjectStore

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
FILES = {"model.safetensors": b"weights", "config.json": b"{}", "labels.json": b'{"task": "x"}'}


def _card(version: str, request_id: str = "r1", files: dict[str, bytes] = FILES) -> ModelCard:
    return ModelCard(model_name="ner", version=version, task="token-classification", dataset="notes",
                     request_id=request_id, files=file_checksums(files), created_at=NOW)


class CountingStore(InMemoryObjectStore):
    """Records which objects were written and read, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.read: list[str] = []
        self.written: list[str] = []

    def get_bytes(self, key: str) -> bytes:
        self.read.append(key)
        return super().get_bytes(key)

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.written.append(key)
        super().put_bytes(key, data, content_type)


def test_version_names_sort_by_time_and_carry_the_request():
    early = version_name(datetime(2026, 11, 28, 9, 5, 7, tzinfo=UTC), "0123456789abcdef")
    later = version_name(datetime(2026, 11, 28, 11, 0, 0, tzinfo=timezone(timedelta(hours=1))), "ffffffff")
    assert early == "20261128T090507Z-01234567"
    assert early < later == "20261128T100000Z-ffffffff"


def test_every_key_follows_the_one_configured_prefix():
    layout = RegistryLayout("tenant-a/registry/")
    assert layout.version_prefix("ner", "v1") == "tenant-a/registry/ner/v1/"
    assert layout.card_key("ner", "v1") == "tenant-a/registry/ner/v1/card.json"
    message = layout.announcement(_card("v1"))
    assert message.prefix == "tenant-a/registry/ner/v1/" and message.card_key == "tenant-a/registry/ner/v1/card.json"


@pytest.mark.parametrize("prefix", ["models", "/models/", "a//b/", "../x/", ""])
def test_a_prefix_that_is_not_plain_folders_is_refused(prefix):
    with pytest.raises(ValueError, match="models prefix"):
        RegistryLayout(prefix)


def test_only_versions_with_a_card_are_committed():
    keys = [
        "models/disease-ner/20261128T120000Z-aa/card.json",
        "models/disease-ner/20261128T120000Z-aa/model.safetensors",
        "models/disease-ner/20261129T080000Z-bb/model.safetensors",  # still uploading: no card yet
        "models/disease-ner/20261127T000000Z-cc/card.json",
        "models/disease-ner-v2/20301231T000000Z-dd/card.json",
    ]
    layout = RegistryLayout()
    assert layout.committed_versions(keys, "disease-ner") == ["20261127T000000Z-cc", "20261128T120000Z-aa"]
    assert layout.model_names(keys) == ["disease-ner", "disease-ner-v2"]


def test_checksums_catch_a_changed_or_missing_file():
    checksums = file_checksums(FILES)
    assert mismatched_files(checksums, FILES) == []
    assert mismatched_files(checksums, {**FILES, "config.json": b'{"x": 1}'}) == ["config.json"]
    assert mismatched_files(checksums, {k: v for k, v in FILES.items() if k != "config.json"}) == ["config.json"]
    verify_file("model.safetensors", b"w", hashlib.sha256(b"w").hexdigest())
    with pytest.raises(VersionRejected, match="sha256 mismatch for model.safetensors"):
        verify_file("model.safetensors", b"w!", hashlib.sha256(b"w").hexdigest())


def test_a_written_version_reads_back_verified_and_its_card_comes_last(tmp_path: Path):
    store, layout = CountingStore(), RegistryLayout("reg/")
    card = _card("20261128T120000Z-r1")
    write_version(store, layout, card, FILES)
    assert store.written[-1] == "reg/ner/20261128T120000Z-r1/card.json" and len(store.written) == 4
    assert list_versions(store, layout, "ner") == ["20261128T120000Z-r1"]
    fetched = fetch_card(store, layout, "ner", card.version)
    assert fetched == card
    download_verified(store, layout, fetched, tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == b"weights"


def test_a_tampered_file_is_refused_at_download(tmp_path: Path):
    store, layout = InMemoryObjectStore(), RegistryLayout()
    card = _card("20261128T120000Z-r1")
    write_version(store, layout, card, FILES)
    store.put_bytes(layout.version_prefix("ner", card.version) + "config.json", b'{"evil": 1}')
    with pytest.raises(VersionRejected, match="sha256 mismatch for config.json"):
        download_verified(store, layout, card, tmp_path)


def test_pickles_and_files_the_card_does_not_vouch_for_are_never_written():
    store, layout = InMemoryObjectStore(), RegistryLayout()
    with pytest.raises(VersionRejected, match="pickle-based"):
        write_version(store, layout, _card("v1"), {**FILES, "pytorch_model.bin": b"\x80"})
    with pytest.raises(VersionRejected, match="do not match the card: extra.txt"):
        write_version(store, layout, _card("v1"), {**FILES, "extra.txt": b"x"})
    assert store.list_keys("") == []


def test_the_card_of_a_request_is_found_without_reading_other_versions_cards():
    store, layout = CountingStore(), RegistryLayout()
    for other in ("aaaaaaaa-1", "bbbbbbbb-2", "cccccccc-3"):
        write_version(store, layout, _card(version_name(NOW, other), other), FILES)
    wanted = _card(version_name(NOW, "dddddddd-4"), "dddddddd-4")
    write_version(store, layout, wanted, FILES)
    store.read.clear()
    assert find_card_for_request(store, layout, "ner", "dddddddd-4") == wanted
    assert store.read == [layout.card_key("ner", wanted.version)]


def test_a_version_named_like_the_request_but_trained_for_another_is_not_taken():
    store, layout = InMemoryObjectStore(), RegistryLayout()
    write_version(store, layout, _card(version_name(NOW, "dddddddd-4"), "dddddddd-other"), FILES)
    assert find_card_for_request(store, layout, "ner", "dddddddd-4") is None
