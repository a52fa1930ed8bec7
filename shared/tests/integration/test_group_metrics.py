"""Lag and pending gauges against a real redis-server; a running service exports them and its batch sizes."""

from __future__ import annotations

import json

import httpx
from prometheus_client import REGISTRY
from streamtune_shared import group_metrics
from streamtune_shared.bus import ConsumerSpec, Entry, RedisBus
from streamtune_shared.group_metrics import refresh
from streamtune_shared.service import ServiceRuntime
from streamtune_shared.testing import wait_until


def gauge(name: str, stream: str, group: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"stream": stream, "group": group})


async def add(redis, stream: str, n: int) -> list[bytes]:
    return [await redis.xadd(stream, {"payload": json.dumps({"n": i})}) for i in range(n)]


async def test_refresh_exports_lag_and_pending_of_a_group(redis_client):
    await add(redis_client, "gm.in", 5)
    await redis_client.xgroup_create("gm.in", "g", id="0")
    await redis_client.xreadgroup("g", "c1", {"gm.in": ">"}, count=2)  # 2 delivered, unacked; 3 not delivered
    [backlog] = await refresh(redis_client, {"gm.in": ["g"]})
    assert (backlog.lag, backlog.pending) == (3, 2)
    assert gauge("streamtune_consumer_group_lag", "gm.in", "g") == 3
    assert gauge("streamtune_consumer_group_pending", "gm.in", "g") == 2


async def test_lag_is_counted_when_a_deletion_leaves_redis_unable_to_tell_it(redis_client):
    ids = await add(redis_client, "gm.del", 6)
    await redis_client.xgroup_create("gm.del", "g", id="0")
    await redis_client.xreadgroup("g", "c1", {"gm.del": ">"}, count=1)
    await redis_client.xdel("gm.del", ids[3])  # an undelivered entry deleted: XINFO GROUPS lag is nil
    assert (await redis_client.xinfo_groups("gm.del"))[0]["lag"] is None
    [backlog] = await refresh(redis_client, {"gm.del": ["g"]})
    assert (backlog.lag, backlog.pending) == (4, 1)
    assert gauge("streamtune_consumer_group_lag", "gm.del", "g") == 4


async def test_a_missing_stream_or_group_exports_nothing(redis_client):
    await add(redis_client, "gm.nogroup", 1)
    assert await refresh(redis_client, {"gm.absent": ["g"], "gm.nogroup": ["g"]}) == []
    assert gauge("streamtune_consumer_group_lag", "gm.absent", "g") is None


async def test_a_running_service_shows_its_groups_backlog_on_metrics(redis_client, infra_settings, monkeypatch):
    monkeypatch.setattr(group_metrics, "REFRESH_S", 0.1)
    await add(redis_client, "gm.svc", 6)
    runtime = ServiceRuntime(infra_settings, name="gm-test")

    async def ack_even(entries: list[Entry]) -> None:  # odd entries stay pending
        bus: RedisBus = runtime.bus
        await bus.ack("gm.svc", "gm-group", [e.id for e in entries if json.loads(e.payload)["n"] % 2 == 0])

    runtime.add_consumer(ConsumerSpec("gm.svc", "gm-group", stage="test", max_records=2, block_ms=50), ack_even)
    app = runtime.build()

    async def metrics_show_the_backlog() -> bool:
        text = (await client.get("/metrics")).text
        return ('streamtune_consumer_group_pending{group="gm-group",stream="gm.svc"} 3.0' in text
                and 'streamtune_consumer_group_lag{group="gm-group",stream="gm.svc"} 0.0' in text)

    async with app.start_lifespan_context():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
            await wait_until(lambda: _ready(client), "the service ready", 20)
            await wait_until(metrics_show_the_backlog, "pending 3 and lag 0 on /metrics", 20)
    labels = {"stream": "gm.svc", "group": "gm-group"}
    assert REGISTRY.get_sample_value("streamtune_batch_size_sum", labels) == 6  # every entry, in batches of <= 2
    assert 3 <= REGISTRY.get_sample_value("streamtune_batch_size_count", labels) <= 6


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200

