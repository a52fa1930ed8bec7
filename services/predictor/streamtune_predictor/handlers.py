"""The events.clean consumer: micro-batch -> model per dataset -> one Prediction per event, published and acked atomically."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog
from pydantic import ValidationError
from streamtune_shared import streams
from streamtune_shared.bus import Bus, Entry, Forward, ForwardResult, dead_letter_forward, encode, monotonic_ms
from streamtune_shared.schemas import CleanEvent, FieldError, Prediction, PredictionOutputs, field_errors

from .metrics import BATCH_SIZE, EVENTS, LATENCY, PREDICTIONS
from .registry import ModelRegistry, ServingModel

log = structlog.get_logger(__name__)

GROUP = "predictor"
STAGE = "predictor"
HOLD_POLL_S = 0.1
HOLD_LOG_EVERY_MS = 30_000.0


class ShuttingDown(RuntimeError):
    """Raised by a batch still waiting for its model at shutdown: its entries stay pending for another worker."""


@dataclass
class Triage:
    """A batch sorted out: events to predict per model, and entries already finished (dead letters, skips)."""

    by_model: dict[str, list[tuple[Entry, CleanEvent]]] = field(default_factory=lambda: defaultdict(list))
    finished: list[Forward] = field(default_factory=list)


class PredictionHandler:
    """Processes micro-batches of ``events.clean`` for the batch consumer of group ``predictor``."""

    def __init__(self, registry: ModelRegistry, bus: Callable[[], Bus], *,
                 clock: Callable[[], float] = monotonic_ms) -> None:
        self.registry = registry
        self._bus = bus
        self._clock = clock
        self._stopping = False

    async def stop_holding(self) -> None:
        """Shutdown began: batches waiting for a model give up and stay pending."""
        self._stopping = True

    async def process(self, entries: list[Entry]) -> None:
        """Predict every event of a batch; each prediction is published together with its entry's ack."""
        read_at = self._clock()
        BATCH_SIZE.observe(len(entries))
        with structlog.contextvars.bound_contextvars(stage=STAGE, batch_first=entries[0].id if entries else None):
            await self._process(entries, read_at)

    async def _process(self, entries: list[Entry], read_at: float) -> None:
        triage = self.triage(entries)
        if triage.finished:
            results = await self._bus().forward(streams.CLEAN, GROUP, triage.finished)
            finished_here = [f for f, r in zip(triage.finished, results, strict=True)
                             if r is not ForwardResult.ALREADY_ACKED]
            skipped = sum(f.target is None for f in finished_here)
            EVENTS.labels("skipped").inc(skipped)
            EVENTS.labels("dead_lettered").inc(len(finished_here) - skipped)
        if not triage.by_model:
            return
        # The consumer keeps the batch claimed meanwhile, also while it waits for its model.
        await self._hold_until_loaded(triage.by_model)
        serving = self.registry.snapshot()  # this batch's model references: a later swap does not touch it
        for name, items in triage.by_model.items():
            model = serving[name]
            outputs = await asyncio.to_thread(model.predict, [event.text or "" for _, event in items])
            await self._publish(model, items, outputs, read_at)

    def triage(self, entries: list[Entry]) -> Triage:
        """Parse entries; bad ones become dead letters, events of unconfigured datasets are skipped."""
        triage = Triage()
        for entry in entries:
            try:
                event = CleanEvent.model_validate_json(entry.payload or b"")
            except ValidationError as exc:
                triage.finished.append(_dead(entry, "invalid CleanEvent", field_errors(exc), _event_id(entry)))
                continue
            name = self.registry.model_for(event.dataset)
            if name is None:
                triage.finished.append(Forward(entry.id, None))
            elif event.text is None:
                error = FieldError(field="text", message=f"model {name} predicts from text; the event has none")
                triage.finished.append(_dead(entry, "event has no text", (error,), event.event_id))
            else:
                triage.by_model[name].append((entry, event))
        return triage

    async def _hold_until_loaded(self, by_model: dict[str, list[tuple[Entry, CleanEvent]]]) -> None:
        events = sum(len(items) for items in by_model.values())
        last_log = None
        while missing := [name for name in by_model if self.registry.get(name) is None]:
            if self._stopping:
                raise ShuttingDown(f"stopped while waiting for {', '.join(missing)}")
            now = self._clock()
            if last_log is None or now - last_log >= HOLD_LOG_EVERY_MS:
                log.warning("predictor.waiting_for_model", models=missing, events=events)
                last_log = now
            await asyncio.sleep(HOLD_POLL_S)

    async def _publish(self, model: ServingModel, items: list[tuple[Entry, CleanEvent]],
                       outputs: list[PredictionOutputs], read_at: float) -> None:
        latency_ms = round(self._clock() - read_at, 3)
        forwards = [
            Forward(entry.id, streams.PREDICTIONS, encode(Prediction(
                event_id=event.event_id, dataset=event.dataset, model=model.name, version=model.version,
                task=model.task, outputs=output, latency_ms=latency_ms)))
            for (entry, event), output in zip(items, outputs, strict=True)
        ]
        published = sum(map(bool, await self._bus().forward(streams.CLEAN, GROUP, forwards)))
        PREDICTIONS.labels(model.name).inc(published)
        EVENTS.labels("predicted").inc(published)
        LATENCY.observe(latency_ms / 1000)
        log.info("predictions.published", model=model.name, version=model.version, count=published,
                 latency_ms=latency_ms)


def _dead(entry: Entry, reason: str, errors: Sequence[FieldError], event_id: str | None) -> Forward:
    log.warning("event.dead_lettered", entry_id=entry.id, reason=reason, fields=[e.field for e in errors][:5])
    return dead_letter_forward(entry, stage=STAGE, reason=reason, source_stream=streams.CLEAN, errors=errors,
                               event_id=event_id)


def _event_id(entry: Entry) -> str | None:
    # Best effort, so a dead letter can still be traced to its event.
    try:
        value = json.loads(entry.payload or b"").get("event_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and len(value) <= 128 else None
