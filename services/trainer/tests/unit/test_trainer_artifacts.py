"""Finding a request's published version reads only the cards named for that request."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from streamtune_shared.testing import InMemoryObjectStore
from streamtune_trainer.artifacts import find_published_card
from streamtune_trainer.card import version_name, version_prefix

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class CountingStore(InMemoryObjectStore):
    """Records which objects were read."""

    def __init__(self) -> None:
        super().__init__()
        self.read: list[str] = []

    def get_bytes(self, key: str) -> bytes:
        self.read.append(key)
        return super().get_bytes(key)


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
