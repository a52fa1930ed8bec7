"""The ingestion app against a real Redis: plain XADDs in, each valid event once out, malformed to the DLQ."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from streamtune_ingestion.app import create_app
from streamtune_ingestion.config import IngestionSettings
from streamtune_ingestion.handlers import GROUP, dedupe_key
from streamtune_shared import streams

BAD_SCHEMA = json.dumps({"schema_version": 1, "event_id": "bad-schema", "device_id": "d", "dataset": "x"}).encode()


@pytest.fixture
def settings(infra_settings) -> IngestionSettings:
    return IngestionSettings(infra=infra_settings, batch_size=32, block_ms=50, claim_idle_ms=300,
                             dedupe_ttl_s=600, sensor_limits={"Pressure": (0, 16)})


async def wait_until(check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running(app) -> AsyncIterator[httpx.AsyncClient]:
    """The app started for real, and a client on its HTTP side once /readyz says so.

    The lifespan context is entered before the broker and the after-startup hooks finish; leaving it
    that early does not shut down cleanly, so every test waits for readiness first.
    """
    async with app.start_lifespan_context():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingestion") as client:
            await wait_until(lambda: is_ready(client))
            yield client


async def is_ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def stream_sizes(redis, total: int) -> bool:
    return await redis.xlen(streams.VALID) + await redis.xlen(streams.DLQ) >= total


def payloads_of(entries) -> list[dict]:
    return [json.loads(fields[b"payload"]) for _, fields in entries]


def malformed_entries() -> list[dict[str, bytes]]:
    """30 entries no event can come out of, each with the bytes the DLQ must give back."""
    entries: list[dict[str, bytes]] = []
    for i in range(6):
        entries.append({"payload": f"not json {i}".encode()})
        entries.append({"payload": b"\xff\xfe" + bytes([i])})
        entries.append({"data": f"no payload field {i}".encode()})
        entries.append({"payload": b'{"pad": "' + b"x" * 70_000 + b'", "n": ' + str(i).encode() + b"}"})
        entries.append({"payload": BAD_SCHEMA.replace(b"bad-schema", f"bad-schema-{i}".encode())})
    return entries


async def test_every_valid_event_once_every_malformed_entry_dead_lettered(
    redis_client, settings, pump_events, clinical_events
):
    unique = pump_events[:100] + clinical_events[:50]
    duplicates = [dict(e, readings={"Pressure": 1.0}) for e in pump_events[:10]] + clinical_events[:10]
    malformed = malformed_entries()
    entries = [{"payload": json.dumps(e).encode()} for e in unique + duplicates] + malformed
    entries = entries[::2] + entries[1::2]  # interleave kinds, keep each original before its duplicate
    assert len(entries) == 200
    for fields in entries[:100]:  # written before any worker exists
        await redis_client.xadd(streams.RAW, fields)

    async with running(create_app(settings)):
        for fields in entries[100:]:
            await redis_client.xadd(streams.RAW, fields)
        await wait_until(lambda: stream_sizes(redis_client, len(unique) + len(malformed)))
        await asyncio.sleep(0.3)  # anything extra (a duplicate slipping through) would show up by now

    valid = payloads_of(await redis_client.xrange(streams.VALID))
    assert Counter(v["event_id"] for v in valid) == Counter(e["event_id"] for e in unique)
    first_pump = next(v for v in valid if v["event_id"] == "pump-0000")
    assert first_pump["readings"] == pump_events[0]["readings"]
    letters = payloads_of(await redis_client.xrange(streams.DLQ))
    expected = sorted(f.get("payload", b"data=" + f.get("data", b"") + b"\n") for f in malformed)
    assert sorted(base64.b64decode(d["original_b64"]) for d in letters) == expected
    assert all(d["stage"] == "ingestion" and d["reason"] for d in letters)
    assert (await redis_client.xpending(streams.RAW, GROUP))["pending"] == 0
    assert 0 < await redis_client.ttl(dedupe_key("pump-0000")) <= 600


async def test_an_entry_left_pending_by_a_dead_worker_is_reclaimed(redis_client, settings, pump_events):
    await redis_client.xgroup_create(streams.RAW, GROUP, id="0", mkstream=True)
    await redis_client.xadd(streams.RAW, {"payload": json.dumps(pump_events[0])})
    await redis_client.xreadgroup(GROUP, "worker-that-died", {streams.RAW: ">"})
    async with running(create_app(settings)):
        await wait_until(lambda: stream_sizes(redis_client, 1))
    assert [v["event_id"] for v in payloads_of(await redis_client.xrange(streams.VALID))] == ["pump-0000"]
    assert (await redis_client.xpending(streams.RAW, GROUP))["pending"] == 0


async def test_http_events_take_the_one_stream_path(redis_client, settings, pump_events):
    body = json.dumps([pump_events[0], pump_events[0], dict(pump_events[1], ts="soon")])
    async with running(create_app(settings)) as client:
        response = await client.post("/events", content=body)
        await wait_until(lambda: stream_sizes(redis_client, 2))
    assert response.status_code == 202
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "accepted", "rejected"]
    assert [v["event_id"] for v in payloads_of(await redis_client.xrange(streams.VALID))] == ["pump-0000"]
    assert [d["stage"] for d in payloads_of(await redis_client.xrange(streams.DLQ))] == ["ingestion-http"]
    assert await redis_client.xlen(streams.RAW) == 2
    assert (await redis_client.xpending(streams.RAW, GROUP))["pending"] == 0
