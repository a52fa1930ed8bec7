"""Hyper-parameter search against a real Redis (the Optuna study) and a real S3 bucket (trials, the version)."""

from __future__ import annotations

import json

from streamtune_shared import streams
from streamtune_shared.schemas import TrainRequest
from streamtune_shared.testing import wait_until
from streamtune_trainer.app import TrainerDeps, create_app
from streamtune_trainer.config import TrainerSettings
from streamtune_trainer.handlers import GROUP
from streamtune_trainer.search import storage_prefix

DATASET = "clinical-notes"
SPACE = {"learning_rate": {"low": 3e-4, "high": 1e-2, "log": True}, "weight_decay": {"choices": [0.0, 0.01]}}


async def _queue_search(redis_client, object_store, clinical_events, write_shards, tiny_base_model,
                        **fields) -> TrainRequest:
    write_shards(object_store, DATASET, clinical_events[:120])
    request = TrainRequest(task="token-classification", dataset=DATASET, base_model=str(tiny_base_model),
                           max_length=64, dev_fraction=0.2, test_fraction=0.2, epochs=2, batch_size=16,
                           early_stopping_patience=None, **fields)
    await redis_client.xadd(streams.TRAIN_REQUESTS, {"payload": request.model_dump_json()})
    return request


async def _messages(redis, stream: str) -> list[dict]:
    return [json.loads(fields[b"payload"]) for _, fields in await redis.xrange(stream)]


async def _published(redis, count: int) -> bool:
    return await redis.xlen(streams.MODELS_PUBLISHED) >= count


def _trial_epochs(statuses: list[dict]) -> list[tuple[int, int]]:
    """(trial number, epoch) of every epoch_end status."""
    return [(s["metrics"]["trial"]["number"], s["epoch"]) for s in statuses if s["state"] == "epoch_end"]


async def test_a_three_trial_search_publishes_one_version_whose_card_lists_the_three_trials(
        redis_client, infra_settings, object_store, clinical_events, write_shards, tiny_base_model):
    request = await _queue_search(redis_client, object_store, clinical_events, write_shards, tiny_base_model,
                                  request_id="it-search", model_name="search-ner",
                                  search={"space": SPACE, "trials": 3})

    app = create_app(TrainerSettings(infra=infra_settings))
    async with app.start_lifespan_context():
        await wait_until(lambda: _published(redis_client, 1), "the announcement", 600)

    [announced] = await _messages(redis_client, streams.MODELS_PUBLISHED)
    cards = [k for k in object_store.list_keys("models/search-ner/") if k.endswith("/card.json")]
    assert cards == [announced["card_key"]]
    card = json.loads(object_store.get_bytes(announced["card_key"]))
    trials = card["search"]["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2]
    assert all(t["state"] in ("complete", "pruned") and set(t["params"]) == set(SPACE) for t in trials)
    best = trials[card["search"]["best_trial"]]
    assert best["state"] == "complete"
    assert best["value"] == max(t["value"] for t in trials if t["state"] == "complete")
    assert card["metrics"]["dev"]["f1"] == best["value"]
    assert card["hyperparameters"]["learning_rate"] == best["params"]["learning_rate"]
    assert card["request_id"] == request.request_id

    statuses = await _messages(redis_client, streams.TRAIN_STATUS)
    assert {number for number, _ in _trial_epochs(statuses)} == {0, 1, 2}
    assert statuses[-1]["state"] == "published"
    # Nothing of the search is left: no trial checkpoints or kept versions, no study in Redis.
    assert object_store.list_keys("checkpoints/") == []
    assert [k async for k in redis_client.scan_iter(match=f"{storage_prefix(request.request_id)}:*")] == []
    assert (await redis_client.xpending(streams.TRAIN_REQUESTS, GROUP))["pending"] == 0


async def test_a_search_taken_over_after_a_crash_continues_the_study_without_repeating_finished_trials(
        redis_client, infra_settings, object_store, clinical_events, write_shards, tiny_base_model):
    await _queue_search(redis_client, object_store, clinical_events, write_shards, tiny_base_model,
                        request_id="it-search-crash", model_name="crash-search",
                        search={"space": SPACE, "trials": 3, "pruning": False})
    epochs_seen: list[int] = []

    def crash_in_the_second_trial(epoch: int) -> None:
        epochs_seen.append(epoch)
        if len(epochs_seen) == 3:  # trial 0 ran epochs 1 and 2; trial 1 dies after its first epoch
            raise RuntimeError("simulated crash in trial 1")

    first = create_app(TrainerSettings(infra=infra_settings, claim_idle_ms=60_000),
                       TrainerDeps(consumer="trainer-a", after_epoch=crash_in_the_second_trial))
    async with first.start_lifespan_context():
        await wait_until(lambda: _pending_on(redis_client, "trainer-a", len(epochs_seen) >= 3), "the crash", 300)
    crashed = await _messages(redis_client, streams.TRAIN_STATUS)

    second = create_app(TrainerSettings(infra=infra_settings, claim_idle_ms=1_000), TrainerDeps(consumer="trainer-b"))
    async with second.start_lifespan_context():
        await wait_until(lambda: _published(redis_client, 1), "the announcement", 600)

    statuses = await _messages(redis_client, streams.TRAIN_STATUS)
    resumed = statuses[len(crashed):]
    assert _trial_epochs(crashed) == [(0, 1), (0, 2), (1, 1)]
    # Trial 0 finished before the crash: the second trainer does not train it again.
    assert 0 not in {number for number, _ in _trial_epochs(resumed)}
    [announced] = await _messages(redis_client, streams.MODELS_PUBLISHED)
    card = json.loads(object_store.get_bytes(announced["card_key"]))
    trials = card["search"]["trials"]
    assert [t["state"] for t in trials].count("fail") == 1 and trials[1]["state"] == "fail"
    assert sum(t["state"] in ("complete", "pruned") for t in trials) == 3 and len(trials) == 4
    # The crashed trial's values are tried again, resuming from the checkpoint of its first epoch.
    retried = [t for t in trials[2:] if t["params"] == trials[1]["params"]]
    assert len(retried) == 1
    assert any("resumed from epoch 1" in (s.get("message") or "") for s in resumed)
    assert (await redis_client.xpending(streams.TRAIN_REQUESTS, GROUP))["pending"] == 0


async def _pending_on(redis, consumer: str, crashed: bool) -> bool:
    """The crash happened and the request is still pending on the crashed consumer."""
    if not crashed:
        return False
    pending = await redis.xpending_range(streams.TRAIN_REQUESTS, GROUP, min="-", max="+", count=10)
    return [p["consumer"] for p in pending] == [consumer.encode()]


async def test_a_search_for_an_unknown_metric_fails_with_its_reason_and_is_acknowledged(
        redis_client, infra_settings, object_store, clinical_events, write_shards, tiny_base_model):
    await _queue_search(redis_client, object_store, clinical_events, write_shards, tiny_base_model,
                        request_id="it-search-bleu", model_name="bleu-search",
                        search={"space": SPACE, "trials": 2, "metric": "dev_bleu"})

    app = create_app(TrainerSettings(infra=infra_settings))
    async with app.start_lifespan_context():
        await wait_until(lambda: _failed(redis_client), "the failed status", 120)

    [failed] = [s for s in await _messages(redis_client, streams.TRAIN_STATUS) if s["state"] == "failed"]
    assert "unknown search metric 'dev_bleu'" in failed["message"] and "dev_f1" in failed["message"]
    assert await redis_client.xlen(streams.MODELS_PUBLISHED) == 0
    assert (await redis_client.xpending(streams.TRAIN_REQUESTS, GROUP))["pending"] == 0


async def _failed(redis) -> bool:
    return any(s["state"] == "failed" for s in await _messages(redis, streams.TRAIN_STATUS))
