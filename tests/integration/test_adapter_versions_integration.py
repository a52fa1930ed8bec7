"""A LoRA version, end to end on real Redis and S3: the trainer publishes adapter + head + a pinned base
reference (small in the object store), and the predictor serves it merged, with the unmerged model's outputs."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from streamtune_predictor.app import create_app as create_predictor
from streamtune_predictor.config import PredictorSettings
from streamtune_predictor.inference import TextModel
from streamtune_predictor.loading import load_version
from streamtune_shared import streams
from streamtune_shared.hf_loading import file_sha256, load_base_model
from streamtune_shared.model_card import VersionRejected
from streamtune_shared.model_registry import RegistryLayout, download_verified, fetch_card
from streamtune_shared.schemas import TrainRequest
from streamtune_shared.testing import wait_until
from streamtune_trainer.app import create_app as create_trainer
from streamtune_anonymizer.detection.transformer_model import TransformerEntityModel
from streamtune_anonymizer.pii_model import load_pii_version
from streamtune_trainer.config import TrainerSettings

DATASET = "clinical-notes"
MODEL = "disease-ner-lora"
TEXTS = ["Identification of APC2 , a homologue of the adenomatous polyposis coli tumour suppressor .",
         "Germline mutations in the adenomatous polyposis coli gene .", "no findings today"]


def clean_event(event_id: str, text: str, dataset: str) -> bytes:
    """The JSON bytes of a CleanEvent with a text."""
    now = datetime.now(UTC).isoformat()
    return json.dumps({"schema_version": 1, "event_id": event_id, "device_id": "dev-pseudonym", "dataset": dataset,
                       "ts": now, "readings": {}, "text": text, "label": None, "meta": {}, "notes": [],
                       "ingested_at": now, "redactions": {}, "anonymized_at": now}).encode()


async def _messages(redis, stream: str) -> list[dict]:
    return [json.loads(fields[b"payload"]) for _, fields in await redis.xrange(stream)]


async def _count(redis, stream: str, n: int) -> bool:
    return await redis.xlen(stream) >= n


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


async def _train_lora_version(redis_client, infra_settings, base_uri: str) -> dict:
    return await _train(redis_client, infra_settings, base_model=base_uri, method="lora",
                        lora={"r": 4, "target_modules": ["query", "value"]}, learning_rate=5e-3)


async def _train(redis_client, infra_settings, **fields) -> dict:
    """Queue one run of 3 epochs on the stored notes, run a trainer until it is published; the announcement."""
    request = TrainRequest(request_id=f"it-{fields['method']}-ner", model_name=MODEL, task="token-classification",
                           dataset=DATASET, epochs=3, batch_size=16, max_length=64, dev_fraction=0.2,
                           test_fraction=0.2, early_stopping_patience=None, **fields)
    await redis_client.xadd(streams.TRAIN_REQUESTS, {"payload": request.model_dump_json()})
    async with create_trainer(TrainerSettings(infra=infra_settings)).start_lifespan_context():
        await wait_until(lambda: _count(redis_client, streams.MODELS_PUBLISHED, 1), "the announcement", 300)
    [announced] = await _messages(redis_client, streams.MODELS_PUBLISHED)
    return announced


def _unmerged_outputs(store, card, base: Path, tmp: Path) -> list:
    """What the adapter predicts applied by peft without merging, on the local copy of the base."""
    from peft import PeftModel

    download_verified(store, RegistryLayout(), card, tmp)
    labels = json.loads((tmp / "labels.json").read_text())["id2label"]
    id2label = {int(i): label for i, label in labels.items()}
    model = PeftModel.from_pretrained(load_base_model(base, card.task, id2label, None), tmp)
    from transformers import AutoTokenizer

    text_model = TextModel(model, AutoTokenizer.from_pretrained(tmp), task=card.task, id2label=id2label,
                           max_length=64, batch_size=8)
    return text_model.predict(TEXTS)


async def test_a_lora_version_is_published_small_and_served_merged_by_the_predictor(
        redis_client, infra_settings, object_store, tiny_bert_folder, upload_folder, write_notes, tmp_path):
    write_notes(object_store, DATASET, 120)
    upload_folder(object_store, tiny_bert_folder, "bases/tiny-bert/")
    base_uri = f"s3://{infra_settings.s3_bucket}/bases/tiny-bert/"
    announced = await _train_lora_version(redis_client, infra_settings, base_uri)

    card = fetch_card(object_store, RegistryLayout(), MODEL, announced["version"])
    assert card.adapter is not None and card.adapter.method == "lora" and card.adapter.base == base_uri
    assert card.adapter.base_sha256 == file_sha256(tiny_bert_folder / "model.safetensors")
    assert card.adapter.trainable_parameters < card.adapter.total_parameters / 10
    assert "model.safetensors" not in card.files and "adapter_model.safetensors" in card.files
    version_bytes = sum(len(object_store.get_bytes(announced["prefix"] + name)) for name in card.files)
    assert version_bytes < (tiny_bert_folder / "model.safetensors").stat().st_size / 2
    losses = [epoch["train_loss"] for epoch in card.metrics.dev_by_epoch]
    assert len(losses) == 3 and losses[-1] < losses[0]

    served = await asyncio.to_thread(load_version, object_store, RegistryLayout(), MODEL, card.version,
                                     max_length=64, batch_size=8)
    reference = await asyncio.to_thread(_unmerged_outputs, object_store, card, tiny_bert_folder, tmp_path)
    for got, expected in zip(served.predict(TEXTS), reference, strict=True):
        assert [(e.start, e.end, e.label) for e in got.entities] == [(e.start, e.end, e.label) for e in expected.entities]
        assert [e.score for e in got.entities] == pytest.approx([e.score for e in expected.entities], abs=1e-4)

    settings = PredictorSettings(infra=infra_settings, models={DATASET: MODEL}, batch_size=8, max_wait_ms=20,
                                 rescan_s=1.0, announce_block_ms=100)
    app = create_predictor(settings)
    async with app.start_lifespan_context(), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://predictor") as http:
        await wait_until(lambda: _ready(http), "the LoRA version to load", 120)
        for i, text in enumerate(TEXTS):
            await redis_client.xadd(streams.CLEAN, {"payload": clean_event(f"lora-{i}", text, DATASET)})
        await wait_until(lambda: _count(redis_client, streams.PREDICTIONS, len(TEXTS)), "the predictions", 120)
    predictions = await _messages(redis_client, streams.PREDICTIONS)
    assert sorted(p["event_id"] for p in predictions) == [f"lora-{i}" for i in range(len(TEXTS))]
    assert {(p["model"], p["version"]) for p in predictions} == {(MODEL, card.version)}


async def test_an_adapter_whose_base_changed_is_refused(
        redis_client, infra_settings, object_store, tiny_bert_folder, upload_folder, write_notes):
    write_notes(object_store, DATASET, 120)
    upload_folder(object_store, tiny_bert_folder, "bases/tiny-bert/")
    announced = await _train_lora_version(redis_client, infra_settings,
                                          f"s3://{infra_settings.s3_bucket}/bases/tiny-bert/")
    weights = bytearray(object_store.get_bytes("bases/tiny-bert/model.safetensors"))
    weights[-1] ^= 0x01
    object_store.put_bytes("bases/tiny-bert/model.safetensors", bytes(weights))
    with pytest.raises(VersionRejected, match="not the one the adapter was trained on"):
        await asyncio.to_thread(load_version, object_store, RegistryLayout(), MODEL, announced["version"],
                                max_length=64, batch_size=8)


async def test_the_anonymizer_serves_a_lora_pii_version_merged_and_refuses_a_prompt_tuned_one(
        redis_client, infra_settings, object_store, tiny_bert_folder, write_notes):
    write_notes(object_store, DATASET, 120)
    announced = await _train_lora_version(redis_client, infra_settings, str(tiny_bert_folder))
    served = await asyncio.to_thread(load_version, object_store, RegistryLayout(), MODEL, announced["version"],
                                     max_length=64, batch_size=8)
    pii = await asyncio.to_thread(load_pii_version, object_store, RegistryLayout(), MODEL, announced["version"],
                                  lambda folder: TransformerEntityModel(folder, max_length=64))
    found = pii.find_batch(TEXTS)
    expected = served.predict(TEXTS)
    assert [[(s.start, s.end) for s in spans] for spans in found] == [
        [(e.start, e.end) for e in outputs.entities] for outputs in expected]

    await redis_client.delete(streams.MODELS_PUBLISHED)
    prompt = await _train(redis_client, infra_settings, base_model=str(tiny_bert_folder), method="prompt",
                          prompt={"num_virtual_tokens": 4})
    card = fetch_card(object_store, RegistryLayout(), MODEL, prompt["version"])
    assert card.adapter is not None and card.adapter.method == "prompt" and not card.adapter.mergeable
    prompt_served = await asyncio.to_thread(load_version, object_store, RegistryLayout(), MODEL, prompt["version"],
                                            max_length=64, batch_size=8)
    assert len(prompt_served.predict(TEXTS)) == len(TEXTS)
    with pytest.raises(VersionRejected, match="a prompt adapter cannot be merged"):
        await asyncio.to_thread(load_pii_version, object_store, RegistryLayout(), MODEL, prompt["version"],
                                lambda folder: TransformerEntityModel(folder, max_length=64))


async def test_a_dp_sgd_lora_version_reports_the_privacy_spent_per_epoch_and_in_its_card(
        redis_client, infra_settings, object_store, tiny_bert_folder, write_notes):
    write_notes(object_store, DATASET, 120)
    announced = await _train(redis_client, infra_settings, base_model=str(tiny_bert_folder), method="lora",
                             learning_rate=5e-3, dp={"target_epsilon": 8, "delta": 1e-3, "max_grad_norm": 1.0})
    card = fetch_card(object_store, RegistryLayout(), MODEL, announced["version"])
    assert card.privacy is not None and 0 < card.privacy.epsilon <= 8 and card.privacy.delta == 1e-3
    assert card.privacy.steps == card.training.global_steps
    epochs = [m for m in await _messages(redis_client, streams.TRAIN_STATUS) if m["state"] == "epoch_end"]
    spent = [m["metrics"]["privacy"]["epsilon"] for m in epochs]
    assert len(spent) == 3 and spent == sorted(spent) and spent[-1] == pytest.approx(card.privacy.epsilon)


async def test_a_dp_target_that_cannot_be_met_fails_the_run_with_the_reason(
        redis_client, infra_settings, object_store, tiny_bert_folder, write_notes):
    write_notes(object_store, DATASET, 120)
    request = TrainRequest(request_id="it-dp-too-tight", model_name=MODEL, task="token-classification",
                           dataset=DATASET, base_model=str(tiny_bert_folder), method="lora", epochs=3,
                           dp={"target_epsilon": 0.01, "delta": 1e-3}, dev_fraction=0.2, test_fraction=0.2)
    await redis_client.xadd(streams.TRAIN_REQUESTS, {"payload": request.model_dump_json()})
    async with create_trainer(TrainerSettings(infra=infra_settings)).start_lifespan_context():
        await wait_until(lambda: _failed(redis_client), "the run to fail", 120)
    [failed] = [m for m in await _messages(redis_client, streams.TRAIN_STATUS) if m["state"] == "failed"]
    assert "dp.target_epsilon 0.01 cannot be met" in failed["message"]
    assert await redis_client.xlen(streams.MODELS_PUBLISHED) == 0


async def _failed(redis) -> bool:
    return any(m["state"] == "failed" for m in await _messages(redis, streams.TRAIN_STATUS))
