"""`make demo`: the whole loop on this machine, end to end, in a few minutes on 2 CPU cores.

Redis and S3 come from `stack.up()` (started when not running). The demo uses Redis database 1 and
the bucket `streamtune-demo`, both emptied first, starts the four services as processes, then:
0. the privacy pillar (demo_privacy.py): PII recall by type on 298 texts never trained on, before and after
   the trainer fine-tunes `pii-ner` on an imported synthetic PII set and the anonymizer hot-reloads it;
0b. the sensor loop (demo_sensors.py): SKAB pump recordings replayed, `pump-anomaly` trained and served, fresh
    recordings streamed: F1 / FAR on them and the XADD -> prediction latency;
1. replays pump-sensor events and clinical notes (NCBI-disease sentences with BIO labels, some
   with contact details) from tests/fixtures, plus duplicates and malformed entries, over Redis
   and over HTTP POST /events;
2. waits for the anonymized shards, asks the trainer to fine-tune MiniLM for disease NER;
3. follows train.status (dev F1 per epoch) until the version is published;
4. streams the remaining notes and waits until every clean clinical note has a prediction;
5. prints a summary and stops the services; its last line names the servers it leaves running.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis
from streamtune_shared import streams

import processes  # deploy/local, beside this script
import stack
from demo_privacy import PII_MODEL, print_recall, privacy_pillar
import training_status
from demo_sensors import SENSOR_DATASET, SENSOR_MODEL, sensor_loop

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
DEMO_DB = 1
BUCKET = "streamtune-demo"
TRAIN_NOTES = 340
MODEL = "disease-ner"
PAYLOAD_KEY = streams.PAYLOAD_FIELD.encode()  # redis-py returns field names as bytes


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def fixture_events(name: str) -> list[dict]:
    """Fixture events with their timestamps moved to the last hour, spacing kept."""
    events = [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]
    last = max(datetime.fromisoformat(e["ts"]) for e in events)
    shift = datetime.now(UTC) - timedelta(minutes=1) - last
    for event in events:
        event["ts"] = (datetime.fromisoformat(event["ts"]) + shift).isoformat()
    span = datetime.now(UTC) - min(datetime.fromisoformat(e["ts"]) for e in events)
    if span > timedelta(days=20):  # keep inside ingestion's accepted window
        for i, event in enumerate(events):
            event["ts"] = (datetime.now(UTC) - timedelta(seconds=len(events) - i)).isoformat()
    return events


async def xadd_events(redis: Redis, events: list[dict] | list[bytes]) -> None:
    pipe = redis.pipeline(transaction=False)
    for event in events:
        pipe.xadd(streams.RAW, {streams.PAYLOAD_FIELD: event if isinstance(event, bytes) else json.dumps(event)})
    await pipe.execute()


def post_events(url: str, events: list[dict]) -> dict:
    request = urllib.request.Request(url, data=json.dumps(events).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


async def wait_until(check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: timed out waiting for {what} (logs in .stack/logs/)")
        await asyncio.sleep(0.5)


async def payloads(redis: Redis, stream: str) -> list[dict]:
    return [json.loads(fields[PAYLOAD_KEY]) for _, fields in await redis.xrange(stream)]


async def follow_training(redis: Redis, request_id: str, timeout_s: float) -> tuple[dict, list[float]]:
    """Print each epoch's dev entity F1 until the run is published or failed; returns dev F1 by epoch."""
    status, dev = await training_status.follow_training(redis, request_id, timeout_s, say,
                                                        training_status.entity_f1_line)
    return status, [d.get("f1", float("nan")) for d in dev]


async def run() -> None:
    env = stack.up()
    redis_url = stack.redis_url_for_db(env["STREAMTUNE_REDIS_URL"], DEMO_DB)
    env = processes.service_env({**env, "STREAMTUNE_REDIS_URL": redis_url, "STREAMTUNE_S3_BUCKET": BUCKET},
                                {"clinical-notes": MODEL, SENSOR_DATASET: SENSOR_MODEL})
    redis = Redis.from_url(env["STREAMTUNE_REDIS_URL"])
    await redis.flushdb()
    _demo_store(env).clear()
    ports = {name: processes.free_port() for name in processes.SERVICES}
    say("starting ingestion, anonymizer, trainer, predictor ...")
    procs = processes.start_all(env, ports, ROOT / ".stack" / "logs")
    started = time.monotonic()
    try:
        await demo_loop(redis, procs, env)
    finally:
        for proc in procs.values():
            proc.stop()
        await redis.aclose()
    say(f"demo finished in {time.monotonic() - started:.0f} s; services stopped; {left_running()}")


def left_running() -> str:
    """What the demo leaves behind: the stack's servers, which `make down` stops."""
    servers = stack.started()
    if not servers:
        return "Redis and S3 were already running and are left as they were"
    names = ", ".join(f"{name} (pid {pid})" for name, pid in servers.items())
    return f"left running: {names}; `make down` stops them"


def _demo_store(env: dict[str, str]):
    from streamtune_shared.settings import InfraSettings  # noqa: PLC0415
    from streamtune_shared.storage import minio_store  # noqa: PLC0415

    return minio_store(InfraSettings(**{k.removeprefix("STREAMTUNE_").lower(): v for k, v in env.items()
                                        if k.startswith("STREAMTUNE_")}))


async def demo_loop(redis: Redis, procs: dict, env: dict[str, str]) -> None:
    privacy = await privacy_pillar(redis, env, procs["anonymizer"].url("/metrics"), say, xadd_events, wait_until)
    await sensor_loop(redis, say, wait_until)
    pumps, notes = fixture_events("pump_events.jsonl"), fixture_events("clinical_notes.jsonl")
    first, http_batch, later = notes[:TRAIN_NOTES - 20], notes[TRAIN_NOTES - 20:TRAIN_NOTES], notes[TRAIN_NOTES:]
    malformed = [b"not json", b'{"schema_version": 2}', json.dumps({**pumps[0], "event_id": "late",
                 "ts": (datetime.now(UTC) + timedelta(days=2)).isoformat()}).encode(),
                 json.dumps({**notes[0], "event_id": "tags", "label": ["O"]}).encode()]
    say(f"replaying {len(pumps)} pump events, {len(first)} clinical notes, {len(malformed)} malformed "
        f"and 10 duplicate entries over Redis; {len(http_batch)} notes over HTTP POST /events")
    await xadd_events(redis, pumps + first + malformed + first[:10])
    reply = post_events(procs["ingestion"].url("/events"), http_batch)
    say(f"  POST /events -> accepted {reply['accepted']}, rejected {reply['rejected']}")

    async def shards_ready() -> bool:
        rows = sum(s["rows"] for s in await payloads(redis, streams.SHARDS) if s["dataset"] == "clinical-notes")
        return rows >= TRAIN_NOTES
    await wait_until(shards_ready, 120, "the clinical-notes shards")
    shards = [s for s in await payloads(redis, streams.SHARDS) if s["dataset"] == "clinical-notes"]
    say(f"anonymized shards stored: {len(shards)} shard(s), {sum(s['rows'] for s in shards)} rows")

    request = {"schema_version": 1, "request_id": f"demo-{int(time.time())}", "model_name": MODEL,
               "task": "token-classification", "dataset": "clinical-notes", "base_model": "minilm",
               "epochs": 4, "batch_size": 16, "learning_rate": 3e-4, "max_length": 128}
    await redis.xadd(streams.TRAIN_REQUESTS, {streams.PAYLOAD_FIELD: json.dumps(request)})
    say(f"train request sent: fine-tune MiniLM ({request['epochs']} epochs) for disease NER")
    status, dev_f1 = await follow_training(redis, request["request_id"], timeout_s=900)
    if status["state"] == "failed":
        raise SystemExit(f"demo: training failed: {status.get('message')}")
    say(f"published {MODEL} version {status['version']}; test metrics {json.dumps(_short(status['metrics']))}")

    await xadd_events(redis, later)
    say(f"streaming the remaining {len(later)} notes through the predictor")

    async def all_predicted() -> bool:
        return sum(p["dataset"] == "clinical-notes" for p in await payloads(redis, streams.PREDICTIONS)) >= len(notes)
    await wait_until(all_predicted, 180, "predictions for every clinical note")
    await summary(redis, dev_f1, status["version"], {e["event_id"] for e in later}, privacy)


def _p99(values: list[float]) -> float:
    return values[int(0.99 * (len(values) - 1))]


def _short(metrics: dict) -> dict:
    test = metrics.get("test", metrics)
    return {k: round(v, 3) for k, v in test.items() if isinstance(v, float)}


async def summary(redis: Redis, dev_f1: list[float], version: str, streamed: set[str], privacy: dict) -> None:
    clean = await payloads(redis, streams.CLEAN)
    predictions = [p for p in await payloads(redis, streams.PREDICTIONS) if p["dataset"] == "clinical-notes"]
    # Notes sent before the model existed were held by the predictor; quote the streamed ones apart.
    latencies = sorted(p["latency_ms"] for p in predictions if p["event_id"] in streamed)
    held = sorted(p["latency_ms"] for p in predictions if p["event_id"] not in streamed)
    redacted = sum(sum(c["redactions"].values()) for c in clean)
    entities = sum(len(p["outputs"].get("entities") or []) for p in predictions)
    example = next((p for p in predictions if p["outputs"].get("entities")), None)
    print("\n=== streamtune demo summary ===")
    print(f"events in (raw entries + HTTP): {await redis.xlen(streams.RAW)}")
    print(f"valid -> anonymized ({streams.CLEAN}): {len(clean)}")
    print(f"rejected to {streams.DLQ}: {await redis.xlen(streams.DLQ)}")
    by_type = sum((Counter(c["redactions"]) for c in clean), Counter())
    print(f"PII values redacted in text: {redacted} "
          f"(events with redactions: {sum(1 for c in clean if c['redactions'])}); by type: "
          + ", ".join(f"{t} {n}" for t, n in by_type.most_common()))
    print_recall(privacy["before"], privacy["after"])
    print(f"PII model in the anonymizer: {PII_MODEL} {privacy['version']}")
    print(f"dev entity F1 by epoch: {', '.join(f'{f:.3f}' for f in dev_f1)}")
    print(f"published version: {MODEL} {version}")
    print(f"predictions made: {len(predictions)} ({entities} disease mentions), versions: "
          f"{sorted({p['version'] for p in predictions})}")
    print(f"prediction latency ms, {len(latencies)} notes streamed after publication: "
          f"p50 {statistics.median(latencies):.1f}, p99 {_p99(latencies):.1f}")
    print(f"  ({len(held)} notes that arrived before the model were held until it loaded: "
          f"p50 {statistics.median(held) / 1000:.1f} s)")
    if example:
        spans = ", ".join(f"{e['text']!r} ({e['score']:.2f})" for e in example["outputs"]["entities"][:4])
        print(f"example: {example['event_id']}: {spans}")


if __name__ == "__main__":
    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        sys.exit(130)
