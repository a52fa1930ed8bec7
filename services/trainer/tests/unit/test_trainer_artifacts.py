"""Finding a request's published version reads only the cards named for that request; the newest usable
checkpoint is found from one listing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import torch
from streamtune_shared.testing import InMemoryObjectStore
from streamtune_trainer.artifacts import checkpoint_folder, find_published_card, load_latest_checkpoint
from streamtune_trainer.card import version_name, version_prefix
from streamtune_trainer.checkpoint import STATE_FILE, Checkpoint, RunState, checkpoint_files

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class CountingStore(InMemoryObjectStore):
    """Records which objects were read."""

    def __init__(self) -> None:
        super().__init__()
        self.read: list[str] = []
        self.listed: list[str] = []

    def get_bytes(self, key: str) -> bytes:
        self.read.append(key)
        return super().get_bytes(key)

    def list_keys(self, prefix: str) -> list[str]:
        self.listed.append(prefix)
        return super().list_keys(prefix)


def _publish(store: InMemoryObjectStore, request_id: str, *, card_request_id: str | None = None,
             with_card: bool = True) -> str:
    prefix = version_prefix("models/", "ner", version_name(NOW, request_id))
    store.put_bytes(prefix + "model.safetensors", b"weights")
    if with_card:
        store.put_bytes(prefix + "card.json", json.dumps({"request_id": card_request_id or request_id}).encode())
    return prefix


def test_the_card_of_the_request_is_found_without_reading_other_versions_cards():
    store = CountingStore()
    for other in ("aaaaaaaa-1", "bbbbbbbb-2", "cccccccc-3"):
        _publish(store, other)
    wanted = _publish(store, "dddddddd-4")

    card = find_published_card(store, "models/", "ner", "dddddddd-4")

    assert card == {"request_id": "dddddddd-4"}
    assert store.read == [wanted + "card.json"]


def test_a_version_whose_name_shares_the_id_prefix_but_not_the_request_is_not_taken():
    store = CountingStore()
    _publish(store, "dddddddd-4", card_request_id="dddddddd-other")

    assert find_published_card(store, "models/", "ner", "dddddddd-4") is None


def test_a_version_without_its_card_is_not_published():
    store = CountingStore()
    _publish(store, "dddddddd-4", with_card=False)

    assert find_published_card(store, "models/", "ner", "dddddddd-4") is None
    assert store.read == []


def _put_checkpoint(store: InMemoryObjectStore, run_prefix: str, epoch: int, *, committed: bool = True) -> None:
    weights = {"w": torch.full((2,), float(epoch))}
    checkpoint = Checkpoint(RunState(seed=1, epoch=epoch, global_step=epoch), weights,
                            {"state": {}, "param_groups": []}, {})
    folder = checkpoint_folder(run_prefix, epoch)
    for name, data in checkpoint_files(checkpoint).items():
        if committed or name != STATE_FILE:
            store.put_bytes(folder + name, data)


def test_the_newest_usable_checkpoint_is_loaded_from_one_listing():
    store, run = CountingStore(), "checkpoints/req-1/"
    _put_checkpoint(store, run, 1)
    _put_checkpoint(store, run, 2)
    store.put_bytes(checkpoint_folder(run, 2) + "scheduler.json", b'{"changed": true}')  # epoch 2 is corrupt
    _put_checkpoint(store, run, 3, committed=False)  # epoch 3 never got its marker

    checkpoint = load_latest_checkpoint(store, run)

    assert checkpoint is not None and checkpoint.state.epoch == 1
    assert torch.equal(checkpoint.model["w"], torch.full((2,), 1.0))
    assert store.listed == [run]
    assert not any(key.startswith(checkpoint_folder(run, 3)) for key in store.read)


def test_no_committed_checkpoint_means_none():
    store, run = CountingStore(), "checkpoints/req-1/"
    _put_checkpoint(store, run, 1, committed=False)

    assert load_latest_checkpoint(store, run) is None
    assert store.read == []
