"""Domain-adaptive pretraining through the trainer app, against a real Redis and a real S3 bucket."""

from __future__ import annotations

import json

from streamtune_shared import streams
from streamtune_shared.schemas import TrainRequest
from streamtune_shared.testing import wait_until
from streamtune_trainer.app import create_app
from streamtune_trainer.config import TrainerSettings

DATASET = "clinical-notes"


async def test_a_dapt_request_publishes_the_adapted_base_then_announces_only_the_fine_tune_trained_from_it(
        redis_client, infra_settings, object_store, clinical_events, write_shards, tiny_base_model):
    write_shards(object_store, DATASET, clinical_events[:120])
    request = TrainRequest(request_id="it-dapt", model_name="dapt-ner", task="token-classification", dataset=DATASET,
                           base_model=str(tiny_base_model), max_length=64, dev_fraction=0.2, test_fraction=0.2,
                           epochs=1, learning_rate=1e-3, dapt={"epochs": 1, "learning_rate": 1e-2})
    await redis_client.xadd(streams.TRAIN_REQUESTS, {"payload": request.model_dump_json()})

    app = create_app(TrainerSettings(infra=infra_settings))
    async with app.start_lifespan_context():
        await wait_until(lambda: _published(redis_client), "the announcement", 600)

    [announced] = [json.loads(f[b"payload"]) for _, f in await redis_client.xrange(streams.MODELS_PUBLISHED)]
    assert announced["model_name"] == "dapt-ner"  # the adapted base is a version, but never announced
    [base_card_key] = [k for k in object_store.list_keys("models/dapt-ner-dapt/") if k.endswith("/card.json")]
    base_card = json.loads(object_store.get_bytes(base_card_key))
    assert base_card["task"] == "fill-mask" and base_card["base_model"] == str(tiny_base_model)
    assert base_card["metrics"]["dev"]["loss"] < base_card["metrics"]["dev"]["loss_before"]
    card = json.loads(object_store.get_bytes(announced["card_key"]))
    assert card["base_model"] == f"dapt-ner-dapt/{base_card['version']}"
    assert card["metrics"]["dev_by_epoch"] and "f1" in card["metrics"]["test"]
    statuses = [json.loads(f[b"payload"]) for _, f in await redis_client.xrange(streams.TRAIN_STATUS)]
    assert any((s.get("message") or "").startswith("domain-adapted base published") for s in statuses)
    assert statuses[-1]["state"] == "published"


async def _published(redis) -> bool:
    return await redis.xlen(streams.MODELS_PUBLISHED) >= 1
