"""The two consumers: events.valid -> events.clean (anonymize) and events.clean -> dataset shards.

Thin: decode entries, call the domain, store, then publish and acknowledge in one atomic step.
Logs carry entry ids, event ids, datasets and counts only, never a payload, a text or a device id.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

import structlog
from pydantic import ValidationError
from streamtune_shared import streams
from streamtune_shared.bus import BatchConsumer, Bus, Entry, Forward, ForwardResult, dead_letter_forward, encode
from streamtune_shared.datasets import JSON_TYPE, PARQUET_TYPE, new_shard_id
from streamtune_shared.schemas import CleanEvent, FieldError, ValidEvent, field_errors
from streamtune_shared.storage import ObjectStore

from . import metrics
from .batch_redaction import DetectionFailed, redact_batch
from .detection import PiiDetector
from .domain import (
    AnonymizationPolicy,
    InvalidPayload,
    anonymize_event,
    decode_clean_event,
    decode_valid_event,
)
from .generalization import DatasetGeneralization
from .kanonymity import KAnonymityRule
from .private_readings import PrivateReadings
from .redaction import Redaction, keyed_pseudonyms, pattern_detector
from .shards import ShardBuffer, build_shard
from .text_policy import TextPolicy

log = structlog.get_logger(__name__)

ANONYMIZE_GROUP = "anonymizer"
ANONYMIZE_STAGE = "anonymizer"
SHARD_GROUP = "anonymizer-shards"
SHARD_STAGE = "shard-writer"
DEDUPE_KEY_PREFIX = "streamtune:anonymizer:seen:"
FLUSH_CHECK_S = 0.5
MAX_RETRY_DELAY_S = 30.0


class _Handled(NamedTuple):
    forward: Forward
    event_id: str | None
    redactions: dict[str, int] | None  # None: dead-lettered
    clean: CleanEvent | None = None


class AnonymizeHandler:
    """events.valid -> events.clean, each event_id at most once; bad payloads -> events.dlq."""

    def __init__(self, bus: Callable[[], Bus], policy: AnonymizationPolicy, *, dedupe_ttl_s: int,
                 now: Callable[[], datetime], readings: PrivateReadings | None = None,
                 detector: Callable[[], PiiDetector] = pattern_detector, text_policy: TextPolicy | None = None) -> None:
        self._bus = bus
        self._policy = policy
        self._dedupe_ttl_s = dedupe_ttl_s
        self._now = now
        self._readings = readings
        self._detector = detector
        self._text_policy = text_policy or TextPolicy()
        self._pseudonym_of = keyed_pseudonyms(policy.pseudonymize)

    async def process(self, entries: list[Entry]) -> None:
        """Anonymize a batch; every entry is published (or dead-lettered) and acknowledged atomically."""
        now = self._now()
        decoded = [_decode(entry) for entry in entries]
        events = [event if isinstance(event, ValidEvent) else None for event in decoded]
        # One detector for the whole batch: a model swapped meanwhile serves the next batch.
        texts = await asyncio.to_thread(
            lambda: redact_batch(events, self._detector(), self._text_policy, self._pseudonym_of))
        handled = [self._handle(entry, event, text, now) for entry, event, text in zip(entries, decoded, texts,
                                                                                      strict=True)]
        handled = await self._private_readings(handled, now)
        results = await self._bus().forward(streams.VALID, ANONYMIZE_GROUP, [h.forward for h in handled])
        outcomes, redactions = Counter[str](), Counter[str]()
        for result, published in zip(handled, results, strict=True):
            if published is ForwardResult.ALREADY_ACKED:
                continue  # another worker finished it and counted it (the bus counts these)
            if result.redactions is None:
                outcomes["dead_lettered"] += 1
            elif not published:
                outcomes["duplicate"] += 1
                log.info("event.duplicate_dropped", entry_id=result.forward.entry_id, event_id=result.event_id)
            else:
                outcomes["anonymized"] += 1
                redactions.update(result.redactions)
        for outcome, count in outcomes.items():
            metrics.EVENTS.labels(outcome).inc(count)
        for pii_type, count in redactions.items():
            metrics.REDACTIONS.labels(pii_type).inc(count)
        log.debug("batch.anonymized", entries=len(entries), **outcomes)

    def _handle(self, entry: Entry, event: ValidEvent | InvalidPayload, text: Redaction | DetectionFailed | None,
                now: datetime) -> _Handled:
        if isinstance(event, InvalidPayload):
            return _Handled(self._dead(entry, event.reason, event.errors, event.event_id), event.event_id, None)
        if isinstance(text, DetectionFailed):
            metrics.DETECTION_FAILURES.inc()
            error = FieldError(field="text", message=str(text))
            return _Handled(self._dead(entry, str(text), (error,), event.event_id), event.event_id, None)
        try:
            clean = anonymize_event(event, self._policy, now, redacted_text=text)
        except ValidationError as exc:  # a valid event that does not make a valid clean one: a bug, not a crash loop
            reason = "could not build a clean event"
            return _Handled(self._dead(entry, reason, field_errors(exc), event.event_id), event.event_id, None)
        forward = Forward(entry.id, streams.CLEAN, encode(clean),
                          dedupe_key=DEDUPE_KEY_PREFIX + event.event_id, dedupe_ttl_s=self._dedupe_ttl_s)
        return _Handled(forward, event.event_id, clean.redactions, clean)

    async def _private_readings(self, handled: list[_Handled], now: datetime) -> list[_Handled]:
        """Readings of DP datasets noised or suppressed, their budgets spent in one call, before anything is sent."""
        if self._readings is None:
            return handled
        released = await self._readings.release([h.clean for h in handled], now)
        return [h if event is h.clean or event is None
                else h._replace(forward=dataclasses.replace(h.forward, payload=encode(event)), clean=event)
                for h, event in zip(handled, released, strict=True)]

    def _dead(self, entry: Entry, reason: str, errors: Sequence[FieldError], event_id: str | None) -> Forward:
        log.warning("event.dead_lettered", entry_id=entry.id, event_id=event_id, reason=reason, errors=len(errors))
        return dead_letter_forward(entry, stage=ANONYMIZE_STAGE, reason=reason, source_stream=streams.VALID,
                                   errors=errors, event_id=event_id)


def _decode(entry: Entry) -> ValidEvent | InvalidPayload:
    try:
        return decode_valid_event(entry.payload)
    except InvalidPayload as exc:
        return exc


class BufferFull(RuntimeError):
    """More labeled rows are waiting than the buffer may hold; the entries stay pending."""


class ShardWriter:
    """events.clean -> Parquet shards per dataset; entries are acknowledged only once their shard is stored."""

    def __init__(self, bus: Callable[[], Bus], store: Callable[[], ObjectStore], buffer: ShardBuffer, *,
                 claims: Callable[[], BatchConsumer], buffer_limit: int, monotonic: Callable[[], float],
                 k_anonymity: Mapping[str, KAnonymityRule] | None = None,
                 generalization: Mapping[str, DatasetGeneralization] | None = None) -> None:
        self._bus = bus
        self._store = store
        self.buffer = buffer
        self._k_anonymity = dict(k_anonymity or {})
        self._generalization = dict(generalization or {})
        # The consumer that read the buffered entries: it keeps them claimed until their shard is acked.
        self._claims = claims
        self._buffer_limit = buffer_limit
        self._monotonic = monotonic
        self._lock = asyncio.Lock()
        self._attempts: dict[str, tuple[tuple[str, ...], str]] = {}
        self._retry_at = 0.0
        self._retry_delay_s = 0.0

    @property
    def _consumer(self) -> str:
        return self._claims().spec.consumer

    async def process(self, entries: list[Entry]) -> None:
        """Buffer labeled events, ack unlabeled ones, dead-letter bad ones; flush datasets that are full."""
        dead, unlabeled, outcomes = [], [], Counter[str]()
        now = self._monotonic()
        for entry in entries:
            try:
                event = decode_clean_event(entry.payload)
            except InvalidPayload as exc:
                dead.append(self._dead(entry, exc))
                outcomes["dead_lettered"] += 1
                continue
            if event.label is None:
                unlabeled.append(entry.id)
                outcomes["unlabeled"] += 1
            elif self.buffer.holds(entry.id, event.dataset):
                outcomes["redelivered"] += 1
            elif self.buffer.total_rows >= self._buffer_limit:
                outcomes["held_back"] += 1
            else:
                self.buffer.add(entry.id, event, now)
                self._claims().hold([entry.id])
                outcomes["buffered"] += 1
        if dead:
            await self._bus().forward(streams.CLEAN, SHARD_GROUP, dead)
        if unlabeled:
            await self._bus().ack(streams.CLEAN, SHARD_GROUP, unlabeled)
        for outcome, count in outcomes.items():
            metrics.SHARD_ENTRIES.labels(outcome).inc(count)
        metrics.BUFFERED_ROWS.set(self.buffer.total_rows)
        await self._flush_each(self.buffer.full)
        if outcomes["held_back"]:
            raise BufferFull(f"{outcomes['held_back']} entries left pending: {self.buffer.total_rows} rows buffered")

    def _dead(self, entry: Entry, exc: InvalidPayload) -> Forward:
        log.warning("shard_entry.dead_lettered", entry_id=entry.id, event_id=exc.event_id, reason=exc.reason)
        return dead_letter_forward(entry, stage=SHARD_STAGE, reason=exc.reason, source_stream=streams.CLEAN,
                                   errors=exc.errors, event_id=exc.event_id)

    async def run_flusher(self) -> None:
        """Background task: every 0.5 s flush the datasets that are due."""
        while True:
            await asyncio.sleep(FLUSH_CHECK_S)
            # Shielded: shutdown lets a flush in progress finish instead of cutting it between store and ack.
            await asyncio.shield(self.tick())

    async def tick(self) -> None:
        """One flusher round: flush the datasets that are due."""
        await self._flush_each(lambda: self.buffer.due(self._monotonic()))

    async def _flush_each(self, due: Callable[[], list[str]]) -> None:
        """Flush while ``due()`` names datasets; after a failure back off (the rows stay buffered)."""
        if self._monotonic() < self._retry_at:
            return
        while datasets := due():
            try:
                await self.flush(datasets[0])
            except Exception as exc:  # noqa: BLE001 - store or Redis down: retried with backoff, nothing acked
                self._retry_delay_s = min(max(2 * self._retry_delay_s, FLUSH_CHECK_S), MAX_RETRY_DELAY_S)
                self._retry_at = self._monotonic() + self._retry_delay_s
                log.warning("shard.flush_failed", dataset=datasets[0], error=type(exc).__name__,
                            retry_in_s=self._retry_delay_s)
                return
            self._retry_delay_s = 0.0

    async def flush_all(self) -> None:
        """Stop hook: store every buffered row now; what cannot be stored stays pending for another worker."""
        self._retry_at = 0.0
        await self._flush_each(self.buffer.datasets)
        if self.buffer.total_rows:
            log.warning("shard.unflushed_at_stop", rows=self.buffer.total_rows)

    async def flush(self, dataset: str) -> None:
        """Store one shard of a dataset (Parquet, then manifest), then announce it and ack its entries atomically."""
        async with self._lock:
            batch = self.buffer.next_shard(dataset)
            if not batch:
                return
            ids = tuple(row.entry_id for row in batch)
            shard_id = self._shard_id(dataset, ids)
            files = await asyncio.to_thread(build_shard, dataset, shard_id, [row.event for row in batch],
                                            f"anonymizer-{self._consumer}", self._k_anonymity.get(dataset),
                                            self._generalization.get(dataset))
            store = self._store()
            try:
                await asyncio.to_thread(store.put_bytes, files.shard_key, files.parquet, PARQUET_TYPE)
                await asyncio.to_thread(store.put_bytes, files.manifest_key, files.manifest_json(), JSON_TYPE)
                await self._bus().ack_and_publish(streams.CLEAN, SHARD_GROUP, ids, streams.SHARDS,
                                                  files.announcement())
            except Exception:
                metrics.SHARD_FLUSH_FAILURES.inc()
                raise
            self._attempts.pop(dataset, None)
            self.buffer.remove(dataset, ids)
            self._claims().release(ids)
        metrics.SHARDS_WRITTEN.inc()
        metrics.SHARD_ROWS.inc(files.manifest.rows)
        if files.manifest.k_anonymity is not None:
            metrics.K_ANONYMITY_SUPPRESSED.inc(files.manifest.k_anonymity.suppressed_rows)
        metrics.BUFFERED_ROWS.set(self.buffer.total_rows)
        log.info("shard.written", dataset=dataset, rows=files.manifest.rows, entries=len(ids), key=files.shard_key)

    def _shard_id(self, dataset: str, ids: tuple[str, ...]) -> str:
        # A retry of the same rows reuses the shard id, so it overwrites what a failed attempt left.
        previous = self._attempts.get(dataset)
        if previous is not None and previous[0] == ids:
            return previous[1]
        shard_id = new_shard_id(ids[0], self._consumer)
        self._attempts[dataset] = (ids, shard_id)
        return shard_id
