"""The shard buffer (due by rows or age, idempotent by entry id) and the files of one shard."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from streamtune_anonymizer.shards import ShardBuffer, build_shard
from streamtune_shared.datasets import read_table
from streamtune_shared.schemas import CleanEvent
from streamtune_shared.storage import sha256_hex

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _clean(i: int, dataset: str = "pump-sensors", label: int | str | None = 0) -> CleanEvent:
    return CleanEvent(schema_version=1, event_id=f"e-{i}", device_id="ps_0123456789abcdef01234567", dataset=dataset,
                      ts=T0 + timedelta(seconds=i), readings={"p": float(i)}, text=None, label=label,
                      meta={"site": "plant-3"}, ingested_at=T0, anonymized_at=T0)


def test_a_redelivered_entry_is_buffered_once():
    buffer = ShardBuffer(max_rows=10, max_age_s=5)
    assert buffer.add("1-0", _clean(1), now=0.0)
    assert not buffer.add("1-0", _clean(1), now=1.0)
    assert buffer.total_rows == 1
    assert buffer.holds("1-0", "pump-sensors")


def test_a_dataset_is_due_when_full_or_old_and_datasets_are_independent():
    buffer = ShardBuffer(max_rows=3, max_age_s=5)
    for i in range(3):
        buffer.add(f"{i}-0", _clean(i), now=0.0)
    buffer.add("9-0", _clean(9, dataset="clinical-notes"), now=2.0)
    assert buffer.full() == ["pump-sensors"]
    assert buffer.due(now=1.0) == ["pump-sensors"]
    assert buffer.due(now=6.9) == ["pump-sensors"]
    assert sorted(buffer.due(now=7.0)) == ["clinical-notes", "pump-sensors"]


def test_next_shard_takes_the_oldest_rows_and_remove_forgets_only_those():
    buffer = ShardBuffer(max_rows=2, max_age_s=5)
    for i in range(5):
        buffer.add(f"{i}-0", _clean(i), now=float(i))
    shard = buffer.next_shard("pump-sensors")
    assert [row.entry_id for row in shard] == ["0-0", "1-0"]
    assert buffer.total_rows == 5, "rows stay buffered until their shard is stored"
    buffer.remove("pump-sensors", [row.entry_id for row in shard])
    assert [row.entry_id for row in buffer.next_shard("pump-sensors")] == ["2-0", "3-0"]
    buffer.remove("pump-sensors", ["2-0", "3-0", "4-0"])
    assert buffer.datasets() == [] and buffer.due(100.0) == []


def test_a_shard_holds_the_rows_and_its_manifest_checks_out():
    events = [_clean(i, label=i % 2) for i in range(4)]
    files = build_shard("pump-sensors", "20261128T120000Z-1-0-w", events, writer="anonymizer-test")
    assert files.shard_key == "datasets/pump-sensors/shards/20261128T120000Z-1-0-w.parquet"
    assert files.manifest_key == "datasets/pump-sensors/manifests/20261128T120000Z-1-0-w.json"
    assert files.manifest.sha256 == sha256_hex(files.parquet)
    assert (files.manifest.rows, files.manifest.min_ts, files.manifest.max_ts) == (4, T0, T0 + timedelta(seconds=3))
    rows = read_table(files.parquet).to_pylist()
    assert [r["event_id"] for r in rows] == ["e-0", "e-1", "e-2", "e-3"]
    assert [json.loads(r["label"]) for r in rows] == [0, 1, 0, 1]
    announced = files.announcement()
    assert (announced.rows, announced.sha256, announced.shard_key) == (4, files.manifest.sha256, files.shard_key)
    assert json.loads(files.manifest_json())["shard_key"] == files.shard_key
