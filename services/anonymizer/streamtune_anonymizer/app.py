"""The anonymizer app: two batch consumers, a shard flusher, and the probes, on one ServiceRuntime."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from faststream.asgi import AsgiFastStream
from streamtune_shared import streams
from streamtune_shared.announcements import ControlFeed, RedisControlFeed
from streamtune_shared.bus import Bus, ConsumerSpec
from streamtune_shared.model_registry import RegistryLayout
from streamtune_shared.schemas import utcnow
from streamtune_shared.service import ServiceRuntime
from streamtune_shared.storage import ObjectStore

from .budget import BudgetLedger, RedisBudgetLedger
from .config import AnonymizerSettings
from .detection import EntityModel, PiiDetector, default_recognizers
from .detection.eponyms import WithoutEponyms
from .domain import AnonymizationPolicy, check_pseudonym_key
from .dp import reading_privacy
from .handlers import ANONYMIZE_GROUP, ANONYMIZE_STAGE, SHARD_GROUP, SHARD_STAGE, AnonymizeHandler, ShardWriter
from .pii_model import EntityModelSlot, PiiModelFollower, load_pii_version
from .privacy_api import create_http_app
from .private_readings import PrivateReadings
from .shards import ShardBuffer


@dataclass
class AnonymizerDeps:
    """What tests may replace: the bus, the object store, the privacy budget ledger and the clocks."""

    bus: Bus | None = None
    store: ObjectStore | None = None
    budget: BudgetLedger | None = None
    entity_models: EntityModelSlot | None = None
    feed: ControlFeed | None = None
    now: Callable[[], datetime] = utcnow
    monotonic: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class AnonymizerService:
    """The built app and its parts (tests drive the handlers directly)."""

    app: AsgiFastStream
    runtime: ServiceRuntime
    anonymizer: AnonymizeHandler
    shard_writer: ShardWriter
    entity_models: EntityModelSlot
    pii_model: PiiModelFollower | None


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
    slot = deps.entity_models or EntityModelSlot(_fallback(settings))
    patterns = default_recognizers()
    anonymizer = AnonymizeHandler(lambda: runtime.bus, policy, dedupe_ttl_s=settings.dedupe_ttl_s, now=deps.now,
                                  readings=readings if settings.dp else None, text_policy=settings.text_policy,
                                  detector=lambda: _detector(patterns, slot))
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
    follower = _pii_model_follower(settings, runtime, slot)
    if follower is not None:
        async def follow_pii_model() -> None:
            await asyncio.to_thread(slot.current)  # the fallback is built before the first batch needs it
            feed = deps.feed or RedisControlFeed(runtime.redis, (streams.MODELS_PUBLISHED,))
            await follower.run(feed, settings.announce_block_ms)

        runtime.add_task("pii-model", follow_pii_model)
    http_app = create_http_app(readings, lambda device_id: policy.pseudonymize("device_id", device_id), deps.now)
    return AnonymizerService(runtime.build(http_app), runtime, anonymizer, shard_writer, slot, follower)


def _detector(patterns: list, slot: EntityModelSlot) -> PiiDetector:
    in_use = slot.current().model
    return PiiDetector(patterns, (in_use,) if in_use is not None else ())


def _fallback(settings: AnonymizerSettings) -> Callable[[], EntityModel | None]:
    def build() -> EntityModel | None:
        if settings.ner_fallback == "none":
            return None
        from .detection.spacy_model import SpacyEntityModel  # noqa: PLC0415 - spaCy takes seconds to import

        return WithoutEponyms(SpacyEntityModel())

    return build


def _pii_model_follower(settings: AnonymizerSettings, runtime: ServiceRuntime,
                        slot: EntityModelSlot) -> PiiModelFollower | None:
    if not settings.pii_model:
        return None
    layout = RegistryLayout(settings.infra.models_prefix)

    def build(folder: Path) -> EntityModel:
        from .detection.transformer_model import TransformerEntityModel  # noqa: PLC0415 - torch import is slow

        return WithoutEponyms(TransformerEntityModel(folder, max_length=settings.pii_model_max_length,
                                                     tokens_per_forward=settings.pii_model_tokens_per_forward,
                                                     quantize=settings.pii_model_quantize,
                                                     runtime=settings.pii_model_runtime,
                                                     num_threads=settings.pii_model_threads,
                                                     outside_threshold=settings.pii_model_outside_threshold))

    return PiiModelFollower(
        slot, model_name=settings.pii_model, layout=layout, store=lambda: runtime.store,
        load=lambda version: load_pii_version(runtime.store, layout, settings.pii_model, version, build),
        rescan_s=settings.pii_model_rescan_s)


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
