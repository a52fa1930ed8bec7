"""The trainer app against a real Redis and a real S3 bucket: a real fine-tune, and a crash then resume."""

from __future__ import annotations

import asyncio
import json

import pytest
from streamtune_shared import streams
from streamtune_shared.schemas import TrainRequest
from streamtune_shared.storage import sha256_hex
from streamtune_shared.testing import wait_until
from streamtune_trainer.app import TrainerDeps, create_app
from streamtune_trainer.config import TrainerSettings
from streamtune_trainer.handlers import GROUP

DATASET = "clinical-notes"
# The MiniLM base with a fresh, untrained head scores an entity F1 of 0.02-0.04 on these splits
# (measured); a fine-tune that learned the task is far above this threshold.
MIN_ENTITY_F1 = 0.3


@pytest.fixture
def queue_tiny_run(redis_client, object_store, clinical_events, write_shards, tiny_base_model):
    """Store 120 notes and queue an NER run of the tiny base model on them (seconds per epoch)."""

    async def queue(**fields) -> TrainRequest:
        write_shards(object_store, DATASET, clinical_events[:120])
        request = TrainRequest(task="token-classification", dataset=DATASET, base_model=str(tiny_base_model),
                               learning_rate=1e-3, max_length=64, dev_fraction=0.2, test_fraction=0.2, **fields)
        await redis_client.xadd(streams.TRAIN_REQUESTS, {"payload": request.model_dump_json()})
        return request

    return queue


async def _messages(redis, stream: str) -> list[dict]:
    return [json.loads(fields[b"payload"]) for _, fields in await redis.xrange(stream)]


async def _pending(redis) -> int:
    return (await redis.xpending(streams.TRAIN_REQUESTS, GROUP))["pending"]


async def test_a_fine_tune_on_clinical_notes_publishes_a_version_that_learned_the_entities(
        redis_client, infra_settings, object_store, clinical_events, write_shards):
    write_shards(object_store, DATASET, clinical_events)
    request = TrainRequest(request_id="it-clinical-ner", model_name="clinical-ner", task="token-classification", dataset=DATASET,
                           base_model="minilm", epochs=3, batch_size=16, learning_rate=3e-4, max_length=128)
    await redis_client.xadd(streams.TRAIN_REQUESTS, {"payload": request.model_dump_json()})

    app = create_app(TrainerSettings(infra=infra_settings))
    async with app.start_lifespan_context():
        await wait_until(lambda: _has_entries(redis_client, streams.MODELS_PUBLISHED, 1), "the announcement", 1500)

    [announced] = await _messages(redis_client, streams.MODELS_PUBLISHED)
    card = json.loads(object_store.get_bytes(announced["card_key"]))
    assert card["metrics"]["dev"]["f1"] > MIN_ENTITY_F1
    assert card["metrics"]["test"]["f1"] > MIN_ENTITY_F1
    assert announced["metrics"]["test"]["f1"] == pytest.approx(card["metrics"]["test"]["f1"])
    assert "Disease" in card["metrics"]["test"]["report"]
    assert card["lineage"]["rows"]["train"] + card["lineage"]["rows"]["dev"] + card["lineage"]["rows"]["test"] == 400
    for name, digest in card["files"].items():
        assert sha256_hex(object_store.get_bytes(announced["prefix"] + name)) == digest

    states = [m["state"] for m in await _messages(redis_client, streams.TRAIN_STATUS)]
    assert states[0] == "accepted" and states[-1] == "published" and states.count("epoch_end") == 3
    assert "running" in states
    assert await _pending(redis_client) == 0
    assert object_store.list_keys(f"checkpoints/{request.request_id}/") == []


async def test_a_trainer_that_crashes_after_an_epoch_is_resumed_by_another_and_publishes_once(
        redis_client, infra_settings, object_store, queue_tiny_run):
    await queue_tiny_run(request_id="it-crash-ner", model_name="crash-ner", epochs=2, batch_size=16)

    def crash_after_first_epoch(epoch: int) -> None:
        if epoch == 1:
            raise RuntimeError("simulated crash after epoch 1")

    first = create_app(TrainerSettings(infra=infra_settings, claim_idle_ms=60_000),
                       TrainerDeps(consumer="trainer-a", after_epoch=crash_after_first_epoch))
    async with first.start_lifespan_context():
        await wait_until(lambda: _epoch_ended(redis_client, 1), "epoch 1", 300)
    assert await _pending(redis_client) == 1
    assert any(k.endswith("epoch-0001/trainer_state.json") for k in object_store.list_keys("checkpoints/"))

    second = create_app(TrainerSettings(infra=infra_settings, claim_idle_ms=1_000),
                        TrainerDeps(consumer="trainer-b"))
    async with second.start_lifespan_context():
        await wait_until(lambda: _has_entries(redis_client, streams.MODELS_PUBLISHED, 1), "the announcement", 300)
        await asyncio.sleep(3)  # time for a duplicate run or announcement to show up, if there were one

    published = await _messages(redis_client, streams.MODELS_PUBLISHED)
    assert len(published) == 1
    cards = [k for k in object_store.list_keys("models/crash-ner/") if k.endswith("/card.json")]
    assert cards == [published[0]["card_key"]]
    card = json.loads(object_store.get_bytes(cards[0]))
    assert card["training"]["resumed_from_epoch"] == 1
    assert [h["epoch"] for h in card["metrics"]["dev_by_epoch"]] == [1, 2]
    statuses = await _messages(redis_client, streams.TRAIN_STATUS)
    assert any(s.get("message") == "resumed from epoch 1" for s in statuses)
    assert [s["epoch"] for s in statuses if s["state"] == "epoch_end"] == [1, 2]
    assert await _pending(redis_client) == 0
    assert object_store.list_keys("checkpoints/") == []


async def test_a_live_run_heartbeats_so_an_idle_trainer_never_takes_it_over(
        redis_client, infra_settings, queue_tiny_run):
    await queue_tiny_run(request_id="it-busy-ner", model_name="busy-ner", epochs=8, batch_size=8,
                         early_stopping_patience=None)
    # Both trainers would reclaim anything idle for a second; the run lasts many seconds.
    settings = TrainerSettings(infra=infra_settings, claim_idle_ms=1_000)
    first = create_app(settings, TrainerDeps(consumer="trainer-a"))
    second = create_app(settings, TrainerDeps(consumer="trainer-b"))
    async with first.start_lifespan_context(), second.start_lifespan_context():
        await wait_until(lambda: _has_entries(redis_client, streams.MODELS_PUBLISHED, 1), "the announcement", 300)
        await asyncio.sleep(2)

    statuses = await _messages(redis_client, streams.TRAIN_STATUS)
    assert [s["state"] for s in statuses].count("accepted") == 1
    assert [s["epoch"] for s in statuses if s["state"] == "epoch_end"] == list(range(1, 9))
    assert await redis_client.xlen(streams.MODELS_PUBLISHED) == 1
    assert await redis_client.xlen(streams.DLQ) == 0
    assert await _pending(redis_client) == 0


async def test_shutdown_stops_a_running_training_and_leaves_the_request_for_another_trainer(
        redis_client, infra_settings, object_store, queue_tiny_run):
    request = await queue_tiny_run(request_id="it-stopped-ner", model_name="stopped-ner", epochs=100, batch_size=8,
                                   early_stopping_patience=None)

    app = create_app(TrainerSettings(infra=infra_settings))
    async with app.start_lifespan_context():
        await wait_until(lambda: _epoch_ended(redis_client, 1), "epoch 1", 300)
    statuses_at_stop = await redis_client.xlen(streams.TRAIN_STATUS)
    await asyncio.sleep(2)

    # The training thread stopped with the app: nothing more is reported, nothing is published.
    assert await redis_client.xlen(streams.TRAIN_STATUS) == statuses_at_stop
    assert await redis_client.xlen(streams.MODELS_PUBLISHED) == 0
    assert await _pending(redis_client) == 1
    assert any(k.endswith("/trainer_state.json") for k in object_store.list_keys(f"checkpoints/{request.request_id}/"))


async def _has_entries(redis, stream: str, count: int) -> bool:
    return await redis.xlen(stream) >= count


async def _epoch_ended(redis, epoch: int) -> bool:
    return any(m["state"] == "epoch_end" and m["epoch"] == epoch for m in await _messages(redis, streams.TRAIN_STATUS))
