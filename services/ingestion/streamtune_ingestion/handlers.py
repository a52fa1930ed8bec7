"""The ``events.raw`` consumer: entries -> domain -> one atomic forward per entry (events.valid or events.dlq)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import structlog
from streamtune_shared import streams
from streamtune_shared.bus import Bus, Entry, Forward, ForwardResult, dead_letter_forward, encode
from redis.exceptions import RedisError
from streamtune_shared.schemas import FieldError, ValidEvent

from .device_stats import summarize_batch
from .domain import Accepted, IngestionPolicy, Outcome, Rejected, ingest_payload
from .metrics import EVENTS, READINGS_DROPPED, REJECTIONS, STATS_FAILURES
from .payloads import PAYLOAD_FIELD
from .stats_store import DeviceStatsStore

GROUP = "ingestion"
STAGE = "ingestion"
DEDUPE_PREFIX = "streamtune:ingestion:seen:"

log = structlog.get_logger(__name__)


def dedupe_key(event_id: str) -> str:
    """The Redis key that remembers an event_id was already published to events.valid."""
    return f"{DEDUPE_PREFIX}{event_id}"


def judge_entry(entry: Entry, policy: IngestionPolicy, now: datetime) -> Outcome:
    """The domain's verdict on one entry; an unexpected error dead-letters that entry instead of the batch."""
    try:
        return ingest_payload(entry.payload, policy, now)
    except Exception as exc:  # noqa: BLE001 - a pure function failing again on retry would stall the stream
        log.error("event.validation_crashed", entry_id=entry.id, error=type(exc).__name__)
        reason = f"could not validate the payload ({type(exc).__name__})"
        return Rejected("internal_error", reason, (FieldError(field=PAYLOAD_FIELD, message=reason),))


class RawEventHandler:
    """Process a batch of ``events.raw`` entries; every entry is acknowledged by the write it produced."""

    def __init__(self, bus: Callable[[], Bus], policy: IngestionPolicy, dedupe_ttl_s: int,
                 clock: Callable[[], datetime], stats: Callable[[], DeviceStatsStore | None] = lambda: None) -> None:
        self._bus = bus
        self._policy = policy
        self._dedupe_ttl_s = dedupe_ttl_s
        self._clock = clock
        self._stats = stats

    async def __call__(self, entries: list[Entry]) -> None:
        """Validate and clean each entry, then publish and acknowledge all of them in one round trip."""
        if not entries:
            return
        now = self._clock()
        outcomes = [judge_entry(entry, self._policy, now) for entry in entries]
        forwards = [self._forward(entry, outcome) for entry, outcome in zip(entries, outcomes, strict=True)]
        results = await self._bus().forward(streams.RAW, GROUP, forwards)
        self._record(entries, outcomes, results)
        published = [o.event for o, r in zip(outcomes, results, strict=True) if isinstance(o, Accepted) and r]
        await self._add_stats(published)

    async def _add_stats(self, published: list[ValidEvent]) -> None:
        # After the forward, and only for events this call published: each event counts at most once, and a
        # duplicate or a redelivered entry never counts twice (a crash in between loses one batch's share).
        store = self._stats()
        if store is None or not published:
            return
        try:
            await store.add(summarize_batch(published))
        except (RedisError, OSError) as exc:
            STATS_FAILURES.inc()
            log.warning("device_stats.update_failed", events=len(published), error=type(exc).__name__)

    def _forward(self, entry: Entry, outcome: Outcome) -> Forward:
        if isinstance(outcome, Accepted):
            return Forward(entry.id, streams.VALID, encode(outcome.event),
                           dedupe_key=dedupe_key(outcome.event.event_id), dedupe_ttl_s=self._dedupe_ttl_s)
        return dead_letter_forward(entry, stage=STAGE, reason=outcome.reason, source_stream=streams.RAW,
                                   errors=outcome.errors, event_id=outcome.event_id)

    def _record(self, entries: Sequence[Entry], outcomes: Sequence[Outcome],
                results: Sequence[ForwardResult]) -> None:
        batch_log = log.bind(stream=streams.RAW, group=GROUP, first_entry=entries[0].id)
        counts = {"valid": 0, "rejected": 0, "duplicate": 0}
        for entry, outcome, result in zip(entries, outcomes, results, strict=True):
            if result is ForwardResult.ALREADY_ACKED:
                continue  # another worker finished it and counted it (the bus counts these)
            if isinstance(outcome, Rejected):
                counts["rejected"] += 1
                REJECTIONS.labels("stream", outcome.code).inc()
                batch_log.info("event.rejected", entry_id=entry.id, event_id=outcome.event_id, code=outcome.code)
            elif result:
                counts["valid"] += 1
                for reason in outcome.dropped:
                    READINGS_DROPPED.labels(reason).inc()
            else:
                counts["duplicate"] += 1
                batch_log.debug("event.duplicate", event_id=outcome.event.event_id)
        for outcome_name, n in counts.items():
            if n:
                EVENTS.labels(outcome_name).inc(n)
        batch_log.debug("batch.ingested", entries=len(entries), **counts)
