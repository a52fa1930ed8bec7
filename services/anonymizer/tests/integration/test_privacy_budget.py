"""The per-device privacy budget on a real Redis: concurrent spends never overspend, and two anonymizer
processes on one consumer group share one device's budget; events past it leave with no readings.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from datetime import UTC, datetime, timedelta

import processes
from redis.asyncio import Redis
from streamtune_anonymizer.budget import Charge, RedisBudgetLedger, budget_key
from streamtune_anonymizer.domain import pseudonym
from streamtune_anonymizer.dp import BUDGET_SPENT_NOTE
from streamtune_shared import streams
from streamtune_shared.testing import wait_until

KEY = "integration-key-0123456789abcdefghijklmnopqrstuvwxyz"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
EVENTS = 200
EPSILON, BUDGET = 0.5, 10.0  # 20 events of the device fit in one window
DP = {"pumps": {"mechanism": "laplace", "epsilon_per_event": EPSILON, "sensors": {"temp": [0, 100]},
                "budget_epsilon": BUDGET, "window_s": 86_400}}


async def test_concurrent_spends_on_two_connections_grant_exactly_the_budget(redis_client, infra_env):
    url = infra_env["STREAMTUNE_REDIS_URL"]
    clients = [Redis.from_url(url), Redis.from_url(url)]
    ledgers = [RedisBudgetLedger(client) for client in clients]

    async def spend(ledger: RedisBudgetLedger, worker: int) -> int:
        granted = 0
        for batch in range(25):
            charges = [Charge("pumps", "ps_device", f"w{worker}-{batch}-{i}", EPSILON, BUDGET, 86_400)
                       for i in range(4)]
            granted += sum(g.granted for g in await ledger.spend(charges, NOW))
        return granted

    try:
        granted = await asyncio.gather(*(spend(ledger, i) for i, ledger in enumerate(ledgers)))
    finally:
        for client in clients:
            await client.aclose()
    assert sum(granted) == int(BUDGET / EPSILON)
    assert await ledgers[0].spent("pumps", "ps_device", 86_400, NOW) == BUDGET
    assert await ledgers[0].spent("pumps", "ps_device", 86_400, NOW + timedelta(days=1)) == 0.0
    next_day = await ledgers[0].spend([Charge("pumps", "ps_device", "tomorrow", EPSILON, BUDGET, 86_400)],
                                      NOW + timedelta(days=1))
    assert next_day[0].granted and next_day[0].spent_epsilon == EPSILON


async def test_a_replica_with_a_lagging_clock_does_not_reopen_a_spent_window(redis_client):
    ledger = RedisBudgetLedger(redis_client)
    today = [Charge("pumps", "ps_device", f"e{i}", EPSILON, EPSILON * 2, 86_400) for i in range(2)]
    assert all(g.granted for g in await ledger.spend(today, NOW + timedelta(days=1)))
    late = await ledger.spend([Charge("pumps", "ps_device", "late", EPSILON, EPSILON * 2, 86_400)], NOW)
    assert not late[0].granted


def _events() -> list[bytes]:
    now = datetime.now(UTC)
    return [json.dumps({"schema_version": 1, "event_id": f"dp-{i}", "device_id": "pump-7", "dataset": "pumps",
                        "ts": (now - timedelta(seconds=EVENTS - i)).isoformat(), "readings": {"temp": 61.5},
                        "ingested_at": now.isoformat()}).encode() for i in range(EVENTS)]


async def _get(service: processes.ServiceProcess, path: str) -> str:
    def read() -> str:
        with urllib.request.urlopen(service.url(path), timeout=5) as response:
            return response.read().decode()
    return await asyncio.to_thread(read)


async def _metric_sum(service: processes.ServiceProcess, name: str) -> float:
    text = await _get(service, "/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def test_two_anonymizer_processes_share_one_device_budget(redis_client, infra_settings, tmp_path):
    env = {"ANONYMIZER_PSEUDONYM_KEY": KEY, "ANONYMIZER_DP": json.dumps(DP), "ANONYMIZER_BATCH_SIZE": "4",
           "STREAMTUNE_REDIS_URL": os.environ["STREAMTUNE_REDIS_URL"]}
    workers = [processes.ServiceProcess("anonymizer", env, processes.free_port(), tmp_path / f"anonymizer-{i}.log")
               for i in range(2)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            await asyncio.to_thread(worker.wait_until, "/readyz")
        pipe = redis_client.pipeline(transaction=False)
        for payload in _events():
            pipe.xadd(streams.VALID, {"payload": payload})
        await pipe.execute()

        async def all_clean() -> bool:
            return await redis_client.xlen(streams.CLEAN) >= EVENTS

        await wait_until(all_clean, "every event in events.clean", 90)
        handled = [await _metric_sum(w, 'streamtune_anonymizer_events_total{outcome="anonymized"}') for w in workers]
        spent_gauges = [await _metric_sum(w, "streamtune_anonymizer_dp_epsilon_spent{") for w in workers]
        body = await _get(workers[0], "/privacy/devices?device_id=pump-7")
    finally:
        for worker in workers:
            await asyncio.to_thread(worker.stop)

    clean = [json.loads(fields[b"payload"]) for _, fields in await redis_client.xrange(streams.CLEAN)]
    assert len(clean) == EVENTS and len({c["event_id"] for c in clean}) == EVENTS
    noised = [c for c in clean if c["readings"]]
    suppressed = [c for c in clean if not c["readings"]]
    assert len(noised) == int(BUDGET / EPSILON) and len(suppressed) == EVENTS - len(noised)
    assert all(c["readings"]["temp"] != 61.5 for c in noised), "no reading passes raw"
    assert all(c["notes"] == [BUDGET_SPENT_NOTE] for c in suppressed)
    assert all(h > 0 for h in handled) and sum(handled) == EVENTS, "both processes worked on the batch"
    device = pseudonym(KEY.encode(), "device_id", "pump-7")
    assert int(await redis_client.hget(budget_key("pumps", device), "spent")) == int(BUDGET * 1_000_000)
    assert max(spent_gauges) == BUDGET
    report = json.loads(body)
    assert report["device"] == device and report["datasets"]["pumps"]["spent_epsilon"] == BUDGET
    assert not [key for key in await redis_client.keys("streamtune:anonymizer:dp:*") if b"pump-7" in key]
