"""Importing trusted labeled rows as a dataset: the anonymizer's shard format, read back by read_dataset."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from streamtune_shared.datasets import import_rows, read_dataset
from streamtune_shared.testing import InMemoryObjectStore

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def _rows(n: int) -> list[dict]:
    return [{"event_id": f"synthetic-1-{i}", "text": f"Anna Berg lives in Turku {i}",
             "label": ["B-PERSON", "I-PERSON", "O", "O", "B-LOCATION", "O"], "meta": {"template": i % 3}}
            for i in range(n)]


def test_imported_rows_come_back_from_read_dataset_with_their_text_labels_and_meta():
    store = InMemoryObjectStore()
    manifests = import_rows(store, "pii-synthetic", _rows(12), "synthetic", shard_rows=5, now=NOW)
    assert [m.rows for m in manifests] == [5, 5, 2]
    assert {m.writer for m in manifests} == {"import:synthetic"}
    rows, read = read_dataset(store, "pii-synthetic")
    assert sorted(m.shard_key for m in read) == sorted(m.shard_key for m in manifests)
    by_id = {r["event_id"]: r for r in rows}
    assert len(by_id) == 12
    assert by_id["synthetic-1-4"]["text"] == "Anna Berg lives in Turku 4"
    assert by_id["synthetic-1-4"]["label"] == ["B-PERSON", "I-PERSON", "O", "O", "B-LOCATION", "O"]
    assert by_id["synthetic-1-4"]["meta"] == {"template": 1}
    assert all(key.startswith("datasets/pii-synthetic/") for key in store.objects)


def test_rows_without_ids_or_times_get_them_and_a_repeated_import_changes_nothing():
    store = InMemoryObjectStore()
    plain = [{"text": "Hello there", "label": ["O", "O"]}, {"text": "Hi Bo", "label": ["O", "B-PERSON"]}]
    import_rows(store, "greetings", plain, "handmade", now=NOW)
    import_rows(store, "greetings", plain, "handmade", now=NOW)
    rows, manifests = read_dataset(store, "greetings")
    assert len(manifests) == 1
    assert sorted(r["event_id"] for r in rows) == ["handmade-0", "handmade-1"]
    assert {r["ts"] for r in rows} == {NOW}


def test_shards_are_stamped_with_the_import_time_so_a_slow_repeat_keeps_its_key():
    # The wall clock may tick between two imports of the same rows; the key follows ``now`` instead.
    manifests = import_rows(InMemoryObjectStore(), "greetings", [{"text": "Hello", "label": ["O"]}], "handmade",
                            now=NOW)
    assert manifests[0].shard_key.startswith("datasets/greetings/shards/20260301T093000Z-")


def test_two_different_imports_in_the_same_second_both_stay():
    store = InMemoryObjectStore()
    import_rows(store, "pii-synthetic", _rows(2), "synthetic", now=NOW)
    import_rows(store, "pii-synthetic", [{"event_id": "other", "text": "Hi Bo", "label": ["O", "B-PERSON"]}],
                "synthetic", now=NOW)
    rows, manifests = read_dataset(store, "pii-synthetic")
    assert len(manifests) == 2
    assert sorted(r["event_id"] for r in rows) == ["other", "synthetic-1-0", "synthetic-1-1"]


def test_a_row_whose_tags_do_not_match_its_words_stops_the_import_before_anything_is_stored():
    store = InMemoryObjectStore()
    rows = [*_rows(3), {"event_id": "bad", "text": "Anna Berg", "label": ["B-PERSON"]}]
    with pytest.raises(ValueError, match="row 3: label") as raised:
        import_rows(store, "pii-synthetic", rows, "synthetic")
    assert "Anna" not in str(raised.value)
    assert store.objects == {}


def test_a_source_that_cannot_name_a_writer_is_refused():
    with pytest.raises(ValueError, match="source"):
        import_rows(InMemoryObjectStore(), "pii-synthetic", _rows(1), "My Source/1")
