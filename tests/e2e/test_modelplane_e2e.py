"""Model plane end to end: the four services as processes on a real Redis and S3.

Clinical notes go in over events.raw, are anonymized into shards, a fine-tune request trains
MiniLM for disease NER, the version is published to the object store and announced, and every
clean clinical note (those sent before the model existed included) gets exactly one prediction
naming that version.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import processes  # deploy/local, put on sys.path by the root conftest
from streamtune_shared import streams
from streamtune_shared.testing import wait_until

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MODEL = "disease-ner"
NOTES = 400
TRAIN_NOTES = 320


def notes() -> list[dict]:
    """Fixture notes with timestamps in the last minutes."""
    events = [json.loads(line) for line in (FIXTURES / "clinical_notes.jsonl").read_text().splitlines()][:NOTES]
    now = datetime.now(UTC)
    return [dict(e, ts=(now - timedelta(seconds=NOTES - i)).isoformat()) for i, e in enumerate(events)]


async def xadd(redis, events: list[dict]) -> None:
    pipe = redis.pipeline(transaction=False)
    for event in events:
        pipe.xadd(streams.RAW, {"payload": json.dumps(event)})
    await pipe.execute()


def _tails(procs: dict) -> str:
    return "\n".join(f"--- {n}\n{p.log_tail(15)}" for n, p in procs.items())


async def payloads(redis, stream: str) -> list[dict]:
    return [json.loads(fields[b"payload"]) for _, fields in await redis.xrange(stream)]


async def test_events_in_model_published_predictions_out(redis_client, infra_env, infra_settings, tmp_path):
    env = processes.service_env({**infra_env, "STREAMTUNE_S3_BUCKET": infra_settings.s3_bucket,
                                 "ANONYMIZER_SHARD_MAX_AGE_S": "1.0"}, {"clinical-notes": MODEL})
    ports = {name: processes.free_port() for name in processes.SERVICES}
    procs = processes.start_all(env, ports, tmp_path)
    try:
        events = notes()
        await xadd(redis_client, events[:TRAIN_NOTES])

        async def shards_hold_training_notes() -> bool:
            return sum(s["rows"] for s in await payloads(redis_client, streams.SHARDS)) >= TRAIN_NOTES
        await wait_until(shards_hold_training_notes, "the training shards", 60, interval_s=0.5, on_timeout=lambda: _tails(procs))

        request = {"schema_version": 1, "request_id": "e2e-run-1", "model_name": MODEL,
                   "task": "token-classification", "dataset": "clinical-notes", "base_model": "minilm",
                   "epochs": 3, "batch_size": 16, "learning_rate": 3e-4, "max_length": 128}
        await redis_client.xadd(streams.TRAIN_REQUESTS, {"payload": json.dumps(request)})

        async def published() -> bool:
            return await redis_client.xlen(streams.MODELS_PUBLISHED) >= 1
        await wait_until(published, "the published model", 420, interval_s=0.5, on_timeout=lambda: _tails(procs))
        (announcement,) = await payloads(redis_client, streams.MODELS_PUBLISHED)
        version = announcement["version"]

        await xadd(redis_client, events[TRAIN_NOTES:])

        async def all_predicted() -> bool:
            return await redis_client.xlen(streams.PREDICTIONS) >= NOTES
        await wait_until(all_predicted, "a prediction for every note", 180, interval_s=0.5, on_timeout=lambda: _tails(procs))
        await asyncio.sleep(1.0)  # a duplicate would show up now

        predictions = await payloads(redis_client, streams.PREDICTIONS)
        assert sorted(p["event_id"] for p in predictions) == sorted(e["event_id"] for e in events)
        assert {(p["model"], p["version"], p["task"]) for p in predictions} == {(MODEL, version, "token-classification")}
        clean_text = {c["event_id"]: c["text"] for c in await payloads(redis_client, streams.CLEAN)}
        spans = [(p["event_id"], s) for p in predictions for s in p["outputs"]["entities"]]
        assert spans, "the fine-tuned model found no disease mention at all"
        for event_id, span in spans:
            assert clean_text[event_id][span["start"]:span["end"]] == span["text"]
            assert span["label"] == "Disease" and 0.0 < span["score"] <= 1.0

        states = [s["state"] for s in await payloads(redis_client, streams.TRAIN_STATUS)]
        assert states[0] == "accepted" and states[-1] == "published" and states.count("epoch_end") == 3
        card = json.loads(await asyncio.to_thread(_read, infra_settings, announcement["card_key"]))
        assert card["request_id"] == "e2e-run-1" and card["metrics"]["test"]["f1"] > 0.0
        assert {"model.safetensors", "config.json", "labels.json"} <= set(card["files"])
    finally:
        for proc in procs.values():
            proc.stop()


def _read(settings, key: str) -> bytes:
    from streamtune_shared.storage import minio_store  # noqa: PLC0415

    return minio_store(settings).get_bytes(key)
