"""The events.raw consumer with an in-memory bus: what reaches events.valid and events.dlq, and what is acked."""

from __future__ import annotations

import base64
import json

from faststream.redis import TestRedisBroker
from streamtune_ingestion import handlers
from streamtune_ingestion.app import IngestionDeps, create_app
from streamtune_ingestion.handlers import GROUP, RawEventHandler, dedupe_key
from streamtune_shared import streams
from streamtune_shared.bus import Entry
from streamtune_shared.testing import InMemoryBus


def entry(n: int, payload: bytes | None) -> Entry:
    fields = {} if payload is None else {b"payload": payload}
    return Entry(id=f"1-{n}", fields=fields)


def handler_on(bus: InMemoryBus, settings, now) -> RawEventHandler:
    return RawEventHandler(lambda: bus, settings.policy(), settings.dedupe_ttl_s, lambda: now)


def acked(bus: InMemoryBus) -> list[str]:
    return bus.acked[(streams.RAW, GROUP)]


async def test_valid_events_are_published_cleaned_with_notes(settings, now, pump_events):
    bus = InMemoryBus()
    document = dict(pump_events[0], readings={"temp": 999, "pressure": 2.5, "flow": None})
    await handler_on(bus, settings, now)([entry(1, json.dumps(document).encode())])
    (published,) = bus.messages(streams.VALID)
    assert published["event_id"] == "pump-0000" and published["readings"] == {"pressure": 2.5}
    assert published["notes"] == ["reading 'temp' dropped: 999.0 outside [-50, 200]", "reading 'flow' dropped: null"]
    assert published["ingested_at"].startswith(now.isoformat()[:19])
    assert acked(bus) == ["1-1"]
    assert bus.dedupe == {dedupe_key("pump-0000")}


async def test_bad_entries_are_dead_lettered_with_their_original_bytes_and_reason(settings, now, pump_events):
    bus = InMemoryBus()
    bad_reading = json.dumps(dict(pump_events[0], readings={"temp": "hot"})).encode()
    entries = [entry(1, b"\xff\x00binary"), entry(2, None), entry(3, b"{broken"), entry(4, bad_reading)]
    await handler_on(bus, settings, now)(entries)
    letters = bus.messages(streams.DLQ)
    assert [base64.b64decode(d["original_b64"]) for d in letters] == [b"\xff\x00binary", b"", b"{broken", bad_reading]
    assert [d["entry_id"] for d in letters] == ["1-1", "1-2", "1-3", "1-4"]
    assert all(d["stage"] == "ingestion" and d["source_stream"] == streams.RAW for d in letters)
    assert "not UTF-8" in letters[0]["reason"] and letters[0]["original"] is None
    assert "no 'payload' field" in letters[1]["reason"]
    assert "not JSON" in letters[2]["reason"] and letters[2]["original"] == "{broken"
    assert letters[3]["errors"] == [{"field": "readings.temp", "message": "must be a number or null"}]
    assert letters[3]["event_id"] == "pump-0000"
    assert bus.streams[streams.VALID] == []
    assert acked(bus) == ["1-1", "1-2", "1-3", "1-4"]


async def test_a_duplicate_event_id_is_acked_but_published_once(settings, now, pump_events):
    bus = InMemoryBus()
    handler = handler_on(bus, settings, now)
    first = json.dumps(pump_events[0]).encode()
    changed = json.dumps(dict(pump_events[0], readings={"pressure": 9.0})).encode()
    await handler([entry(1, first), entry(2, first), entry(3, json.dumps(pump_events[1]).encode())])
    await handler([entry(4, changed)])
    published = bus.messages(streams.VALID)
    assert [m["event_id"] for m in published] == ["pump-0000", "pump-0001"]
    assert published[0]["readings"] == pump_events[0]["readings"]  # the first copy wins
    assert acked(bus) == ["1-1", "1-2", "1-3", "1-4"]
    assert bus.streams[streams.DLQ] == []


async def test_a_rejected_event_id_can_be_sent_again_corrected(settings, now, pump_events):
    bus = InMemoryBus()
    handler = handler_on(bus, settings, now)
    await handler([entry(1, json.dumps(dict(pump_events[0], dataset="Bad Name")).encode())])
    await handler([entry(2, json.dumps(pump_events[0]).encode())])
    assert len(bus.messages(streams.DLQ)) == 1
    assert [m["event_id"] for m in bus.messages(streams.VALID)] == ["pump-0000"]


async def test_a_whole_fixture_batch_goes_through(settings, now, pump_events, clinical_events):
    bus = InMemoryBus()
    documents = pump_events + clinical_events
    await handler_on(bus, settings, now)([entry(i, json.dumps(d).encode()) for i, d in enumerate(documents)])
    assert len(bus.messages(streams.VALID)) == len(documents) == 700
    assert bus.streams[streams.DLQ] == []


async def test_entries_delivered_by_the_broker_reach_the_process_function(settings, now, pump_events):
    bus = InMemoryBus()
    app = create_app(settings, IngestionDeps(bus=bus, clock=lambda: now))
    async with TestRedisBroker(app.broker) as broker:
        await broker.publish(json.dumps(pump_events[0]).encode(), stream=streams.RAW)
        await broker.publish(b"not json", stream=streams.RAW)
    assert [m["event_id"] for m in bus.messages(streams.VALID)] == ["pump-0000"]
    assert [m["original"] for m in bus.messages(streams.DLQ)] == ["not json"]
    assert len(bus.acked[(streams.RAW, GROUP)]) == 2


async def test_a_validation_crash_dead_letters_the_entry_instead_of_stalling_the_stream(
    settings, now, pump_events, monkeypatch
):
    real = handlers.ingest_payload

    def crash_on_pump_1(raw, policy, when):
        if b'"pump-0001"' in raw:
            raise KeyError("bug")
        return real(raw, policy, when)

    monkeypatch.setattr(handlers, "ingest_payload", crash_on_pump_1)
    bus = InMemoryBus()
    await handler_on(bus, settings, now)([entry(i, json.dumps(e).encode()) for i, e in enumerate(pump_events[:3])])
    assert [m["event_id"] for m in bus.messages(streams.VALID)] == ["pump-0000", "pump-0002"]
    (letter,) = bus.messages(streams.DLQ)
    assert letter["entry_id"] == "1-1" and "KeyError" in letter["reason"]
    assert acked(bus) == ["1-0", "1-1", "1-2"]
