"""Device statistics in a real Redis: two ingestion replicas on one group agree with one pass over the readings."""

from __future__ import annotations

import asyncio
import json
import statistics
from contextlib import AsyncExitStack

import httpx
import pytest
from streamtune_ingestion.app import create_app
from streamtune_ingestion.config import IngestionSettings
from streamtune_ingestion.device_stats import single
from streamtune_ingestion.stats_store import RedisDeviceStats
from streamtune_shared import streams

from .test_ingestion_redis import running, wait_until


@pytest.fixture
def settings(infra_settings) -> IngestionSettings:
    return IngestionSettings(infra=infra_settings, batch_size=16, block_ms=50, claim_idle_ms=300)


async def test_two_replicas_count_each_event_once_and_serve_the_statistics(redis_client, settings, pump_events):
    events = pump_events[:200]
    duplicates = events[:30]  # same event_id again: acknowledged, not counted
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(running(create_app(settings)))
        await stack.enter_async_context(running(create_app(settings)))
        for event in events + duplicates:
            await redis_client.xadd(streams.RAW, {"payload": json.dumps(event)})

        async def counted() -> bool:
            response = await client.get("/devices/pump-7/stats")
            return response.status_code == 200 and response.json()["sensors"]["Pressure"]["count"] == len(events)

        await wait_until(counted)
        await asyncio.sleep(0.3)  # a late duplicate would show up as a higher count by now
        body = (await client.get("/devices/pump-7/stats")).json()
        missing = await client.get("/devices/never-seen/stats")
    pressures = [e["readings"]["Pressure"] for e in events]
    stats = body["sensors"]["Pressure"]
    assert stats["count"] == len(events)
    assert stats["mean"] == pytest.approx(statistics.fmean(pressures), rel=1e-9)
    assert stats["variance"] == pytest.approx(statistics.variance(pressures), rel=1e-6)
    assert (stats["min"], stats["max"]) == (min(pressures), max(pressures))
    assert len(body["sensors"]) == 8
    assert missing.status_code == 404


async def test_concurrent_batch_merges_lose_no_update_and_keep_the_newest_ts(redis_client):
    store = RedisDeviceStats(redis_client)
    # 40 one-reading batches from concurrent callers, timestamps out of order.
    batches = [{("d1", "T"): single(float(i), float((i * 7) % 40))} for i in range(40)]
    await asyncio.gather(*(store.add(batch) for batch in batches))
    stats = (await store.read("d1"))["T"]
    assert stats.count == 40
    assert stats.mean == pytest.approx(19.5)
    assert stats.variance == pytest.approx(statistics.variance(range(40)))
    assert stats.last_ts == 39.0


async def test_the_endpoint_answers_503_when_statistics_are_off(redis_client, infra_settings):
    settings = IngestionSettings(infra=infra_settings, device_stats=False)
    async with running(create_app(settings)) as client:
        response: httpx.Response = await client.get("/devices/pump-7/stats")
    assert response.status_code == 503
