"""The events.clean consumer: micro-batch -> model per dataset -> one Prediction per event, published and acked atomically."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from pydantic import ValidationError
from streamtune_shared import streams
from streamtune_shared.bus import Bus, Entry, Forward, ForwardResult, dead_letter_forward, encode, monotonic_ms
from streamtune_shared.rollout import Role
from streamtune_shared.schemas import CleanEvent, FieldError, Prediction, PredictionOutputs, field_errors

from .device_windows import DeviceWindowStore, EventView, SensorEvent
from .domain import agreement
from .metrics import BATCH_SIZE, EVENTS, LATENCY, PREDICTIONS, SHADOW_AGREEMENT, SHADOW_COMPARED
from .registry import ModelRegistry, Route, ServingModel

log = structlog.get_logger(__name__)

GROUP = "predictor"
STAGE = "predictor"
HOLD_POLL_S = 0.1
HOLD_LOG_EVERY_MS = 30_000.0


class ShuttingDown(RuntimeError):
    """Raised by a batch still waiting for its model at shutdown: its entries stay pending for another worker."""


@dataclass
class Triage:
    """A batch sorted out: events to predict per dataset, and entries already finished (dead letters, skips)."""

    by_dataset: dict[str, list[tuple[Entry, CleanEvent]]] = field(default_factory=lambda: defaultdict(list))
    finished: list[Forward] = field(default_factory=list)


Group = tuple[ServingModel, Role]


class PredictionHandler:
    """Processes micro-batches of ``events.clean`` for the batch consumer of group ``predictor``."""

    def __init__(self, registry: ModelRegistry, bus: Callable[[], Bus], *,
                 shadow_sink: Callable[[], ShadowSink | None] = lambda: None,
                 clock: Callable[[], float] = monotonic_ms,
                 windows: Callable[[], DeviceWindowStore | None] = lambda: None) -> None:
        self.registry = registry
        self._bus = bus
        self._windows = windows
        self._shadow_sink = shadow_sink
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
        await self._finish(triage.finished)
        if not triage.by_dataset:
            return
        # The consumer keeps the batch claimed meanwhile, also while it waits for its model.
        routes = await self._hold_until_routed(triage.by_dataset)  # this batch's routes: a later swap does not touch it
        groups: dict[Group, list[tuple[Entry, CleanEvent]]] = defaultdict(list)
        for dataset, items in triage.by_dataset.items():
            for entry, event in items:
                groups[routes[dataset].model_for(event.event_id)].append((entry, event))
        outputs_by_event: dict[str, PredictionOutputs] = {}
        for (model, role), grouped in groups.items():
            items, dead = _needs_text(model, grouped)
            await self._finish(dead)
            outputs = await self._outputs(model, items)
            outputs_by_event.update((event.event_id, out) for (_, event), out in zip(items, outputs, strict=True))
            await self._publish(model, role, items, outputs, read_at)
        await self._shadow(routes, triage.by_dataset, outputs_by_event, read_at)

    async def _finish(self, finished: list[Forward]) -> None:
        """Acknowledge skipped entries and dead-letter bad ones, counting what this worker finished."""
        if not finished:
            return
        results = await self._bus().forward(streams.CLEAN, GROUP, finished)
        finished_here = [f for f, r in zip(finished, results, strict=True) if r is not ForwardResult.ALREADY_ACKED]
        skipped = sum(f.target is None for f in finished_here)
        EVENTS.labels("skipped").inc(skipped)
        EVENTS.labels("dead_lettered").inc(len(finished_here) - skipped)

    async def _outputs(self, model: ServingModel, items: list[tuple[Entry, CleanEvent]]) -> list[PredictionOutputs]:
        """The model's outputs for the events: from text, or (sensor-anomaly) from each device's window."""
        if not items:
            return []
        if model.anomaly is None:
            return await asyncio.to_thread(model.predict, [event.text or "" for _, event in items])
        views = await self._views(model, [event for _, event in items])
        return await asyncio.to_thread(model.anomaly.outputs, views)

    async def _views(self, model: ServingModel, events: list[CleanEvent]) -> list[EventView]:
        """Add the events to their devices' windows (shared by every replica) and return each one's view."""
        store = self._windows()
        if store is None:
            raise RuntimeError("no device window store: sensor-anomaly models cannot serve yet")
        spec = model.anomaly.spec  # type: ignore[union-attr]  # only called for anomaly models
        views: list[EventView | None] = [None] * len(events)
        by_dataset: dict[str, list[int]] = defaultdict(list)
        for index, event in enumerate(events):
            by_dataset[event.dataset].append(index)
        for dataset, indexes in by_dataset.items():
            sensor_events = [_sensor_event(events[i]) for i in indexes]
            got = await store.append(dataset, sensor_events, spec.window, spec.calibration_events)
            for i, view in zip(indexes, got, strict=True):
                views[i] = view
        return [v for v in views if v is not None]

    def triage(self, entries: list[Entry]) -> Triage:
        """Parse entries; bad ones become dead letters, events of datasets this predictor does not serve are skipped."""
        triage = Triage()
        for entry in entries:
            try:
                event = CleanEvent.model_validate_json(entry.payload or b"")
            except ValidationError as exc:
                triage.finished.append(_dead(entry, "invalid CleanEvent", field_errors(exc), _event_id(entry)))
                continue
            if not self.registry.serves(event.dataset):
                triage.finished.append(Forward(entry.id, None))
            else:  # whether it needs a text depends on the task of the model it is routed to
                triage.by_dataset[event.dataset].append((entry, event))
        return triage

    async def _hold_until_routed(self, by_dataset: dict[str, list[tuple[Entry, CleanEvent]]]) -> Mapping[str, Route]:
        events = sum(len(items) for items in by_dataset.values())
        last_log = None
        while True:
            routes = self.registry.snapshot()
            missing = [name for name in by_dataset if (r := routes.get(name)) is None or not r.ready()]
            if not missing:
                return routes
            if self._stopping:
                raise ShuttingDown(f"stopped while waiting for the models of {', '.join(missing)}")
            now = self._clock()
            if last_log is None or now - last_log >= HOLD_LOG_EVERY_MS:
                log.warning("predictor.waiting_for_model", datasets=missing, events=events)
                last_log = now
            await asyncio.sleep(HOLD_POLL_S)

    async def _publish(self, model: ServingModel, role: Role, items: list[tuple[Entry, CleanEvent]],
                       outputs: list[PredictionOutputs], read_at: float) -> None:
        latency_ms = round(self._clock() - read_at, 3)
        forwards = [
            Forward(entry.id, streams.PREDICTIONS, encode(_prediction(model, role, event, output, latency_ms)))
            for (entry, event), output in zip(items, outputs, strict=True)
        ]
        published = sum(map(bool, await self._bus().forward(streams.CLEAN, GROUP, forwards)))
        PREDICTIONS.labels(model.name, model.version, role).inc(published)
        EVENTS.labels("predicted").inc(published)
        LATENCY.observe(latency_ms / 1000)
        log.info("predictions.published", model=model.name, version=model.version, role=role, count=published,
                 latency_ms=latency_ms)

    async def _shadow(self, routes: Mapping[str, Route], by_dataset: dict[str, list[tuple[Entry, CleanEvent]]],
                      primary: dict[str, PredictionOutputs], read_at: float) -> None:
        """Shadow versions predict a copy of their datasets' events, after the primaries were published."""
        for dataset, items in by_dataset.items():
            shadow = routes[dataset].shadow
            if shadow is None:
                continue
            try:
                outputs = await self._outputs(shadow, items)
                await self._publish_shadow(dataset, shadow, items, outputs, primary, read_at)
            except Exception as exc:  # noqa: BLE001 - a failing shadow must never hold back the primary
                log.warning("shadow.failed", dataset=dataset, version=shadow.version, error=type(exc).__name__)

    async def _publish_shadow(self, dataset: str, shadow: ServingModel, items: list[tuple[Entry, CleanEvent]],
                              outputs: list[PredictionOutputs], primary: dict[str, PredictionOutputs],
                              read_at: float) -> None:
        latency_ms = round(self._clock() - read_at, 3)
        bus = self._bus()
        scores = []
        for (_, event), output in zip(items, outputs, strict=True):
            await bus.publish(streams.PREDICTIONS_SHADOW, _prediction(shadow, "shadow", event, output, latency_ms))
            if event.event_id in primary:
                scores.append(agreement(primary[event.event_id], output))
        PREDICTIONS.labels(shadow.name, shadow.version, "shadow").inc(len(items))
        SHADOW_COMPARED.labels(dataset, shadow.version).inc(len(scores))
        SHADOW_AGREEMENT.labels(dataset, shadow.version).inc(sum(scores))
        sink = self._shadow_sink()
        if sink is not None and scores:
            await sink.add_shadow_agreement(dataset, shadow.version, len(scores), sum(scores))


class ShadowSink(Protocol):
    """Where shadow agreement is accumulated for operators (Redis, read by ``streamtune models show``)."""

    async def add_shadow_agreement(self, dataset: str, version: str, compared: int, agreement: float) -> None: ...


def _prediction(model: ServingModel, role: Role, event: CleanEvent, output: PredictionOutputs,
                latency_ms: float) -> Prediction:
    return Prediction(event_id=event.event_id, dataset=event.dataset, model=model.name, version=model.version,
                      task=model.task, outputs=output, latency_ms=latency_ms, rollout=role)


def _needs_text(model: ServingModel, items: list[tuple[Entry, CleanEvent]]
                ) -> tuple[list[tuple[Entry, CleanEvent]], list[Forward]]:
    """The events the model can predict, and dead letters for those a text model cannot (no text)."""
    if model.anomaly is not None:
        return items, []
    kept = [(entry, event) for entry, event in items if event.text is not None]
    dead = [_dead(entry, "event has no text", (FieldError(
        field="text", message=f"the model of {event.dataset} predicts from text; the event has none"),), event.event_id)
        for entry, event in items if event.text is None]
    return kept, dead


def _sensor_event(event: CleanEvent) -> SensorEvent:
    readings = {name: float(value) for name, value in event.readings.items() if value is not None}
    return SensorEvent(event.event_id, event.device_id, event.ts.timestamp(), readings)


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
