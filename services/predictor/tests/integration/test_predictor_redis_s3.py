"""The predictor app for real on Redis and S3: waiting for a first model, hot reload under load, refusal."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from prometheus_client import REGISTRY
from streamtune_predictor.app import create_app
from streamtune_predictor.config import PredictorSettings
from streamtune_shared import streams
from streamtune_shared.testing import wait_until

V1, V2, V3 = "20261128T120000Z-aaaa1111", "20261129T120000Z-bbbb2222", "20261130T120000Z-cccc3333"
TEXT = "Germline mutations in the adenomatous polyposis coli gene ."


@pytest.fixture
def settings(infra_settings) -> PredictorSettings:
    return PredictorSettings(infra=infra_settings, models={"clinical-notes": "disease-ner"}, batch_size=16,
                             max_wait_ms=20, claim_idle_ms=900, rescan_s=1.0, announce_block_ms=100)


@pytest.fixture
def store(object_store):
    yield object_store
    for key in object_store.list_keys(""):
        object_store.delete(key)


async def _predictions(redis) -> list[dict]:
    return [json.loads(fields[b"payload"]) for _, fields in await redis.xrange(streams.PREDICTIONS)]


async def _add_events(redis, make_event, ids: list[str]) -> None:
    pipe = redis.pipeline(transaction=False)
    for event_id in ids:
        pipe.xadd(streams.CLEAN, {"payload": make_event(event_id, TEXT)})
    await pipe.execute()


async def _announce(redis, store, publish, folder, version: str, **kwargs) -> None:
    announcement = await asyncio.to_thread(publish, store, folder, "disease-ner", version, **kwargs)
    await redis.xadd(streams.MODELS_PUBLISHED, {"payload": announcement.model_dump_json()})


def _rejected() -> float:
    return REGISTRY.get_sample_value("streamtune_predictor_reloads_total", {"outcome": "rejected"}) or 0.0


async def test_events_wait_for_the_first_model_without_new_deliveries(
        redis_client, settings, store, model_folder, publish, make_event):
    folder = await asyncio.to_thread(model_folder, "ner-span")
    app = create_app(settings)
    async with app.start_lifespan_context(), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://predictor") as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 503
        assert (await http.post("/predict", json={"dataset": "clinical-notes", "text": TEXT})).status_code == 503
        ids = [f"held-{i}" for i in range(10)]
        await _add_events(redis_client, make_event, ids)
        await wait_until(lambda: _pending_count(redis_client, 10), "the batch to be read")
        await asyncio.sleep(2.5)  # well past claim_idle_ms: only touch keeps the reclaimer away
        pending = await redis_client.xpending_range(streams.CLEAN, "predictor", min="-", max="+", count=100)
        assert len(pending) == 10 and {p["times_delivered"] for p in pending} == {1}
        assert await redis_client.xlen(streams.PREDICTIONS) == 0

        await _announce(redis_client, store, publish, folder, V1)
        await wait_until(lambda: _count(redis_client, 10), "predictions of the held events")
        assert (await http.get("/readyz")).status_code == 200
    predictions = await _predictions(redis_client)
    assert sorted(p["event_id"] for p in predictions) == sorted(ids)
    assert {p["version"] for p in predictions} == {V1}
    assert (await redis_client.xpending(streams.CLEAN, "predictor"))["pending"] == 0


async def test_hot_reload_under_load_drops_and_duplicates_nothing(
        redis_client, settings, store, model_folder, publish, make_event):
    span_folder = await asyncio.to_thread(model_folder, "ner-span")
    none_folder = await asyncio.to_thread(model_folder, "ner-none")
    await asyncio.to_thread(publish, store, span_folder, "disease-ner", V1)
    app = create_app(settings)
    async with app.start_lifespan_context(), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://predictor") as http:
        await wait_until(lambda: _ready(http), "v1 to load at startup")
        sent = [f"first-{i}" for i in range(20)]
        await _add_events(redis_client, make_event, sent)
        await wait_until(lambda: _count(redis_client, 20), "predictions by v1")
        assert {p["version"] for p in await _predictions(redis_client)} == {V1}

        stop = asyncio.Event()

        async def produce() -> None:
            while not stop.is_set():
                sent.append(f"live-{len(sent)}")
                await _add_events(redis_client, make_event, sent[-1:])
                await asyncio.sleep(0.03)

        producer = asyncio.create_task(produce())
        await _announce(redis_client, store, publish, none_folder, V2)
        await wait_until(lambda: _some_version(redis_client, V2), "a prediction by v2")
        await asyncio.sleep(0.3)
        stop.set()
        await producer
        await wait_until(lambda: _count(redis_client, len(sent)), "a prediction for every event")

        rejected_before = _rejected()
        await _announce(redis_client, store, publish, span_folder, V3, tamper="model.safetensors")
        await wait_until(lambda: _metric_above(rejected_before), "v3 to be refused")
        await _add_events(redis_client, make_event, ["after-v3"])
        sent.append("after-v3")
        await wait_until(lambda: _count(redis_client, len(sent)), "the prediction after v3")
        answer = await http.post("/predict", json={"model": "disease-ner", "texts": [TEXT, "colon cancer"]})
        assert answer.status_code == 200 and answer.json()["version"] == V2

    predictions = await _predictions(redis_client)
    assert sorted(p["event_id"] for p in predictions) == sorted(sent)  # exactly one each
    versions = [p["version"] for p in predictions]
    switch = versions.index(V2)
    assert set(versions[:switch]) == {V1} and set(versions[switch:]) == {V2}
    assert any(v == V1 for v in versions[20:]), "the swap should happen while events keep coming"
    assert predictions[-1]["event_id"] == "after-v3" and predictions[-1]["outputs"]["entities"] == []
    assert (await redis_client.xpending(streams.CLEAN, "predictor"))["pending"] == 0
    assert await redis_client.xlen(streams.DLQ) == 0


async def _pending_count(redis, n: int) -> bool:
    try:
        return (await redis.xpending(streams.CLEAN, "predictor"))["pending"] >= n
    except Exception:  # noqa: BLE001 - group not created yet
        return False


async def _count(redis, n: int) -> bool:
    return await redis.xlen(streams.PREDICTIONS) >= n


async def _some_version(redis, version: str) -> bool:
    return any(p["version"] == version for p in await _predictions(redis))


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


async def _metric_above(value: float) -> bool:
    return _rejected() > value
