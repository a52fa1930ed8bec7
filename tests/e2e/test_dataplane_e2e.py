"""Data plane end to end: ingestion and anonymizer as processes on a real Redis and S3.

1,000 entries (valid, duplicate, malformed) go in with plain redis-py XADD; the anonymizer is
killed with SIGKILL mid-stream and restarted. Every valid event reaches events.clean exactly
once, every malformed one reaches events.dlq, and no PII value reaches events.clean or a shard.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
import sys
import urllib.request
from pathlib import Path

import pytest
from streamtune_shared import streams
from streamtune_shared.datasets import read_dataset
from streamtune_shared.testing import wait_until

sys.path.insert(0, str(Path(__file__).parent))
from dataplane_events import build_mix  # noqa: E402

import processes  # noqa: E402  (deploy/local, put on sys.path by the root conftest)

@pytest.fixture
def service_env(infra_env, infra_settings, tmp_path):
    env = {**infra_env, "STREAMTUNE_S3_BUCKET": infra_settings.s3_bucket,
           "INGESTION_CLAIM_IDLE_MS": "2000", "ANONYMIZER_CLAIM_IDLE_MS": "2000",
           "ANONYMIZER_SHARD_CLAIM_IDLE_MS": "3000", "ANONYMIZER_SHARD_MAX_AGE_S": "1.0",
           "ANONYMIZER_SHARD_MAX_ROWS": "200"}
    return env


async def _pending(redis, stream: str, group: str) -> int:
    try:
        return (await redis.xpending(stream, group))["pending"]
    except Exception:  # noqa: BLE001 - group not created yet
        return -1


async def test_thousand_events_with_a_killed_anonymizer(redis_client, service_env, object_store, tmp_path):
    mix = build_mix(1000)
    ingestion = processes.ServiceProcess("ingestion", service_env, processes.free_port(), tmp_path / "ingestion.log").start()
    anonymizer = processes.ServiceProcess("anonymizer", service_env, processes.free_port(), tmp_path / "anonymizer-1.log").start()
    restarted = None
    try:
        ingestion.wait_until()
        anonymizer.wait_until()
        chunks = [mix.entries[i:i + 100] for i in range(0, len(mix.entries), 100)]
        for number, chunk in enumerate(chunks):
            pipe = redis_client.pipeline(transaction=False)
            for fields in chunk:
                pipe.xadd(streams.RAW, fields)
            await pipe.execute()
            await asyncio.sleep(0.3)
            if number == 3:
                anonymizer.signal(signal.SIGKILL)
                anonymizer.proc.wait(10)
            if number == 6:
                restarted = processes.ServiceProcess("anonymizer", service_env, processes.free_port(),
                                               tmp_path / "anonymizer-2.log").start()
                restarted.wait_until()

        async def drained() -> bool:
            return (await redis_client.xlen(streams.CLEAN) >= len(mix.valid_ids)
                    and await redis_client.xlen(streams.DLQ) >= len(mix.malformed)
                    and await _pending(redis_client, streams.RAW, "ingestion") == 0
                    and await _pending(redis_client, streams.VALID, "anonymizer") == 0
                    and await _pending(redis_client, streams.CLEAN, "anonymizer-shards") == 0)

        await wait_until(drained, "the pipeline to drain", 120)
        await asyncio.sleep(1.0)  # anything extra (a duplicate) would show up now

        # The restarted worker took over what the killed one held (its shard buffer, at least).
        with urllib.request.urlopen(restarted.url("/metrics"), timeout=5) as response:
            metrics = response.read().decode()
        reclaimed = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                        if line.startswith("streamtune_entries_reclaimed_total{"))
        assert reclaimed > 0, "the kill -9 left nothing pending: the test did not exercise reclaim"

        clean = [json.loads(f[b"payload"]) for _, f in await redis_client.xrange(streams.CLEAN)]
        clean_ids = [c["event_id"] for c in clean]
        assert len(clean_ids) == len(set(clean_ids)), "an event reached events.clean twice"
        assert sorted(clean_ids) == sorted(mix.valid_ids)

        letters = [json.loads(f[b"payload"]) for _, f in await redis_client.xrange(streams.DLQ)]
        assert len(letters) == len(mix.malformed)
        originals = {base64.b64decode(letter["original_b64"]) for letter in letters}
        for bad in mix.malformed:
            assert bad[:1000] in {o[:1000] for o in originals}
        assert all(letter["stage"].startswith("ingestion") and letter["reason"] for letter in letters)

        # Whole values as words: a 5-digit ZIP would otherwise "occur" inside a reading or a pseudonym's hex.
        clean_blob = "\n".join(f[b"payload"].decode() for _, f in await redis_client.xrange(streams.CLEAN))
        leaked = [value for value in mix.pii_values if _occurs(value, clean_blob)]
        assert not leaked, f"PII reached events.clean: {len(leaked)} values"

        rows, manifests = await asyncio.to_thread(read_dataset, object_store, "pump-sensors")
        assert {r["event_id"] for r in rows} == mix.labeled_ids
        assert sum(m.rows for m in manifests) >= len(mix.labeled_ids)
        shard_blob = "".join(str(r["text"]) + json.dumps(r["meta"]) + r["device_id"] for r in rows)
        assert not [v for v in mix.pii_values if _occurs(v, shard_blob)], "PII reached a shard"
        assert {"PERSON", "STREET_ADDRESS", "US_SSN", "IBAN", "URL", "DATE"} <= {
            pii_type for c in clean for pii_type in c["redactions"]}, "a kind of PII was never detected"
        assert not any("pump-7" in r["device_id"] for r in rows), "device id stored in clear"
        announced = await redis_client.xrange(streams.SHARDS)
        assert sum(json.loads(f[b"payload"])["rows"] for _, f in announced) == sum(m.rows for m in manifests)
    finally:
        for process in (ingestion, anonymizer, restarted):
            if process is not None:
                process.stop()


def _occurs(value: str, blob: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(value)}(?![\w])", blob) is not None
