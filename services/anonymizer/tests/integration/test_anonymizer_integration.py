"""The anonymizer app on a real Redis and a real S3 bucket: exactly once into events.clean, no PII,
shards that match the labeled events, reclaim from a dead consumer, and a flush at shutdown.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streamtune_anonymizer.app import create_app
from streamtune_anonymizer.config import AnonymizerSettings
from streamtune_shared import streams
from streamtune_shared.datasets import read_dataset
from streamtune_shared.testing import wait_until

FIXTURES = Path(__file__).resolve().parents[4] / "tests" / "fixtures"
KEY = "integration-key-0123456789abcdefghijklmnopqrstuvwxyz"
CONTACT_MARKERS = (" Call the ward", " Results sent", " Billing card")


def _settings(infra, **overrides) -> AnonymizerSettings:
    values = {"claim_idle_ms": 1000, "shard_claim_idle_ms": 3000, "shard_max_age_s": 0.5, "shard_max_rows": 250,
              **overrides}
    return AnonymizerSettings(infra=infra, pseudonym_key=KEY, **values)


def _valid_events() -> list[dict]:
    """Clinical notes and pump events as ValidEvents, timestamps moved to the last hour."""
    events = []
    for name in ("clinical_notes.jsonl", "pump_events.jsonl"):
        rows = [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]
        now = datetime.now(UTC)
        for i, row in enumerate(rows):
            row["ts"] = (now - timedelta(seconds=len(rows) - i)).isoformat()
            row["ingested_at"] = now.isoformat()
            events.append(row)
    return events


def _contact_values(text: str | None) -> list[str]:
    starts = [text.find(m) for m in CONTACT_MARKERS if text and m in text]
    tokens = text[min(starts):].split() if starts else []
    return [t.rstrip(".,") for t in tokens if "@" in t or any(c.isdigit() for c in t)]


async def _xadd(redis, payloads: list[bytes]) -> None:
    pipe = redis.pipeline(transaction=False)
    for payload in payloads:
        pipe.xadd(streams.VALID, {"payload": payload})
    await pipe.execute()


async def _pending(redis, stream: str, group: str) -> int:
    try:
        return (await redis.xpending(stream, group))["pending"]
    except Exception:  # noqa: BLE001 - the group does not exist yet
        return -1


async def _clean(redis) -> list[dict]:
    return [json.loads(fields[b"payload"]) for _, fields in await redis.xrange(streams.CLEAN)]


async def test_fixture_events_reach_events_clean_once_without_pii_and_land_in_shards(
        redis_client, infra_settings, object_store):
    events = _valid_events()
    unlabeled = [{**events[-1], "event_id": f"unlabeled-{i}", "label": None} for i in range(20)]
    bad = [b"not json", json.dumps({"schema_version": 1, "event_id": "half"}).encode(), b"[]"]
    await _xadd(redis_client, [json.dumps(e).encode() for e in events[:300]])  # before any worker: group at 0
    app = create_app(_settings(infra_settings))
    async with app.start_lifespan_context():
        await _xadd(redis_client, [json.dumps(e).encode() for e in events[300:] + unlabeled] + bad)
        await _xadd(redis_client, [json.dumps(events[3]).encode()])  # events.valid repeats an event_id
        total = len(events) + len(unlabeled)

        async def drained() -> bool:
            return (await redis_client.xlen(streams.CLEAN) >= total
                    and await redis_client.xlen(streams.DLQ) >= len(bad)
                    and await _pending(redis_client, streams.VALID, "anonymizer") == 0
                    and await _pending(redis_client, streams.CLEAN, "anonymizer-shards") == 0)

        await wait_until(drained, "events.clean, the DLQ and the shards", 60)
        await asyncio.sleep(0.5)  # a duplicate would show up now

    clean = await _clean(redis_client)
    counts = Counter(c["event_id"] for c in clean)
    assert len(clean) == total and set(counts.values()) == {1}
    assert set(counts) == {e["event_id"] for e in events + unlabeled}
    by_id = {c["event_id"]: c for c in clean}
    leaked = [v for e in events for v in _contact_values(e.get("text")) if v in (by_id[e["event_id"]]["text"] or "")]
    assert leaked == []
    assert sum(1 for e in events if _contact_values(e.get("text"))) == 50
    blob = b"".join(f[b"payload"] for _, f in await redis_client.xrange(streams.CLEAN))
    assert b"@example-clinic.org" not in blob and b"ehr-gateway" not in blob and b"pump-7" not in blob

    letters = [json.loads(f[b"payload"]) for _, f in await redis_client.xrange(streams.DLQ)]
    assert len(letters) == len(bad) and {letter["stage"] for letter in letters} == {"anonymizer"}

    labeled = {e["event_id"] for e in events}
    stored = set()
    manifests = []
    for dataset in ("clinical-notes", "pump-sensors"):
        rows, found = await asyncio.to_thread(read_dataset, object_store, dataset)  # checks every sha256
        stored |= {r["event_id"] for r in rows}
        manifests += found
        assert all(r["device_id"].startswith("ps_") for r in rows)
    assert stored == labeled
    announced = [json.loads(f[b"payload"]) for _, f in await redis_client.xrange(streams.SHARDS)]
    assert {a["sha256"] for a in announced} == {m.sha256 for m in manifests}
    assert sum(a["rows"] for a in announced) == sum(m.rows for m in manifests) == len(labeled)


async def test_entries_of_a_dead_consumer_are_reclaimed_and_a_replay_adds_nothing(redis_client, infra_settings):
    events = _valid_events()[400:450]
    payloads = [json.dumps(e).encode() for e in events]
    await redis_client.xgroup_create(streams.VALID, "anonymizer", id="0", mkstream=True)
    await _xadd(redis_client, payloads)
    await redis_client.xreadgroup("anonymizer", "dead-worker", {streams.VALID: ">"})  # read, then died
    settings = _settings(infra_settings, claim_idle_ms=300)

    async def all_clean() -> bool:
        return (await redis_client.xlen(streams.CLEAN) >= len(events)
                and await _pending(redis_client, streams.VALID, "anonymizer") == 0)

    async with create_app(settings).start_lifespan_context():
        await wait_until(all_clean, "the reclaimed entries", 30)
    await _xadd(redis_client, payloads)  # events.valid repeats every event after a restart
    async with create_app(settings).start_lifespan_context():
        await wait_until(all_clean, "the replayed entries", 30)
        await asyncio.sleep(0.5)
    clean_ids = [c["event_id"] for c in await _clean(redis_client)]
    assert sorted(clean_ids) == sorted(e["event_id"] for e in events)


async def test_rows_buffered_at_shutdown_are_stored_before_the_process_exits(
        redis_client, infra_settings, object_store):
    events = _valid_events()[400:410]
    settings = _settings(infra_settings, shard_max_age_s=60.0, shard_claim_idle_ms=120_000)
    async with create_app(settings).start_lifespan_context():
        await _xadd(redis_client, [json.dumps(e).encode() for e in events])

        async def buffered() -> bool:
            return (await redis_client.xlen(streams.CLEAN) >= len(events)
                    and await _pending(redis_client, streams.CLEAN, "anonymizer-shards") == len(events))

        await wait_until(buffered, "the rows to be buffered", 30)
        assert object_store.list_keys("datasets/") == []
    rows, manifests = await asyncio.to_thread(read_dataset, object_store, "pump-sensors")
    assert sorted(r["event_id"] for r in rows) == sorted(e["event_id"] for e in events)
    assert len(manifests) == 1
    assert await _pending(redis_client, streams.CLEAN, "anonymizer-shards") == 0
