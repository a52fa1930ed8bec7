"""The anonymizer's consumers wired by build_service, on the in-memory bus and object store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest
from pydantic import SecretStr
from streamtune_anonymizer.app import AnonymizerDeps, build_service, create_app
from streamtune_anonymizer.config import AnonymizerSettings
from streamtune_anonymizer.domain import pseudonym
from streamtune_anonymizer.handlers import BufferFull
from streamtune_shared import streams
from streamtune_shared.bus import Entry
from streamtune_shared.datasets import read_dataset
from streamtune_shared.schemas import CleanEvent
from streamtune_shared.settings import InfraSettings
from streamtune_shared.testing import InMemoryBus, InMemoryObjectStore
from structlog.testing import capture_logs

FIXTURES = Path(__file__).resolve().parents[4] / "tests" / "fixtures"
KEY = "component-key-0123456789abcdefghijklmnopqrstuvwxyz"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CONTACT_MARKERS = (" Call the ward", " Results sent", " Billing card")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FlakyStore(InMemoryObjectStore):
    """An object store that fails the next ``failures`` puts."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.failures = failures

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store down")
        super().put_bytes(key, data, content_type)


def _settings(**overrides) -> AnonymizerSettings:
    return AnonymizerSettings(infra=InfraSettings(s3_access_key="a", s3_secret_key="b"), pseudonym_key=KEY,
                              **overrides)


def _service(bus=None, store=None, clock=None, **overrides):
    deps = AnonymizerDeps(bus=bus or InMemoryBus(), store=store or InMemoryObjectStore(), now=lambda: NOW,
                          monotonic=clock or Clock())
    return build_service(_settings(**overrides), deps), deps


def _fixture_events(name: str) -> list[dict]:
    events = [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]
    for event in events:
        event["ingested_at"] = NOW.isoformat()
    return events


def _entries(payloads: list[bytes], first: int = 1) -> list[Entry]:
    return [Entry(id=f"{first + i}-0", fields={b"payload": p}) for i, p in enumerate(payloads)]


def _contact_values(text: str) -> list[str]:
    starts = [text.find(m) for m in CONTACT_MARKERS if m in text]
    tokens = text[min(starts):].split() if starts else []
    return [t for t in tokens if "@" in t or any(c.isdigit() for c in t)]


async def test_clean_events_carry_no_pii_and_every_entry_is_acknowledged():
    service, deps = _service()
    notes = _fixture_events("clinical_notes.jsonl")
    entries = _entries([json.dumps(n).encode() for n in notes])
    await service.anonymizer.process(entries)
    clean = [CleanEvent.model_validate(m) for m in deps.bus.messages(streams.CLEAN)]
    assert [c.event_id for c in clean] == [n["event_id"] for n in notes]
    assert deps.bus.acked[(streams.VALID, "anonymizer")] == [e.id for e in entries]
    blob = b"".join(deps.bus.streams[streams.CLEAN]).decode()
    leaked = [v for n, c in zip(notes, clean, strict=True) for v in _contact_values(n["text"]) if v in c.text]
    assert leaked == []
    assert "ehr-gateway" not in blob and "dr-" not in blob, "device ids and clinicians are pseudonymized"
    assert clean[0].device_id == pseudonym(KEY.encode(), "device_id", notes[0]["device_id"])
    assert clean[0].meta["site"] == notes[0]["meta"]["site"]
    assert sum(sum(c.redactions.values()) for c in clean) >= 100
    assert all(c.label == n["label"] for c, n in zip(clean, notes, strict=True))


async def test_an_event_id_seen_twice_reaches_events_clean_once():
    service, deps = _service()
    pump = _fixture_events("pump_events.jsonl")[0]
    payload = json.dumps(pump).encode()
    await service.anonymizer.process(_entries([payload, payload]))
    await service.anonymizer.process(_entries([payload], first=3))
    assert len(deps.bus.streams[streams.CLEAN]) == 1
    assert deps.bus.acked[(streams.VALID, "anonymizer")] == ["1-0", "2-0", "3-0"]


@pytest.mark.parametrize("fields", [
    {b"payload": b"not json"}, {b"payload": b"\xff\xfe"}, {b"other": b"{}"}, {b"payload": b"[1, 2]"},
    {b"payload": json.dumps({"schema_version": 1, "event_id": "e-1"}).encode()},
])
async def test_bad_payloads_go_to_the_dead_letter_stream_with_a_reason(fields):
    service, deps = _service()
    await service.anonymizer.process([Entry(id="7-0", fields=fields)])
    [letter] = deps.bus.messages(streams.DLQ)
    assert letter["stage"] == "anonymizer" and letter["reason"]
    assert letter["source_stream"] == streams.VALID and letter["entry_id"] == "7-0"
    assert deps.bus.streams[streams.CLEAN] == []
    assert deps.bus.acked[(streams.VALID, "anonymizer")] == ["7-0"]


def test_both_consumers_are_subscribed_with_their_groups_and_reclaim_timeouts():
    service, _ = _service(claim_idle_ms=2000, shard_claim_idle_ms=9000, batch_size=64, max_deliveries=3)
    specs = {(c.spec.stream, c.spec.group, c.spec.stage, c.spec.claim_idle_ms, c.spec.max_records,
              c.spec.max_deliveries) for c in service.runtime.consumers}
    assert specs == {(streams.VALID, "anonymizer", "anonymizer", 2000, 64, 3),
                     (streams.CLEAN, "anonymizer-shards", "shard-writer", 9000, 64, 3)}


def test_create_app_refuses_a_weak_key_even_past_settings():
    settings = _settings().model_copy(update={"pseudonym_key": SecretStr("changeme")})
    with pytest.raises(ValueError, match="well-known default"):
        create_app(settings, AnonymizerDeps(bus=InMemoryBus(), store=InMemoryObjectStore()))


async def _clean_entries(n: int, first: int = 1, dataset: str = "pump-sensors", label=0) -> list[Entry]:
    events = [CleanEvent(schema_version=1, event_id=f"c-{first + i}", device_id="ps_0123456789abcdef01234567",
                         dataset=dataset, ts=NOW - timedelta(seconds=n - i), readings={"p": 0.1 * i}, label=label,
                         meta={}, ingested_at=NOW, anonymized_at=NOW) for i in range(n)]
    return _entries([e.model_dump_json().encode() for e in events], first=first)


async def test_a_full_dataset_becomes_a_shard_a_manifest_and_an_announcement():
    service, deps = _service(shard_max_rows=3)
    labeled = await _clean_entries(4)
    unlabeled = await _clean_entries(2, first=10, label=None)
    await service.shard_writer.process(labeled + unlabeled)
    acked = deps.bus.acked[(streams.CLEAN, "anonymizer-shards")]
    assert sorted(acked) == sorted(["10-0", "11-0", "1-0", "2-0", "3-0"]), "the 4th row waits for its shard"
    rows, manifests = read_dataset(deps.store, "pump-sensors")
    assert sorted(r["event_id"] for r in rows) == ["c-1", "c-2", "c-3"]
    [announced] = deps.bus.messages(streams.SHARDS)
    assert announced["rows"] == 3 and announced["sha256"] == manifests[0].sha256
    assert announced["shard_key"] in deps.store.objects and announced["manifest_key"] in deps.store.objects


async def test_an_old_dataset_is_flushed_by_the_timer_and_the_rest_at_stop():
    clock = Clock()
    service, deps = _service(clock=clock, shard_max_rows=100, shard_max_age_s=5.0)
    await service.shard_writer.process(await _clean_entries(2))
    await service.shard_writer.tick()
    assert deps.bus.messages(streams.SHARDS) == []
    clock.now += 5.0
    await service.shard_writer.tick()
    assert [m["rows"] for m in deps.bus.messages(streams.SHARDS)] == [2]
    await service.shard_writer.process(await _clean_entries(1, first=5, dataset="clinical-notes", label="x"))
    await service.shard_writer.flush_all()
    assert [m["dataset"] for m in deps.bus.messages(streams.SHARDS)] == ["pump-sensors", "clinical-notes"]
    assert service.shard_writer.buffer.total_rows == 0


async def test_nothing_is_acknowledged_until_the_store_has_the_shard():
    clock = Clock()
    store = FlakyStore(failures=2)
    service, deps = _service(store=store, clock=clock, shard_max_rows=2)
    await service.shard_writer.process(await _clean_entries(2))
    assert deps.bus.acked[(streams.CLEAN, "anonymizer-shards")] == []
    assert deps.bus.messages(streams.SHARDS) == []
    assert service.shard_writer.buffer.total_rows == 2, "rows stay buffered for a retry"
    clock.now += 0.5
    await service.shard_writer.tick()  # second failure: the manifest put
    clock.now += 1.0
    await service.shard_writer.tick()
    assert sorted(deps.bus.acked[(streams.CLEAN, "anonymizer-shards")]) == ["1-0", "2-0"]
    assert len(deps.store.list_keys("datasets/pump-sensors/shards/")) == 1, "a retry overwrites, never duplicates"
    rows, _ = read_dataset(deps.store, "pump-sensors")
    assert len(rows) == 2


async def test_a_redelivered_entry_is_stored_once():
    service, deps = _service(shard_max_rows=3)
    entries = await _clean_entries(2)
    await service.shard_writer.process(entries)
    await service.shard_writer.process(entries[:1] + await _clean_entries(1, first=3))
    [announced] = deps.bus.messages(streams.SHARDS)
    assert announced["rows"] == 3


async def test_bad_payloads_on_events_clean_are_dead_lettered_by_the_shard_writer():
    service, deps = _service()
    await service.shard_writer.process([Entry(id="4-0", fields={b"payload": b'{"event_id": "c-1"}'})])
    [letter] = deps.bus.messages(streams.DLQ)
    assert (letter["stage"], letter["source_stream"], letter["event_id"]) == ("shard-writer", streams.CLEAN, "c-1")
    assert deps.bus.acked[(streams.CLEAN, "anonymizer-shards")] == ["4-0"]


async def test_a_full_buffer_leaves_new_entries_pending():
    service, deps = _service(shard_max_rows=100, shard_buffer_limit=3)
    with pytest.raises(BufferFull):
        await service.shard_writer.process(await _clean_entries(5))
    assert service.shard_writer.buffer.total_rows == 3
    assert deps.bus.acked[(streams.CLEAN, "anonymizer-shards")] == []


async def test_buffered_entries_stay_held_by_their_consumer_until_their_shard_is_acked():
    clock = Clock()
    store = FlakyStore(failures=1)
    service, deps = _service(store=store, clock=clock, shard_max_rows=100)
    [shard_consumer] = [c for c in service.runtime.consumers if c.spec.stream == streams.CLEAN]
    await service.shard_writer.process(await _clean_entries(2))
    assert sorted(shard_consumer.held) == ["1-0", "2-0"], "kept claimed past their batch, while buffered"
    with pytest.raises(OSError):
        await service.shard_writer.flush(service.shard_writer.buffer.datasets()[0])
    assert sorted(shard_consumer.held) == ["1-0", "2-0"], "a failed flush leaves them held"
    await service.shard_writer.flush(service.shard_writer.buffer.datasets()[0])
    assert shard_consumer.held == [] and deps.bus.acked[(streams.CLEAN, "anonymizer-shards")] == ["1-0", "2-0"]


async def test_logs_and_metrics_carry_counts_and_ids_but_no_pii():
    service, deps = _service(shard_max_rows=10)
    notes = _fixture_events("clinical_notes.jsonl")[:40]
    secret = "leaky.person@example.org"
    bad = json.dumps({"schema_version": 1, "event_id": "bad-1", "device_id": secret, "text": secret}).encode()
    before = REGISTRY.get_sample_value("streamtune_anonymizer_redactions_total", {"pii_type": "EMAIL"}) or 0.0
    with capture_logs() as logs:
        await service.anonymizer.process(_entries([json.dumps(n).encode() for n in notes] + [bad]))
        await service.shard_writer.process(_entries(list(deps.bus.streams[streams.CLEAN])))
    after = REGISTRY.get_sample_value("streamtune_anonymizer_redactions_total", {"pii_type": "EMAIL"})
    assert after - before == sum("@" in v for n in notes for v in _contact_values(n["text"]))
    written = json.dumps(logs) + generate_latest().decode()
    values = [secret, *(n["device_id"] for n in notes), *(v for n in notes for v in _contact_values(n["text"]))]
    # Lone 4-digit card groups are left out: they may occur in any timestamp.
    assert [v for v in values if len(v) > 4 and v in written] == []
    assert {"event.dead_lettered", "shard.written"} <= {entry["event"] for entry in logs}
