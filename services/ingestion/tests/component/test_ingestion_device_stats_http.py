"""The consumer feeds the device statistics and GET /devices/{id}/stats serves them (in-memory bus and store)."""

from __future__ import annotations

import json

import httpx
from streamtune_ingestion.config import IngestionSettings
from streamtune_ingestion.handlers import RawEventHandler
from streamtune_ingestion.http_api import create_http_app
from streamtune_ingestion.stats_store import InMemoryDeviceStats
from streamtune_shared import streams
from streamtune_shared.bus import Entry
from streamtune_shared.testing import InMemoryBus

CATALOGUE = {"pump-sensors": {"Temperature": {"unit": "degC", "range": [-20, 150], "accepts": ["degF"]}}}


async def test_converted_readings_are_published_and_counted_once(settings, now, pump_events):
    settings = IngestionSettings(**{**settings.model_dump(), "sensor_catalogue": CATALOGUE})
    bus, store = InMemoryBus(), InMemoryDeviceStats()
    handler = RawEventHandler(lambda: bus, settings.policy(), settings.dedupe_ttl_s, lambda: now, lambda: store)
    fahrenheit = [dict(e, readings={"Temperature": 212.0}, meta={"units": "Temperature=degF"})
                  for e in pump_events[:3]]
    entries = [Entry(id=f"1-{i}", fields={b"payload": json.dumps(e).encode()}) for i, e in enumerate(fahrenheit)]
    await handler(entries)
    await handler(entries[:1])  # a redelivered duplicate: not counted again
    published = bus.messages(streams.VALID)
    assert [p["readings"]["Temperature"] for p in published] == [100.0, 100.0, 100.0]
    assert published[0]["notes"] == ["reading 'Temperature' converted from degF to degC"]

    app = create_http_app(settings, lambda: bus, lambda: now, lambda: store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingestion") as client:
        found = await client.get("/devices/pump-7/stats")
        missing = await client.get("/devices/pump-8/stats")
    assert found.status_code == 200
    assert found.json()["sensors"]["Temperature"]["count"] == 3
    assert found.json()["sensors"]["Temperature"]["mean"] == 100.0
    assert missing.status_code == 404
