"""The anonymizer app: two batch consumers, a shard flusher, and the probes, on one ServiceRuntime."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from datetime import datetime

from faststream.asgi import AsgiFastStream
from streamtune_shared import streams
from streamtune_shared.bus import Bus, ConsumerSpec
from streamtune_shared.schemas import utcnow
from streamtune_shared.service import ServiceRuntime
from streamtune_shared.storage import ObjectStore

from .budget import BudgetLedger, RedisBudgetLedger
from .config import AnonymizerSettings
from .domain import AnonymizationPolicy, check_pseudonym_key
from .dp import reading_privacy
from .handlers import ANONYMIZE_GROUP, ANONYMIZE_STAGE, SHARD_GROUP, SHARD_STAGE, AnonymizeHandler, ShardWriter
from .privacy_api import create_http_app
from .private_readings import PrivateReadings
from .shards import ShardBuffer


@dataclass
class AnonymizerDeps:
    """What tests may replace: the bus, the object store, the privacy budget ledger and the clocks."""

    bus: Bus | None = None
    store: ObjectStore | None = None
    budget: BudgetLedger | None = None
    now: Callable[[], datetime] = utcnow
    monotonic: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class AnonymizerService:
    """The built app and its parts (tests drive the handlers directly)."""

    app: AsgiFastStream
    runtime: ServiceRuntime
    anonymizer: AnonymizeHandler
    shard_writer: ShardWriter


def build_service(settings: AnonymizerSettings, deps: AnonymizerDeps | None = None) -> AnonymizerService:
    """Wire the consumers, the flusher and the stop hook; no client is opened until startup."""
    deps = deps or AnonymizerDeps()
    key = settings.pseudonym_key.get_secret_value()
    check_pseudonym_key(key, allow_dev_key=settings.allow_dev_key)
    runtime = ServiceRuntime(settings.infra, name="anonymizer", bus=deps.bus, store=deps.store, needs_store=True)
    policy = AnonymizationPolicy(key=key.encode(), meta_actions=dict(settings.meta_policy),
                                 generalization=dict(settings.generalization))
    readings = PrivateReadings(reading_privacy(settings.dp), _budget_ledger(runtime, deps.budget),
                               metric_devices=settings.dp_metric_devices)
    anonymizer = AnonymizeHandler(lambda: runtime.bus, policy, dedupe_ttl_s=settings.dedupe_ttl_s, now=deps.now,
                                  readings=readings if settings.dp else None)
    runtime.add_consumer(ConsumerSpec(streams.VALID, ANONYMIZE_GROUP, stage=ANONYMIZE_STAGE,
                                      max_records=settings.batch_size, claim_idle_ms=settings.claim_idle_ms,
                                      max_deliveries=settings.max_deliveries), anonymizer.process)
    shard_spec = ConsumerSpec(streams.CLEAN, SHARD_GROUP, stage=SHARD_STAGE, max_records=settings.batch_size,
                              claim_idle_ms=settings.shard_claim_idle_ms, max_deliveries=settings.max_deliveries)
    shard_writer = ShardWriter(
        lambda: runtime.bus, lambda: runtime.store,
        ShardBuffer(max_rows=settings.shard_max_rows, max_age_s=settings.shard_max_age_s),
        claims=lambda: shard_consumer, buffer_limit=settings.shard_buffer_limit, monotonic=deps.monotonic,
        k_anonymity=settings.k_anonymity, generalization=settings.generalization,
    )
    shard_consumer = runtime.add_consumer(shard_spec, shard_writer.process)
    runtime.add_task("shard-flusher", shard_writer.run_flusher)
    runtime.add_stop_hook(shard_writer.flush_all)
    http_app = create_http_app(readings, lambda device_id: policy.pseudonymize("device_id", device_id), deps.now)
    return AnonymizerService(runtime.build(http_app), runtime, anonymizer, shard_writer)


def _budget_ledger(runtime: ServiceRuntime, given: BudgetLedger | None) -> Callable[[], BudgetLedger]:
    """The given ledger, or one on the bus's Redis, made at first use (after startup)."""

    @cache
    def ledger() -> BudgetLedger:
        if given is not None:
            return given
        redis = getattr(runtime.bus, "redis", None)
        if redis is None:
            raise RuntimeError("anonymizer: differential privacy needs a Redis bus (or a budget ledger in the deps)")
        return RedisBudgetLedger(redis)

    return ledger


def create_app(settings: AnonymizerSettings, deps: AnonymizerDeps | None = None) -> AsgiFastStream:
    """The anonymizer as an ASGI FastStream app (/healthz, /readyz, /metrics, /privacy/devices)."""
    return build_service(settings, deps).app
