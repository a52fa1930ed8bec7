"""Augmentation + FGM through the real trainer on real Redis + S3, and the version's report fetched over HTTP."""

from __future__ import annotations

import io
import json

import httpx
from PIL import Image
from streamtune_shared import streams
from streamtune_shared.adaptation import AdversarialOptions, AugmentationOptions
from streamtune_shared.schemas import TrainRequest
from streamtune_shared.storage import sha256_hex
from streamtune_shared.testing import wait_until
from streamtune_trainer.app import create_app
from streamtune_trainer.config import TrainerSettings

DATASET = "clinical-notes"


async def _messages(redis, stream: str) -> list[dict]:
    return [json.loads(fields[b"payload"]) for _, fields in await redis.xrange(stream)]


async def test_an_augmented_adversarial_run_publishes_a_version_whose_report_is_served_over_http(
        redis_client, infra_settings, object_store, clinical_events, write_shards, tiny_base_model):
    write_shards(object_store, DATASET, clinical_events[:120])
    augmentation = AugmentationOptions(copies=1, mention_replacement=0.5, token_mask=0.1)
    adversarial = AdversarialOptions(method="fgm", epsilon=0.5)
    request = TrainRequest(request_id="it-report-ner", model_name="report-ner", task="token-classification",
                           dataset=DATASET, base_model=str(tiny_base_model), epochs=2, batch_size=16,
                           learning_rate=1e-3, max_length=64, dev_fraction=0.2, test_fraction=0.2,
                           early_stopping_patience=None, augmentation=augmentation, adversarial=adversarial)
    await redis_client.xadd(streams.TRAIN_REQUESTS, {"payload": request.model_dump_json()})

    app = create_app(TrainerSettings(infra=infra_settings))
    async with app.start_lifespan_context(), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://trainer") as http:
        async def announced() -> bool:
            return await redis_client.xlen(streams.MODELS_PUBLISHED) == 1
        await wait_until(announced, "the announcement", 300)
        [message] = await _messages(redis_client, streams.MODELS_PUBLISHED)
        version = message["version"]
        report = await http.get(f"/models/report-ner/{version}/report")
        png = await http.get(f"/models/report-ner/{version}/report.png")
        unknown = await http.get("/models/report-ner/20260101T000000Z-nothere/report")
        health = await http.get("/healthz")

    card = json.loads(object_store.get_bytes(message["card_key"]))
    assert {"report.json", "report.png"} <= set(card["files"])
    for name in ("report.json", "report.png"):
        assert sha256_hex(object_store.get_bytes(message["prefix"] + name)) == card["files"][name]
    train_rows = card["lineage"]["rows"]["train"]
    assert [h["train_samples"] for h in card["metrics"]["dev_by_epoch"]] == [2 * train_rows] * 2  # one copy each
    assert card["hyperparameters"]["augmentation"] == augmentation.model_dump(mode="json")
    assert card["hyperparameters"]["adversarial"] == adversarial.model_dump(mode="json")

    assert report.status_code == 200 and png.status_code == 200 and health.status_code == 200
    body = report.json()
    assert body["version"] == version and body["best_epoch"] == card["metrics"]["best_epoch"]
    assert [row["epoch"] for row in body["epochs"]] == [1, 2]
    assert all(row["adversarial_loss"] > 0 and "dev_f1" in row and "dev_loss" in row for row in body["epochs"])
    assert "Disease" in body["classification_report"]["test"]
    assert body["regularization"]["augmentation"]["copies"] == 1
    assert body["regularization"]["adversarial"]["method"] == "fgm"
    assert png.headers["content-type"] == "image/png" and Image.open(io.BytesIO(png.content)).format == "PNG"
    assert unknown.status_code == 404

    ends = [s for s in await _messages(redis_client, streams.TRAIN_STATUS) if s["state"] == "epoch_end"]
    assert len(ends) == 2
    assert all(s["metrics"]["augmentation"]["copies"] == 1 and s["metrics"]["adversarial"]["method"] == "fgm"
               for s in ends)


async def test_adversarial_training_with_dp_is_rejected_on_train_status(redis_client, infra_settings):
    refused = {"request_id": "it-adv-dp", "model_name": "adv-dp", "task": "token-classification", "dataset": DATASET,
               "adversarial": {}, "dp": {"target_epsilon": 8}}  # TrainRequest itself refuses it
    await redis_client.xadd(streams.TRAIN_REQUESTS, {"payload": json.dumps(refused)})
    async with create_app(TrainerSettings(infra=infra_settings)).start_lifespan_context():
        async def failed() -> bool:
            return any(s["state"] == "failed" for s in await _messages(redis_client, streams.TRAIN_STATUS))
        await wait_until(failed, "the rejection", 60)
    [status] = [s for s in await _messages(redis_client, streams.TRAIN_STATUS) if s["state"] == "failed"]
    assert "cannot be combined with dp" in status["message"]
    assert await redis_client.xlen(streams.MODELS_PUBLISHED) == 0
