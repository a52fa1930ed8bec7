"""The delivery guarantees of the shared bus, against a real redis-server."""

from __future__ import annotations

import asyncio
import json

from prometheus_client import REGISTRY
from streamtune_shared import streams
from streamtune_shared.schemas import DeadLetter
from streamtune_shared.bus import BatchConsumer, ConsumerSpec, Entry, Forward, ForwardResult, RedisBus, make_broker
from streamtune_shared.testing import wait_until


async def test_entries_written_before_the_worker_starts_are_consumed(redis_client, infra_env):
    for i in range(5):
        await redis_client.xadd("t.in", {"payload": json.dumps({"n": i})})
    bus = RedisBus(redis_client)
    seen: list[str] = []

    async def process(entries: list[Entry]) -> None:
        seen.extend(json.loads(e.payload)["n"] for e in entries)
        await bus.forward("t.in", "g", [Forward(e.id, "t.out", e.payload) for e in entries])

    consumer = BatchConsumer(ConsumerSpec("t.in", "g", stage="test", max_records=2), process, lambda: bus)
    processed_before = _processed("t.in", "g")
    broker = make_broker(infra_env["STREAMTUNE_REDIS_URL"])
    consumer.register(broker)
    await consumer.start()
    async with broker:
        await broker.start()
        await wait_until(lambda: _xlen(redis_client, "t.out", 5), "5 entries in t.out", 10)
    await consumer.stop_reclaimer()
    await consumer.drain()
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert (await redis_client.xpending("t.in", "g"))["pending"] == 0
    raw = await redis_client.xrange("t.out")
    assert json.loads(raw[0][1][b"payload"]) == {"n": 0}
    assert _processed("t.in", "g") - processed_before == 5


def _processed(stream: str, group: str) -> float:
    labels = {"stream": stream, "group": group, "outcome": "processed"}
    return REGISTRY.get_sample_value("streamtune_entries_total", labels) or 0.0


async def _xlen(redis, stream: str, n: int) -> bool:
    return await redis.xlen(stream) >= n


async def test_forward_is_atomic_and_dedupes(redis_client):
    bus = RedisBus(redis_client)
    await bus.ensure_group("t.in", "g")
    ids = [await redis_client.xadd("t.in", {"payload": b"x"}) for _ in range(3)]
    await redis_client.xreadgroup("g", "c", {"t.in": ">"})
    results = await bus.forward("t.in", "g", [
        Forward(ids[0].decode(), "t.out", b"a", dedupe_key="d:1"),
        Forward(ids[1].decode(), "t.out", b"b", dedupe_key="d:1"),
        Forward(ids[2].decode(), None),
    ])
    assert results == [ForwardResult.PUBLISHED, ForwardResult.DUPLICATE, ForwardResult.PUBLISHED]
    assert [bool(r) for r in results] == [True, False, True]
    assert await redis_client.xlen("t.out") == 1
    assert (await redis_client.xpending("t.in", "g"))["pending"] == 0


async def test_an_entry_finished_elsewhere_after_a_reclaim_is_not_published_twice(redis_client):
    bus = RedisBus(redis_client)
    await bus.ensure_group("t.in", "g")
    entry_id = (await redis_client.xadd("t.in", {"payload": b"x"})).decode()
    await redis_client.xreadgroup("g", "slow", {"t.in": ">"})  # a worker that stalls with the entry in hand
    await redis_client.xautoclaim("t.in", "g", "fast", min_idle_time=0, start_id="0-0")  # reclaimed meanwhile
    stale_before = REGISTRY.get_sample_value("streamtune_entries_already_acked_total",
                                             {"stream": "t.in", "group": "g"}) or 0.0
    assert await bus.forward("t.in", "g", [Forward(entry_id, "t.out", b"by-fast", dedupe_key="d:x")]) == [
        ForwardResult.PUBLISHED]
    # The stalled worker finishes late: its output must not appear, nor its dedupe key be set.
    late = await bus.forward("t.in", "g", [Forward(entry_id, "t.out", b"by-slow", dedupe_key="d:y")])
    assert late == [ForwardResult.ALREADY_ACKED] and not late[0]
    assert await redis_client.exists("d:y") == 0
    assert [fields[b"payload"] for _, fields in await redis_client.xrange("t.out")] == [b"by-fast"]
    assert REGISTRY.get_sample_value("streamtune_entries_already_acked_total",
                                     {"stream": "t.in", "group": "g"}) == stale_before + 1
    assert (await redis_client.xpending("t.in", "g"))["pending"] == 0


async def test_a_shard_whose_entries_were_all_finished_elsewhere_is_not_announced_again(redis_client):
    bus = RedisBus(redis_client)
    await bus.ensure_group("t.in", "g")
    ids = [(await redis_client.xadd("t.in", {"payload": b"x"})).decode() for _ in range(3)]
    await redis_client.xreadgroup("g", "slow", {"t.in": ">"})
    message = DeadLetter(stage="test", reason="stands in for any announcement", original_b64="")
    assert await bus.ack_and_publish("t.in", "g", ids[:2], "t.out", message) == 2  # finished elsewhere
    assert await bus.ack_and_publish("t.in", "g", ids[:2], "t.out", message) == 0  # the late one
    assert await redis_client.xlen("t.out") == 1
    assert await bus.ack_and_publish("t.in", "g", ids, "t.out", message) == 1  # partly still ours
    assert await redis_client.xlen("t.out") == 2


async def test_entries_in_hand_stay_claimed_so_no_reclaimer_takes_them(redis_client):
    bus = RedisBus(redis_client)
    await bus.ensure_group("t.in", "g")
    for i in range(3):
        await redis_client.xadd("t.in", {"payload": json.dumps({"n": i})})
    spec = ConsumerSpec("t.in", "g", stage="test", consumer="busy", max_records=2, claim_idle_ms=300)
    inside = asyncio.Event()

    async def slow(entries: list[Entry]) -> None:
        inside.set()
        await asyncio.sleep(1.5)  # five times claim_idle_ms
        await bus.forward("t.in", "g", [Forward(e.id, "t.out", e.payload) for e in entries])

    busy = BatchConsumer(spec, slow, lambda: bus)
    thief = BatchConsumer(ConsumerSpec("t.in", "g", stage="test", consumer="thief", claim_idle_ms=300),
                          slow, lambda: bus)
    await busy.start()
    await busy.stop_reclaimer()  # only the keeper runs: the thief is the one that reclaims
    [[_, read]] = await redis_client.xreadgroup("g", "busy", {"t.in": ">"}, count=3)
    entries = [Entry(i.decode(), f) for i, f in read]
    busy.hold([entries[2].id])  # e.g. a buffered entry whose batch is over
    batch = asyncio.create_task(busy._run(entries[:2]))
    await inside.wait()
    for _ in range(6):
        await asyncio.sleep(0.25)
        assert await thief.reclaim_once() == 0
    await batch
    busy.release([entries[2].id])
    await busy.drain()
    assert busy.held == []
    pending = await redis_client.xpending_range("t.in", "g", min="-", max="+", count=10)
    assert [(p["message_id"].decode(), p["consumer"].decode(), p["times_delivered"]) for p in pending] == [
        (entries[2].id, "busy", 1)]
    assert await redis_client.xlen("t.out") == 2


async def test_pending_entries_of_a_dead_consumer_are_reclaimed_then_dead_lettered(redis_client):
    bus = RedisBus(redis_client)
    await bus.ensure_group("t.in", "g")
    await redis_client.xadd("t.in", {"payload": b"good"})
    poison = await redis_client.xadd("t.in", {"payload": b"poison"})
    # A consumer that read both and died.
    await redis_client.xreadgroup("g", "dead-1", {"t.in": ">"})

    async def process(entries: list[Entry]) -> None:
        if any(e.payload == b"poison" for e in entries):
            raise RuntimeError("cannot handle this one")
        await bus.forward("t.in", "g", [Forward(e.id, "t.out", e.payload) for e in entries])

    spec = ConsumerSpec("t.in", "g", stage="test", claim_idle_ms=0, max_deliveries=2)
    consumer = BatchConsumer(spec, process, lambda: bus)
    for _ in range(3):
        await consumer.reclaim_once()
    out = await redis_client.xrange("t.out")
    assert [fields[b"payload"] for _, fields in out] == [b"good"]
    dlq = await redis_client.xrange(streams.DLQ)
    assert len(dlq) == 1
    letter = json.loads(dlq[0][1][b"payload"])
    assert letter["entry_id"] == poison.decode() and letter["original"] == "poison"
    assert letter["deliveries"] == 3 and "gave up" in letter["reason"]
    assert (await redis_client.xpending("t.in", "g"))["pending"] == 0


async def test_shutdown_finishes_the_batch_in_hand(redis_client, infra_settings):
    from streamtune_shared.service import ServiceRuntime

    runtime = ServiceRuntime(infra_settings, name="slow")
    started = asyncio.Event()

    async def slow(entries: list[Entry]) -> None:
        started.set()
        await asyncio.sleep(1.0)  # shutdown arrives while this batch is in hand
        await runtime.bus.forward("t.in", "g", [Forward(e.id, "t.out", e.payload) for e in entries])

    runtime.add_consumer(ConsumerSpec("t.in", "g", stage="test", max_records=10), slow)
    app = runtime.build()
    for i in range(5):
        await redis_client.xadd("t.in", {"payload": json.dumps({"n": i})})
    async with app.start_lifespan_context():
        await asyncio.wait_for(started.wait(), 10)
    assert await redis_client.xlen("t.out") == 5
    assert (await redis_client.xpending("t.in", "g"))["pending"] == 0


async def test_consumers_of_dead_processes_are_pruned_once_idle_and_empty(redis_client):
    bus = RedisBus(redis_client)
    await bus.ensure_group("t.in", "g")
    await redis_client.xadd("t.in", {"payload": b"x"})
    await redis_client.xreadgroup("g", "dead-with-pending", {"t.in": ">"})
    await redis_client.xgroup_createconsumer("t.in", "g", "dead-empty")
    await asyncio.sleep(0.05)
    spec = ConsumerSpec("t.in", "g", stage="test", consumer="alive", prune_idle_ms=10)
    assert await BatchConsumer(spec, lambda entries: None, lambda: bus).prune_consumers() == 1
    names = {c["name"] for c in await redis_client.xinfo_consumers("t.in", "g")}
    assert names == {b"dead-with-pending"}
