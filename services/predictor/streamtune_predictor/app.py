"""Wiring the predictor: consumer of events.clean, rollout follower, POST /predict, probes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from faststream.asgi import AsgiFastStream
from streamtune_shared import streams
from streamtune_shared.announcements import ControlFeed, RedisControlFeed
from streamtune_shared.bus import Bus, ConsumerSpec, consumer_name
from streamtune_shared.model_registry import RegistryLayout
from streamtune_shared.rollout_control import RedisRolloutControl
from streamtune_shared.service import ServiceRuntime
from streamtune_shared.storage import ObjectStore

from .api import create_http_app
from .config import PredictorSettings
from .device_windows import DeviceWindowStore, InMemoryDeviceWindows, RedisDeviceWindows
from .handlers import GROUP, STAGE, PredictionHandler
from .loading import load_version
from .registry import ModelRegistry
from .reloading import RolloutControl, RolloutFollower


@dataclass
class PredictorDeps:
    """What tests may replace: the bus, the object store, the announcement feed, the rollout control."""

    bus: Bus | None = None
    store: ObjectStore | None = None
    feed: ControlFeed | None = None
    control: RolloutControl | None = None


@dataclass
class PredictorService:
    """The built service: the ASGI app and the parts tests drive directly."""

    app: AsgiFastStream
    runtime: ServiceRuntime
    registry: ModelRegistry
    handler: PredictionHandler
    follower: RolloutFollower


def build_service(settings: PredictorSettings, deps: PredictorDeps | None = None) -> PredictorService:
    """Assemble the predictor; nothing connects until the app starts."""
    deps = deps or PredictorDeps()
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    runtime = ServiceRuntime(settings.infra, name="predictor", bus=deps.bus, store=deps.store, needs_store=True)
    registry = ModelRegistry(settings.models, settings.pinned)
    layout = RegistryLayout(settings.infra.models_prefix)
    spec = ConsumerSpec(streams.CLEAN, GROUP, stage=STAGE, consumer=consumer_name(), max_records=settings.batch_size,
                        block_ms=settings.max_wait_ms, claim_idle_ms=settings.claim_idle_ms,
                        max_deliveries=settings.max_deliveries)
    controls: list[RolloutControl] = [deps.control] if deps.control is not None else []

    def control() -> RolloutControl:
        if not controls:  # made once Redis is up: the runtime opens its clients at startup
            controls.append(RedisRolloutControl(runtime.redis, runtime.store, layout, spec.consumer))
        return controls[0]

    handler = PredictionHandler(registry, lambda: runtime.bus, shadow_sink=control, windows=device_windows_of(runtime))
    runtime.add_consumer(spec, handler.process)
    follower = RolloutFollower(
        registry, layout=layout, store=lambda: runtime.store, control=control,
        load=lambda name, version: load_version(runtime.store, layout, name, version,
                                                max_length=settings.max_length, batch_size=settings.batch_size,
                                                tokens_per_forward=settings.tokens_per_forward),
        rescan_s=settings.rescan_s,
    )

    async def follow_rollout() -> None:
        await follower.run(deps.feed or RedisControlFeed(runtime.redis), settings.announce_block_ms)

    runtime.add_task("rollout", follow_rollout)
    runtime.add_stopping_hook(handler.stop_holding)
    runtime.add_stop_hook(follower.leave)
    app = runtime.build(create_http_app(registry), ready=lambda: runtime.started and registry.ready())
    return PredictorService(app=app, runtime=runtime, registry=registry, handler=handler, follower=follower)


def device_windows_of(runtime: ServiceRuntime) -> Callable[[], DeviceWindowStore | None]:
    """Each device's window: in Redis once the runtime has a client (shared by replicas), in memory on a fake bus."""
    made: list[DeviceWindowStore] = []

    def current() -> DeviceWindowStore | None:
        if not made:
            if runtime.redis is not None:
                made.append(RedisDeviceWindows(runtime.redis))
            elif runtime.started:
                made.append(InMemoryDeviceWindows())
            else:
                return None
        return made[0]

    return current


def create_app(settings: PredictorSettings, deps: PredictorDeps | None = None) -> AsgiFastStream:
    """The predictor as an ASGI app (FastStream subscribers + HTTP routes + probes)."""
    return build_service(settings, deps).app
