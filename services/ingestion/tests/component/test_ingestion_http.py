"""POST /events against the whole app with an in-memory bus: status codes, per-item errors, what is written where."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

import httpx
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.asyncio import Redis
from streamtune_ingestion.app import IngestionDeps, create_app, is_ready
from streamtune_shared.service import ServiceRuntime
from streamtune_shared import streams
from streamtune_shared.testing import InMemoryBus


class UnreachableBus(InMemoryBus):
    """A bus whose Redis is down."""

    async def publish_bytes(self, stream, payload) -> str:  # publish() goes through it too
        raise RedisConnectionError("connection refused")


def client_for(settings, bus: InMemoryBus, now) -> httpx.AsyncClient:
    app = create_app(settings, IngestionDeps(bus=bus, clock=lambda: now))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingestion")


async def post(settings, bus: InMemoryBus, now, body: bytes) -> httpx.Response:
    async with client_for(settings, bus, now) as client:
        return await client.post("/events", content=body, headers={"content-type": "application/json"})


def as_array(items: Sequence[bytes]) -> bytes:
    return b"[" + b",\n".join(items) + b"]"


async def test_a_mixed_array_is_accepted_with_an_error_per_bad_item(settings, now, pump_events):
    bus = InMemoryBus()
    good = json.dumps(pump_events[0]).encode()
    bad_ts = json.dumps(dict(pump_events[1], ts="2026-01-01T00:00:00")).encode()
    bad_reading = json.dumps(dict(pump_events[2], readings={"temp": "hot"})).encode()
    response = await post(settings, bus, now, as_array([good, bad_ts, bad_reading]))
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 2)
    assert body["results"][0] == {"index": 0, "event_id": "pump-0000", "status": "accepted", "errors": []}
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected", "rejected"]
    assert [e["field"] for e in body["results"][1]["errors"]] == ["ts"]
    assert body["results"][2]["errors"] == [{"field": "readings.temp", "message": "must be a number or null"}]
    assert body["results"][2]["event_id"] == "pump-0002"
    assert bus.streams[streams.RAW] == [good]  # the producer's bytes, for the stream consumer to dedupe and forward
    letters = bus.messages(streams.DLQ)
    assert [base64.b64decode(d["original_b64"]) for d in letters] == [bad_ts, bad_reading]
    assert all(d["stage"] == "ingestion-http" and d["entry_id"] is None and d["source_stream"] is None
               for d in letters)


async def test_a_single_object_is_accepted(settings, now, clinical_events):
    bus = InMemoryBus()
    response = await post(settings, bus, now, json.dumps(clinical_events[0]).encode())
    assert response.status_code == 202
    assert response.json()["results"] == [{"index": 0, "event_id": "note-0000", "status": "accepted", "errors": []}]
    assert json.loads(bus.streams[streams.RAW][0]) == clinical_events[0]


async def test_items_are_judged_like_stream_entries(settings, now, pump_events):
    bus = InMemoryBus()
    duplicate_key = b'{"event_id": "x", "event_id": "y"}'
    future = json.dumps(dict(pump_events[0], ts=now.replace(year=now.year + 1).isoformat())).encode()
    version = json.dumps(dict(pump_events[1], schema_version=7)).encode()
    response = await post(settings, bus, now, as_array([duplicate_key, future, version, b"[]"]))
    assert response.status_code == 422
    results = response.json()["results"]
    assert [[e["field"] for e in r["errors"]] for r in results] == [["event_id"], ["ts"], ["schema_version"],
                                                                    ["payload"]]
    assert results[2]["errors"][0]["message"] == "unsupported schema_version 7 (supported: 1)"
    assert bus.streams[streams.RAW] == []
    assert len(bus.streams[streams.DLQ]) == 4


async def test_a_body_that_is_not_json_is_a_400_and_dead_lettered(settings, now):
    bus = InMemoryBus()
    response = await post(settings, bus, now, b"temp=21.5&device=pump-7")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "body"
    (letter,) = bus.messages(streams.DLQ)
    assert letter["original"] == "temp=21.5&device=pump-7" and letter["stage"] == "ingestion-http"
    assert "not JSON" in letter["reason"]


async def test_an_empty_array_accepts_nothing(settings, now):
    response = await post(settings, InMemoryBus(), now, b"[]")
    assert response.status_code == 422
    assert response.json() == {"accepted": 0, "rejected": 0, "results": [], "errors": []}


async def test_too_many_items_is_a_413_and_writes_nothing(settings, now, pump_events):
    bus = InMemoryBus()
    items = [json.dumps(e).encode() for e in pump_events[: settings.http_max_items + 1]]
    response = await post(settings, bus, now, as_array(items))
    assert response.status_code == 413
    assert f"more than {settings.http_max_items} events" in response.json()["errors"][0]["message"]
    assert not bus.streams[streams.RAW] and not bus.streams[streams.DLQ]


async def test_a_body_over_the_size_limit_is_a_413(settings, now):
    bus = InMemoryBus()
    response = await post(settings, bus, now, b" " * (settings.http_max_body_bytes + 1))
    assert response.status_code == 413
    assert not bus.streams[streams.RAW] and not bus.streams[streams.DLQ]


async def test_a_chunked_body_over_the_size_limit_is_a_413(settings, now):
    async def chunks():
        for _ in range(settings.http_max_body_bytes // 1024 + 2):
            yield b" " * 1024

    async with client_for(settings, InMemoryBus(), now) as client:
        response = await client.post("/events", content=chunks())
    assert response.status_code == 413


async def test_an_unreachable_bus_is_a_503_to_retry(settings, now, pump_events):
    for body in (json.dumps(pump_events[0]).encode(), b"not json"):
        response = await post(settings, UnreachableBus(), now, body)
        assert response.status_code == 503, body
        assert response.headers["retry-after"] == "1"


async def test_probes_and_metrics_are_served(settings, now, pump_events):
    bus = InMemoryBus()
    accepted = 'streamtune_ingestion_http_items_total{status="accepted"}'
    rejected = 'streamtune_ingestion_rejections_total{code="schema_version",source="http"}'
    async with client_for(settings, bus, now) as client:
        before = _samples((await client.get("/metrics")).text)
    await post(settings, bus, now, as_array([json.dumps(pump_events[0]).encode(), b"{}"]))
    async with client_for(settings, bus, now) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 503  # lifespan not run: not started
        after = _samples((await client.get("/metrics")).text)
    # The registry is process-wide: this request's own counts are the differences.
    assert after[accepted] - before.get(accepted, 0.0) == 1
    assert after[rejected] - before.get(rejected, 0.0) == 1


def _samples(exposition: str) -> dict[str, float]:
    return {name: float(value) for name, _, value in
            (line.rpartition(" ") for line in exposition.splitlines() if line and not line.startswith("#"))}


async def test_readiness_needs_redis_to_answer(settings):
    runtime = ServiceRuntime(settings.infra, name="ingestion")
    assert await is_ready(runtime) is False  # not started
    runtime.started = True
    runtime.redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        assert await is_ready(runtime) is False
    finally:
        await runtime.redis.aclose()
