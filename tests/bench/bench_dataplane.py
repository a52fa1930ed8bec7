"""Benchmark: events.raw -> events.clean events/s through ingestion + anonymizer (as processes),
next to a plain redis-py ceiling measured in the same run: the same two hops (XREADGROUP, XADD,
XACK) with no validation or anonymization. Prints the ratio; writes JSON with --out.

Two workloads, each with its own ceiling: sensor events (readings, no text: the anonymizer's PII detector
has nothing to do) and text events (free text with PII, from the PII probe fixture: the pattern recognizers
and the entity model run on every text).

    python tests/bench/bench_dataplane.py [--events 20000] [--text-events 2000] [--redis-db 14] [--out ...]

Starts the local stack when it is not running (stack.up()); uses Redis database 14 (flushed; --redis-db)
and its own bucket (removed afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchlib import ROOT, bench_env, drop_bench_bucket, write_result, xadd_all
from redis.asyncio import Redis

import processes  # deploy/local, put on sys.path by benchlib

BENCH_DB = 14


def make_payloads(n: int, with_text: bool = False) -> list[bytes]:
    """n valid pump events (fixture readings); ``with_text``: each also carries one PII probe text."""
    pumps = [json.loads(x) for x in (ROOT / "tests/fixtures/pump_events.jsonl").read_text().splitlines()]
    texts = [json.loads(x)["text"] for x in (ROOT / "tests/fixtures/pii_validation.jsonl").read_text().splitlines()]
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        event = dict(pumps[i % len(pumps)], event_id=f"bench-{i}", ts=(now - timedelta(seconds=n - i)).isoformat())
        if with_text:
            event["text"] = texts[i % len(texts)]
        out.append(json.dumps(event).encode())
    return out


async def ceiling_hop(redis: Redis, source: str, target: str, n: int, batch: int = 512) -> None:
    """Move n entries source -> target with XREADGROUP + XADD + XACK, no processing."""
    await redis.xgroup_create(source, "hop", id="0", mkstream=True)
    moved = 0
    while moved < n:
        response = await redis.xreadgroup("hop", "c", {source: ">"}, count=batch, block=100)
        for _, entries in response or []:
            pipe = redis.pipeline(transaction=False)
            for entry_id, fields in entries:
                pipe.xadd(target, fields)
            pipe.xack(source, "hop", *[entry_id for entry_id, _ in entries])
            await pipe.execute()
            moved += len(entries)


async def measure_ceiling(redis: Redis, payloads: list[bytes]) -> float:
    """Two plain hops, raw -> mid -> out, concurrently, events/s."""
    await redis.flushdb()
    await xadd_all(redis, "ceiling.raw", payloads)
    start = time.perf_counter()
    await asyncio.gather(ceiling_hop(redis, "ceiling.raw", "ceiling.mid", len(payloads)),
                         ceiling_hop(redis, "ceiling.mid", "ceiling.out", len(payloads)))
    return len(payloads) / (time.perf_counter() - start)


async def measure_platform(redis: Redis, payloads: list[bytes], env: dict[str, str], logs: Path) -> float:
    """Ingestion + anonymizer as processes, raw -> clean, events/s (from the first XADD)."""
    await redis.flushdb()
    procs = [processes.ServiceProcess(n, env, processes.free_port(), logs / f"{n}.log").start()
             for n in ("ingestion", "anonymizer")]
    try:
        for proc in procs:
            proc.wait_until()
        start = time.perf_counter()
        await xadd_all(redis, "events.raw", payloads)
        while await redis.xlen("events.clean") < len(payloads):
            await asyncio.sleep(0.02)
        return len(payloads) / (time.perf_counter() - start)
    finally:
        for proc in procs:
            proc.stop()


async def main(args: argparse.Namespace) -> dict:
    env = bench_env(args.redis_db)
    redis = Redis.from_url(env["STREAMTUNE_REDIS_URL"])
    logs = ROOT / ".stack" / "bench-logs"
    result = {}
    try:
        for name, count, with_text in (("sensor", args.events, False), ("text", args.text_events, True)):
            payloads = make_payloads(count, with_text)
            ceiling = await measure_ceiling(redis, payloads)
            platform = await measure_platform(redis, payloads, env, logs)
            result[name] = {"events": count, "raw_to_clean_events_per_s": round(platform, 1),
                            "plain_redis_two_hop_ceiling_events_per_s": round(ceiling, 1),
                            "ratio": round(platform / ceiling, 3)}
    finally:
        await redis.flushdb()
        await redis.aclose()
        drop_bench_bucket(env)  # the anonymizer's shards
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="sensor events (no text)")
    parser.add_argument("--text-events", type=int, default=2_000, help="events with a PII-bearing text")
    parser.add_argument("--redis-db", type=int, default=BENCH_DB, help="Redis database to use; it is flushed")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "dataplane.json")
    arguments = parser.parse_args()
    result = asyncio.run(main(arguments))
    write_result(arguments.out, result)
    for name, figures in result.items():
        print(f"{name} events ({figures['events']}): raw->clean through ingestion+anonymizer "
              f"{figures['raw_to_clean_events_per_s']:,.0f} events/s, plain redis-py two-hop ceiling "
              f"{figures['plain_redis_two_hop_ceiling_events_per_s']:,.0f} events/s, ratio {figures['ratio']:.3f}")
