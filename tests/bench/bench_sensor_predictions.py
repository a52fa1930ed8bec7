"""Benchmark: sensor-anomaly serving. (a) events.clean -> predictions events/s of one predictor process with
windows batched, next to the raw batched forward of the same network over the same windows and a plain
redis-py XREADGROUP/XADD/XACK hop, measured in the same run; (b) end-to-end latency p50/p99 from a plain
redis-py ``XADD events.raw`` (the documented wire contract) to the prediction on ``predictions`` at a steady
rate, through ingestion, anonymizer and predictor processes.

    python tests/bench/bench_sensor_predictions.py [--events 20000] [--devices 16] [--rate 500] [--seconds 20]
                                                   [--redis-db 14] [--out bench-results/sensor_predictions.json]

The served version is a randomly initialised sensor-anomaly network (the trainer's default shape, the
fixture's 8 SKAB sensors), published as the trainer would: the bench measures serving, not quality.
Readings come from tests/fixtures/pump_events.jsonl, cycled per device. Latency is the difference of the
two entries' stream ids (Redis's own clock at each XADD, 1 ms resolution), so the producer's own event
loop does not add to it. Starts the local stack when it is not running (stack.up()); uses Redis database
14 (flushed; --redis-db) and its own bucket (removed afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import torch
from bench_dataplane import ceiling_hop
from benchlib import ROOT, bench_env, drop_bench_bucket, write_result, xadd_all
from redis.asyncio import Redis
from streamtune_predictor.anomaly import AnomalyModel
from streamtune_shared import streams
from streamtune_shared.anomaly_net import AnomalyNet, published_files
from streamtune_shared.model_card import CardAnomaly, ModelCard
from streamtune_shared.model_registry import RegistryLayout, file_checksums, write_version
from streamtune_shared.sensor_windows import Calibration, reading_matrix, sliding_windows
from streamtune_shared.settings import InfraSettings
from streamtune_shared.storage import minio_store
from streamtune_trainer.anomaly_training import AnomalyHyperparameters

import processes  # deploy/local, put on sys.path by benchlib
from demo_sensors import entry_ms, percentile, xadd_steady  # deploy/local: the demo's steady producer

BENCH_DB = 14
MODEL, DATASET, VERSION = "bench-anomaly", "pump-sensors", "20261201T000000Z-benchsen"
PAYLOAD_KEY = streams.PAYLOAD_FIELD.encode()


def fixture_readings() -> list[dict[str, float]]:
    """The pump fixture's readings (8 SKAB sensors), in order."""
    lines = (ROOT / "tests/fixtures/pump_events.jsonl").read_text().splitlines()
    return [json.loads(line)["readings"] for line in lines if line]


def publish_random_version(env: dict[str, str], sensors: tuple[str, ...], window: int, calibration: int
                           ) -> AnomalyNet:
    """A randomly initialised network of the trainer's default shape, stored as a version (files, then card)."""
    torch.manual_seed(0)
    # The trainer's default network (smoothing over the last windows, compressed z-scores): what a request
    # naming only model, task, dataset and calibration_events publishes.
    config = AnomalyHyperparameters(window=window, calibration_events=calibration).net_config(sensors)
    net = AnomalyNet(config).eval()
    files = published_files(net)
    card = ModelCard(model_name=MODEL, version=VERSION, task="sensor-anomaly", dataset=DATASET, request_id="bench",
                     files=file_checksums(files), created_at=datetime.now(UTC),
                     anomaly=CardAnomaly(threshold=0.5, false_alarm_cap=0.1))
    store = minio_store(InfraSettings(**{k.removeprefix("STREAMTUNE_").lower(): v for k, v in env.items()
                                         if k.startswith("STREAMTUNE_")}))
    write_version(store, RegistryLayout(), card, files)
    return net


class DeviceStream:
    """Events of several devices, interleaved round-robin, each device's readings cycling the fixture."""

    def __init__(self, readings: list[dict[str, float]], devices: int, run: str, start: datetime) -> None:
        self.readings, self.devices, self.run, self.start = readings, devices, run, start
        self.next_index = [0] * devices

    def take(self, n: int) -> list[dict]:
        """The next n events (device i % devices), with ts one second apart per device."""
        out = []
        for k in range(n):
            d = k % self.devices
            i = self.next_index[d]
            self.next_index[d] += 1
            out.append({"schema_version": 1, "event_id": f"{self.run}-d{d}-{i}", "device_id": f"bench-pump-{d}",
                        "dataset": DATASET, "ts": (self.start + timedelta(seconds=i)).isoformat(),
                        "readings": self.readings[(i + 17 * d) % len(self.readings)]})
        return out


def as_clean(event: dict) -> bytes:
    """A raw event as the anonymizer would pass it on (the predictor's input)."""
    now = datetime.now(UTC).isoformat()
    return json.dumps({**event, "text": None, "label": None, "meta": {}, "notes": [], "ingested_at": now,
                       "redactions": {}, "anonymized_at": now}).encode()


def measure_raw_forward(net: AnomalyNet, readings: list[dict[str, float]], n: int, batch_size: int) -> float:
    """Windows/s of the network alone over n calibrated windows of the same readings, in batches of batch_size."""
    spec = net.config.spec()
    rows = reading_matrix(readings, spec.sensors)
    x = Calibration.of(rows[:spec.calibration_events]).normalize(rows, spec.clip)
    windows = sliding_windows(x, spec.window)
    windows = windows[np.arange(n) % len(windows)]
    model = AnomalyModel(net, 0.5, batch_size=batch_size)
    model.scores(windows[:batch_size])  # warm-up
    start = time.perf_counter()
    for i in range(0, n, batch_size):
        model.scores(windows[i:i + batch_size])
    return n / (time.perf_counter() - start)


async def measure_redis_hop(redis: Redis, payloads: list[bytes], batch_size: int) -> float:
    """One plain XREADGROUP + XADD + XACK hop of the same payloads, events/s."""
    await redis.flushdb()
    await xadd_all(redis, "ceiling.clean", payloads)
    start = time.perf_counter()
    await ceiling_hop(redis, "ceiling.clean", "ceiling.predictions", len(payloads), batch=batch_size)
    return len(payloads) / (time.perf_counter() - start)


async def wait_for_predictions(redis: Redis, n: int, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while await redis.xlen(streams.PREDICTIONS) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {what}: {await redis.xlen(streams.PREDICTIONS)} of {n} predictions "
                             f"after {timeout_s:.0f}s (logs in .stack/bench-logs/)")
        await asyncio.sleep(0.01)


async def measure_throughput(redis: Redis, env: dict[str, str], args: argparse.Namespace, logs: Path,
                             readings: list[dict[str, float]]) -> dict:
    """One predictor process: every device calibrated first, then --events scored events, events/s."""
    await redis.flushdb()
    predictor = processes.ServiceProcess("predictor", env, processes.free_port(), logs / "predictor.log").start()
    try:
        predictor.wait_until("/readyz")
        source = DeviceStream(readings, args.devices, uuid.uuid4().hex[:6], datetime.now(UTC) - timedelta(days=1))
        calibrating = [as_clean(e) for e in source.take(args.devices * (args.calibration_events + args.window))]
        await xadd_all(redis, streams.CLEAN, calibrating)
        await wait_for_predictions(redis, len(calibrating), 300, "calibration")
        scored = [as_clean(e) for e in source.take(args.events)]
        start = time.perf_counter()
        await xadd_all(redis, streams.CLEAN, scored)
        await wait_for_predictions(redis, len(calibrating) + len(scored), 600, "scored events")
        elapsed = time.perf_counter() - start
        last = await redis.xrevrange(streams.PREDICTIONS, count=1)
        assert not json.loads(last[0][1][PAYLOAD_KEY])["outputs"]["calibrating"], "scored events still calibrate"
        return {"events": len(scored), "events_per_s": round(len(scored) / elapsed, 1)}
    finally:
        predictor.stop()


async def measure_latency(redis: Redis, env: dict[str, str], args: argparse.Namespace, logs: Path,
                          readings: list[dict[str, float]]) -> dict:
    """Ingestion, anonymizer and predictor processes; calibrate every device, then a steady --rate for --seconds."""
    await redis.flushdb()
    procs = [processes.ServiceProcess(name, env, processes.free_port(), logs / f"{name}.log").start()
             for name in ("ingestion", "anonymizer", "predictor")]
    try:
        for proc in procs:
            proc.wait_until("/readyz")
        source = DeviceStream(readings, args.devices, uuid.uuid4().hex[:6], datetime.now(UTC))
        warm = source.take(args.devices * (args.calibration_events + args.window))
        await xadd_all(redis, streams.RAW, [json.dumps({**e, "ts": datetime.now(UTC).isoformat()}).encode()
                                            for e in warm])
        await wait_for_predictions(redis, len(warm), 300, "calibration through the pipeline")
        steady = source.take(int(args.rate * args.seconds))
        raw_ids = await xadd_steady(redis, steady, args.rate, stamp_ts=True)
        await wait_for_predictions(redis, len(warm) + len(steady), 120, "steady events")
        latencies, predictor_ms = [], []
        for entry_id, fields in await redis.xrange(streams.PREDICTIONS):
            prediction = json.loads(fields[PAYLOAD_KEY])
            if (raw := raw_ids.get(prediction["event_id"])) is not None:
                latencies.append(entry_ms(entry_id) - entry_ms(raw))
                predictor_ms.append(prediction["latency_ms"])
        assert len(latencies) == len(steady), f"{len(latencies)} predictions for {len(steady)} steady events"
        return {"events": len(steady), "rate_events_per_s": args.rate,
                "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99),
                "max_ms": max(latencies), "predictor_share_p50_ms": round(statistics.median(predictor_ms), 2)}
    finally:
        for proc in procs:
            proc.stop()


async def main(args: argparse.Namespace) -> dict:
    readings = fixture_readings()
    sensors = tuple(sorted(readings[0]))
    threads = {"PREDICTOR_NUM_THREADS": str(args.threads)} if args.threads else {}
    if args.threads:
        torch.set_num_threads(args.threads)
    env = processes.service_env(bench_env(args.redis_db, PREDICTOR_BATCH_SIZE=str(args.batch_size), **threads),
                                {DATASET: MODEL})
    redis = Redis.from_url(env["STREAMTUNE_REDIS_URL"])
    logs = ROOT / ".stack" / "bench-logs"
    try:
        net = await asyncio.to_thread(publish_random_version, env, sensors, args.window, args.calibration_events)
        raw = measure_raw_forward(net, readings, args.events, args.batch_size)
        hop = await measure_redis_hop(redis, [as_clean(e) for e in DeviceStream(
            readings, args.devices, "hop", datetime.now(UTC)).take(args.events)], args.batch_size)
        throughput = await measure_throughput(redis, env, args, logs, readings)
        latency = None if args.no_latency else await measure_latency(redis, env, args, logs, readings)
    finally:
        await redis.flushdb()
        await redis.aclose()
        drop_bench_bucket(env)
    return {"devices": args.devices, "window": args.window, "batch_size": args.batch_size,
            "torch_threads": torch.get_num_threads(),
            "throughput": {**throughput, "raw_forward_windows_per_s": round(raw, 1),
                           "plain_redis_hop_events_per_s": round(hop, 1),
                           "ratio_to_raw_forward": round(throughput["events_per_s"] / raw, 3),
                           "ratio_to_redis_hop": round(throughput["events_per_s"] / hop, 3)},
            "latency": latency}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="scored events for the throughput run")
    parser.add_argument("--devices", type=int, default=16)
    parser.add_argument("--window", type=int, default=64, help="the served network's window (the request default)")
    parser.add_argument("--calibration-events", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64, help="the predictor's PREDICTOR_BATCH_SIZE")
    parser.add_argument("--rate", type=float, default=500.0, help="steady events/s for the latency run")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the steady latency run")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the predictor (PREDICTOR_NUM_THREADS) and of the raw forward")
    parser.add_argument("--no-latency", action="store_true", help="only the throughput run")
    parser.add_argument("--redis-db", type=int, default=BENCH_DB, help="Redis database to use; it is flushed")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "sensor_predictions.json")
    arguments = parser.parse_args()
    result = asyncio.run(main(arguments))
    write_result(arguments.out, result)
    t, lat = result["throughput"], result["latency"]
    print(f"events.clean -> predictions, one predictor process: {t['events_per_s']:,.0f} events/s "
          f"({t['events']} scored events, {result['devices']} devices, window {result['window']}, "
          f"batch {result['batch_size']})")
    print(f"  raw batched forward of the same network: {t['raw_forward_windows_per_s']:,.0f} windows/s, ratio "
          f"{t['ratio_to_raw_forward']:.3f}; plain redis-py hop: {t['plain_redis_hop_events_per_s']:,.0f} events/s, "
          f"ratio {t['ratio_to_redis_hop']:.3f}")
    if lat is None:
        raise SystemExit(0)
    print(f"XADD events.raw -> predictions at {lat['rate_events_per_s']:.0f} events/s ({lat['events']} events, "
          f"ingestion + anonymizer + predictor): p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms "
          f"(predictor's own share p50 {lat['predictor_share_p50_ms']} ms)")
