"""The demo's sensor loop: SKAB pump recordings replayed, `pump-anomaly` trained and served, fresh ones streamed.

1. the training recordings of tests/fixtures/pump_recordings.jsonl (SKAB valve1 files, every 4th row) are
   replayed over Redis (`XADD events.raw`) with their spacing kept, moved to the last hours;
2. once the anonymizer has stored them as `pump-sensors` shards, a `train.requests` message asks the trainer
   for `pump-anomaly` (task `sensor-anomaly`: each device calibrated by its first 100 events, SKAB's 400 rows);
3. the predictor hot-reloads the published version and predicts the replayed events it held meanwhile;
4. the stream recordings (other files, never trained on) go in unlabeled at a steady rate: F1, FAR and MAR on
   their scored events (after each device's calibration) against the fixture's labels, and the latency from
   each `XADD events.raw` to its prediction on `predictions` (the two stream ids' times: Redis's clock).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis
from streamtune_shared import streams
from training_status import follow_training

ROOT = Path(__file__).resolve().parents[2]
RECORDINGS = ROOT / "tests" / "fixtures" / "pump_recordings.jsonl"
SENSOR_DATASET, SENSOR_MODEL = "pump-sensors", "pump-anomaly"
CALIBRATION_EVENTS = 100  # SKAB's 400 calibration rows, every 4th kept
STREAM_RATE = 200.0  # events/s of the fresh recordings
TRAIN_REQUEST = {"schema_version": 1, "model_name": SENSOR_MODEL, "task": "sensor-anomaly", "dataset": SENSOR_DATASET,
                 "calibration_events": CALIBRATION_EVENTS, "window": 32, "stride": 2, "pretrain_epochs": 2,
                 "epochs": 6}
PAYLOAD_KEY = streams.PAYLOAD_FIELD.encode()
Say = Callable[[str], None]


def recording_events(recording: dict, end: datetime, labeled: bool) -> list[tuple[dict, int]]:
    """One wire event per row of a recording, its spacing kept and its last event at ``end``; with each label."""
    last = recording["offsets_s"][-1]
    events = []
    for i, (offset, row, label) in enumerate(zip(recording["offsets_s"], recording["rows"], recording["labels"],
                                                 strict=True)):
        ts = end - timedelta(seconds=last - offset)
        events.append(({"schema_version": 1, "event_id": f"{recording['device']}-{i:04d}",
                        "device_id": recording["device"], "dataset": SENSOR_DATASET, "ts": ts.isoformat(),
                        "readings": dict(zip(recording["sensors"], row, strict=True)),
                        "label": label if labeled else None}, label))
    return events


def load_parts() -> dict[str, list[dict]]:
    """The fixture's recordings by part (train, stream)."""
    parts: dict[str, list[dict]] = {"train": [], "stream": []}
    for line in RECORDINGS.read_text().splitlines():
        recording = json.loads(line)
        parts[recording["part"]].append(recording)
    return parts


def interleave(recordings: list[list[tuple[dict, int]]]) -> list[tuple[dict, int]]:
    """Events of several devices in turns, each device's in order (as devices streaming side by side)."""
    longest = max(len(r) for r in recordings)
    return [r[i] for i in range(longest) for r in recordings if i < len(r)]


async def xadd_steady(redis: Redis, events: list[dict], rate: float, *, stamp_ts: bool = False) -> dict[str, str]:
    """XADD each event to events.raw at its due time (``rate`` events/s), with ``ts`` set to the send time when
    ``stamp_ts``; event_id -> raw entry id."""
    ids: dict[str, str] = {}
    start, sent = time.perf_counter(), 0
    while sent < len(events):
        due = min(len(events), int((time.perf_counter() - start) * rate) + 1)
        if due > sent:
            pipe = redis.pipeline(transaction=False)
            now = datetime.now(UTC).isoformat()
            for event in events[sent:due]:
                pipe.xadd(streams.RAW, {streams.PAYLOAD_FIELD: json.dumps({**event, "ts": now} if stamp_ts else event)})
            for event, entry_id in zip(events[sent:due], await pipe.execute(), strict=True):
                ids[event["event_id"]] = entry_id.decode()
            sent = due
        await asyncio.sleep(0.001)
    return ids


async def sensor_predictions(redis: Redis, event_ids: set[str]) -> dict[str, tuple[str, dict]]:
    """The predictions of these events: event_id -> (prediction entry id, prediction)."""
    found = {}
    for entry_id, fields in await redis.xrange(streams.PREDICTIONS):
        prediction = json.loads(fields[PAYLOAD_KEY])
        if prediction["event_id"] in event_ids:
            found[prediction["event_id"]] = (entry_id.decode(), prediction)
    return found


def anomaly_epoch_line(status: dict, dev: dict) -> str:
    """One epoch's dev F1 and false-alarm rate."""
    return (f"  epoch {status['epoch']}/{status['epochs']}: dev F1 {dev.get('f1', float('nan')):.3f}, "
            f"FAR {100 * dev.get('far', float('nan')):.1f} %")


def detection_metrics(outcomes: list[tuple[bool, int]]) -> dict[str, float]:
    """F1, FAR and MAR of (is_anomaly, label) pairs."""
    tp = sum(p and y == 1 for p, y in outcomes)
    fp = sum(p and y == 0 for p, y in outcomes)
    fn = sum(not p and y == 1 for p, y in outcomes)
    tn = sum(not p and y == 0 for p, y in outcomes)
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {"f1": f1, "far": fp / (fp + tn) if fp + tn else 0.0, "mar": fn / (fn + tp) if fn + tp else 0.0}


def entry_ms(entry_id: str | bytes) -> int:
    """The millisecond time of a stream entry id (Redis's clock)."""
    return int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def replay_and_train(redis: Redis, train: list[dict], say: Say, wait_until: Callable) -> tuple[dict, set[str]]:
    """Steps 1-3: replay the training recordings, train pump-anomaly, wait until the predictor serves it."""
    end = datetime.now(UTC) - timedelta(minutes=2)
    events = interleave([recording_events(r, end, labeled=True) for r in train])
    pipe = redis.pipeline(transaction=False)
    for event, _ in events:
        pipe.xadd(streams.RAW, {streams.PAYLOAD_FIELD: json.dumps(event)})
    await pipe.execute()
    say(f"sensors: replayed {len(events)} labeled events of {len(train)} SKAB pump recordings (valve1, every 4th row)")

    async def shards_ready() -> bool:
        shards = [json.loads(f[PAYLOAD_KEY]) for _, f in await redis.xrange(streams.SHARDS)]
        return sum(s["rows"] for s in shards if s["dataset"] == SENSOR_DATASET) >= len(events)
    await wait_until(shards_ready, 120, "the pump-sensors shards")
    request = {**TRAIN_REQUEST, "request_id": f"demo-anomaly-{int(time.time())}"}
    await redis.xadd(streams.TRAIN_REQUESTS, {streams.PAYLOAD_FIELD: json.dumps(request)})
    say(f"train request sent: {SENSOR_MODEL} (sensor-anomaly, window {request['window']}, each device calibrated by "
        f"its first {CALIBRATION_EVENTS} events, {request['pretrain_epochs']} pretraining + {request['epochs']} epochs)")
    status, _ = await follow_training(redis, request["request_id"], 600, say, anomaly_epoch_line,
                                      what=f"{SENSOR_MODEL} training")
    if status["state"] == "failed":
        raise SystemExit(f"demo: training {SENSOR_MODEL} failed: {status.get('message')}")
    replayed = {event["event_id"] for event, _ in events}

    async def served() -> bool:  # the events it held until a version existed, predicted by the new one
        found = await sensor_predictions(redis, replayed)
        return len(found) == len(replayed) and all(p["version"] == status["version"] for _, p in found.values())
    await wait_until(served, 180, f"the predictor to serve {SENSOR_MODEL} {status['version']}")
    say(f"published {SENSOR_MODEL} {status['version']} (test F1 {status['metrics'].get('test', {}).get('f1', 0):.3f}); "
        "the predictor hot-reloaded it and predicted the held replay")
    return status, replayed


async def sensor_loop(redis: Redis, say: Say, wait_until: Callable) -> dict:
    """The whole sensor loop; prints and returns F1 / FAR / MAR on the streamed recordings and the latency."""
    parts = load_parts()
    status, _ = await replay_and_train(redis, parts["train"], say, wait_until)
    fresh = interleave([recording_events(r, datetime.now(UTC), labeled=False) for r in parts["stream"]])
    say(f"streaming {len(fresh)} unlabeled events of {len(parts['stream'])} recordings never trained on "
        f"({', '.join(r['device'] for r in parts['stream'])}) at {STREAM_RATE:.0f} events/s")
    raw_ids = await xadd_steady(redis, [event for event, _ in fresh], STREAM_RATE)

    async def all_predicted() -> bool:
        return len(await sensor_predictions(redis, set(raw_ids))) == len(raw_ids)
    await wait_until(all_predicted, 120, "predictions for every streamed sensor event")
    found = await sensor_predictions(redis, set(raw_ids))
    scored = [(found[e["event_id"]][1]["outputs"]["is_anomaly"], label) for e, label in fresh
              if not found[e["event_id"]][1]["outputs"]["calibrating"]]
    metrics = detection_metrics(scored)
    latencies = [entry_ms(found[eid][0]) - entry_ms(raw) for eid, raw in raw_ids.items()]
    result = {"version": status["version"], "streamed": len(fresh), "scored": len(scored), **metrics,
              "latency_p50_ms": percentile(latencies, 0.5), "latency_p99_ms": percentile(latencies, 0.99)}
    say(f"sensor anomalies on the {len(scored)} streamed events after calibration: F1 {metrics['f1']:.3f}, "
        f"FAR {100 * metrics['far']:.1f} %, MAR {100 * metrics['mar']:.1f} % "
        f"({len(fresh) - len(scored)} calibrating events not scored)")
    say(f"sensor latency XADD events.raw -> predictions at {STREAM_RATE:.0f} events/s: "
        f"p50 {result['latency_p50_ms']} ms, p99 {result['latency_p99_ms']} ms")
    return result
