"""Wiring the predictor: consumer of events.clean, model reloader, POST /predict, probes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from faststream.asgi import AsgiFastStream
from streamtune_shared import streams
from streamtune_shared.bus import Bus, ConsumerSpec
from streamtune_shared.model_registry import RegistryLayout
from streamtune_shared.service import ServiceRuntime
from streamtune_shared.storage import ObjectStore

from .api import create_http_app
from .config import PredictorSettings
from .handlers import GROUP, STAGE, PredictionHandler
from .loading import load_version
from .registry import ModelRegistry
from .reloading import AnnouncementFeed, ModelReloader, RedisAnnouncementFeed


@dataclass
class PredictorDeps:
    """What tests may replace: the bus, the object store, the source of announcements."""

    bus: Bus | None = None
    store: ObjectStore | None = None
    announcements: AnnouncementFeed | None = None


@dataclass
class PredictorService:
    """The built service: the ASGI app and the parts tests drive directly."""

    app: AsgiFastStream
    runtime: ServiceRuntime
    registry: ModelRegistry
    handler: PredictionHandler
    reloader: ModelReloader


def build_service(settings: PredictorSettings, deps: PredictorDeps | None = None) -> PredictorService:
    """Assemble the predictor; nothing connects until the app starts."""
    deps = deps or PredictorDeps()
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    runtime = ServiceRuntime(settings.infra, name="predictor", bus=deps.bus, store=deps.store, needs_store=True)
    registry = ModelRegistry(settings.models, settings.pinned)
    spec = ConsumerSpec(streams.CLEAN, GROUP, stage=STAGE, max_records=settings.batch_size,
                        block_ms=settings.max_wait_ms, claim_idle_ms=settings.claim_idle_ms,
                        max_deliveries=settings.max_deliveries)
    handler = PredictionHandler(registry, lambda: runtime.bus)
    runtime.add_consumer(spec, handler.process)
    layout = RegistryLayout(settings.infra.models_prefix)
    reloader = ModelReloader(
        registry, layout=layout,
        list_keys=lambda prefix: runtime.store.list_keys(prefix),
        load=lambda name, version: load_version(runtime.store, layout, name, version,
                                                max_length=settings.max_length, batch_size=settings.batch_size),
        rescan_s=settings.rescan_s,
    )

    async def follow_models() -> None:
        feed = deps.announcements or RedisAnnouncementFeed(runtime.redis)
        await reloader.run(feed, settings.announce_block_ms)

    runtime.add_task("models", follow_models)
    runtime.add_stopping_hook(handler.stop_holding)
    app = runtime.build(create_http_app(registry), ready=lambda: runtime.started and registry.ready())
    return PredictorService(app=app, runtime=runtime, registry=registry, handler=handler, reloader=reloader)


def create_app(settings: PredictorSettings, deps: PredictorDeps | None = None) -> AsgiFastStream:
    """The predictor as an ASGI app (FastStream subscribers + HTTP routes + probes)."""
    return build_service(settings, deps).app
