"""Wiring: the events.raw consumer, POST /events and the probes, on one ServiceRuntime."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from faststream.asgi import AsgiFastStream
from redis.exceptions import RedisError
from streamtune_shared import streams
from streamtune_shared.bus import Bus, ConsumerSpec
from streamtune_shared.schemas import utcnow
from streamtune_shared.service import ServiceRuntime

from .config import IngestionSettings
from .handlers import GROUP, STAGE, RawEventHandler
from .http_api import create_http_app
from .stats_store import DeviceStatsStore, InMemoryDeviceStats, RedisDeviceStats

READY_PING_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class IngestionDeps:
    """What tests may replace: the bus (a fake skips Redis entirely) and the clock."""

    bus: Bus | None = None
    clock: Callable[[], datetime] = utcnow


def create_app(settings: IngestionSettings, deps: IngestionDeps | None = None) -> AsgiFastStream:
    """The ingestion service as an ASGI app; clients are made when its lifespan starts."""
    deps = deps or IngestionDeps()
    runtime = ServiceRuntime(settings.infra, name="ingestion", bus=deps.bus)
    stats = device_stats_of(runtime) if settings.device_stats else lambda: None
    handler = RawEventHandler(lambda: runtime.bus, settings.policy(), settings.dedupe_ttl_s, deps.clock, stats)
    runtime.add_consumer(consumer_spec(settings), handler)
    http_app = create_http_app(settings, lambda: runtime.bus, deps.clock, stats)

    async def ready() -> bool:
        return await is_ready(runtime)

    return runtime.build(http_app, ready=ready)


def device_stats_of(runtime: ServiceRuntime) -> Callable[[], DeviceStatsStore | None]:
    """The statistics store: in Redis once the runtime has a client, in memory on an injected fake bus."""
    made: list[DeviceStatsStore] = []

    def current() -> DeviceStatsStore | None:
        if not made:
            if runtime.redis is not None:
                made.append(RedisDeviceStats(runtime.redis))
            elif runtime.started:
                made.append(InMemoryDeviceStats())
            else:
                return None
        return made[0]

    return current


def consumer_spec(settings: IngestionSettings) -> ConsumerSpec:
    """The events.raw consumer group and its delivery policy, from the settings."""
    return ConsumerSpec(
        streams.RAW, GROUP, stage=STAGE,
        max_records=settings.batch_size, block_ms=settings.block_ms,
        claim_idle_ms=settings.claim_idle_ms, max_deliveries=settings.max_deliveries,
    )


async def is_ready(runtime: ServiceRuntime) -> bool:
    """Started, and Redis answers PING (an injected fake bus has no Redis to ask)."""
    if not runtime.started:
        return False
    if runtime.redis is None:
        return True
    try:
        return bool(await asyncio.wait_for(runtime.redis.ping(), READY_PING_TIMEOUT_S))
    except (RedisError, OSError, TimeoutError):
        return False
