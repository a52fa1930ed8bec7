"""The trainer app: a ``train.requests`` consumer (one request at a time), training-report routes, probes, metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from faststream.asgi import AsgiFastStream
from starlette.applications import Starlette
from streamtune_shared import streams
from streamtune_shared.bus import Bus, ConsumerSpec, consumer_name
from streamtune_shared.model_registry import RegistryLayout
from streamtune_shared.schemas import utcnow
from streamtune_shared.service import ServiceRuntime
from streamtune_shared.storage import ObjectStore

from .config import TrainerSettings
from .handlers import GROUP, STAGE, TrainRequestHandler
from .http_api import create_http_app


@dataclass
class TrainerDeps:
    """What tests replace: the bus, the object store, the clock, the consumer name, a per-epoch hook.

    ``after_epoch(epoch)`` runs in the training thread after each epoch's checkpoint is stored;
    raising from it simulates a crash at that point.
    """

    bus: Bus | None = None
    store: ObjectStore | None = None
    clock: Callable[[], datetime] = utcnow
    consumer: str | None = None
    after_epoch: Callable[[int], None] | None = None


@dataclass
class TrainerService:
    """The pieces of a trainer, wired: the runtime (broker, clients), the request handler, the report routes."""

    runtime: ServiceRuntime
    handler: TrainRequestHandler
    http_app: Starlette


def create_service(settings: TrainerSettings, deps: TrainerDeps | None = None) -> TrainerService:
    """Wire the runtime, the consumer spec and the handler (no client is opened here)."""
    deps = deps or TrainerDeps()
    runtime = ServiceRuntime(settings.infra, name="trainer", bus=deps.bus, store=deps.store, needs_store=True)
    spec = ConsumerSpec(streams.TRAIN_REQUESTS, GROUP, stage=STAGE, consumer=deps.consumer or consumer_name(),
                        max_records=1, claim_idle_ms=settings.claim_idle_ms, max_deliveries=settings.max_deliveries)
    handler = TrainRequestHandler(lambda: runtime.bus, lambda: runtime.store, settings,
                                  clock=deps.clock, after_epoch=deps.after_epoch)
    runtime.add_consumer(spec, handler.process)
    # Before the in-flight batch is drained: a running training stops at its next step, checkpoint kept.
    runtime.add_stopping_hook(handler.request_stop)
    http_app = create_http_app(lambda: runtime.store, RegistryLayout(settings.infra.models_prefix))
    return TrainerService(runtime, handler, http_app)


def create_app(settings: TrainerSettings, deps: TrainerDeps | None = None) -> AsgiFastStream:
    """The trainer as an ASGI FastStream app: consumer, report routes, /healthz, /readyz, /metrics."""
    service = create_service(settings, deps)
    return service.runtime.build(service.http_app)
