"""The ``train.requests`` consumer: decode, skip what is already published, train in a thread, announce + ack.

While a run trains, the event loop keeps serving probes and publishes its status; the shared
consumer keeps the request entry claimed (XCLAIM JUSTID), so no other trainer's reclaimer takes a live run.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from prometheus_client import Counter, Gauge
from pydantic import ValidationError
from streamtune_shared import streams
from streamtune_shared.bus import Bus, Entry, Forward, dead_letter_forward, encode
from streamtune_shared.model_card import ModelCard
from streamtune_shared.model_registry import RegistryLayout, find_card_for_request
from streamtune_shared.schemas import TrainRequest, TrainStatus, field_errors
from streamtune_shared.storage import ObjectStore

from .config import TrainerSettings
from .domain import TrainingRejected, refusal_status, stable_request_id
from .pipeline import RunContext, discard_checkpoints, run_training
from .training import TrainingInterrupted

log = structlog.get_logger(__name__)

GROUP = "trainer"
STAGE = "trainer"
STATUS_TIMEOUT_S = 10.0

RUNS = Counter("streamtune_trainer_runs_total", "Train requests handled, by outcome", ["outcome"])
SAMPLES_PER_S = Gauge("streamtune_trainer_train_samples_per_second", "Training throughput of the last published run")
LAST_DEV_F1 = Gauge("streamtune_trainer_last_dev_f1", "Best dev F1 of the last published run")


def done_key(request_id: str) -> str:
    """The dedupe key that makes a request's announcement happen once."""
    return f"streamtune:trainer:done:{request_id}"


class TrainRequestHandler:
    """Handles train requests one run at a time per process."""

    def __init__(self, bus: Callable[[], Bus], store: Callable[[], ObjectStore], settings: TrainerSettings, *,
                 clock: Callable[[], datetime], after_epoch: Callable[[int], None] | None = None) -> None:
        self._bus, self._store, self.settings = bus, store, settings
        self.clock, self.after_epoch = clock, after_epoch
        self.layout = RegistryLayout(settings.infra.models_prefix)
        self.stopping = threading.Event()
        self._one_run = asyncio.Lock()
        self._active: set[str] = set()

    async def process(self, entries: list[Entry]) -> None:
        """Handle each entry; raises (leaving it pending) only for transient failures."""
        for entry in entries:
            await self.handle(entry)

    async def request_stop(self) -> None:
        """Ask a running training to stop at its next step (shutdown); its checkpoint lets another trainer resume."""
        self.stopping.set()

    async def handle(self, entry: Entry) -> None:
        """Run one request in this process's single training slot (a second delivery of it is skipped)."""
        if entry.id in self._active:
            log.info("request.already_running", entry_id=entry.id)
            return
        if self.stopping.is_set():
            log.info("request.left_for_another_trainer", entry_id=entry.id)
            return
        self._active.add(entry.id)
        try:
            async with self._one_run:
                await self._handle_request(entry)
        finally:
            self._active.discard(entry.id)

    async def _handle_request(self, entry: Entry) -> None:
        request = await self._decode(entry)
        if request is None:
            return
        # Bound in this task's context: the training thread (to_thread copies it) logs with it too.
        with structlog.contextvars.bound_contextvars(request_id=request.request_id, model=request.model_name,
                                                     dataset=request.dataset, deliveries=entry.deliveries):
            card = await asyncio.to_thread(find_card_for_request, self._store(), self.layout,
                                           request.model_name, request.request_id)
            if card is not None:
                log.info("request.already_published", version=card.version)
                await self._announce(entry, request, card, outcome="already_published")
                return
            await self._train(entry, request)

    async def _train(self, entry: Entry, request: TrainRequest) -> None:
        await self._status(request, state="accepted", epochs=request.epochs)
        log.info("run.started", task=request.task, epochs=request.epochs)
        try:
            card = await asyncio.to_thread(run_training, request, self._run_context(request))
        except TrainingRejected as exc:
            await self._reject(entry, request, str(exc))
            return
        except TrainingInterrupted:
            RUNS.labels("interrupted").inc()
            log.info("run.left_for_another_trainer", reason="shutdown")  # resumes from its checkpoint
            raise
        except Exception as exc:
            RUNS.labels("error").inc()
            log.error("run.failed", error=type(exc).__name__)
            raise
        await self._announce(entry, request, card, outcome="published")

    async def _decode(self, entry: Entry) -> TrainRequest | None:
        try:
            request = TrainRequest.model_validate_json(entry.payload or b"")
        except ValidationError as exc:
            errors = field_errors(exc)
            status = refusal_status(entry.payload or b"", entry.id, errors)
            if status is not None:  # the requester watches train.status, not the dead-letter stream
                await self._bus().publish(streams.TRAIN_STATUS, status)
            await self._bus().forward(streams.TRAIN_REQUESTS, GROUP, [dead_letter_forward(
                entry, stage=STAGE, reason="invalid train request", source_stream=streams.TRAIN_REQUESTS,
                errors=errors)])
            RUNS.labels("invalid").inc()
            log.warning("request.dead_lettered", entry_id=entry.id, errors=len(errors))
            return None
        if request.request_id is None:
            # Derived from the entry, so every delivery of it is the same run (resume, idempotence).
            request = request.model_copy(update={"request_id": stable_request_id(entry.id)})
        return request

    async def _reject(self, entry: Entry, request: TrainRequest, reason: str) -> None:
        await self._status(request, state="failed", message=reason)
        await self._bus().ack(streams.TRAIN_REQUESTS, GROUP, [entry.id])
        RUNS.labels("rejected").inc()
        log.warning("run.rejected", reason=reason)

    async def _announce(self, entry: Entry, request: TrainRequest, card: ModelCard, *, outcome: str) -> None:
        message = self.layout.announcement(card)
        forward = Forward(entry.id, streams.MODELS_PUBLISHED, encode(message), dedupe_key=done_key(request.request_id))
        [fresh] = await self._bus().forward(streams.TRAIN_REQUESTS, GROUP, [forward])
        RUNS.labels(outcome).inc()
        SAMPLES_PER_S.set(card.training.samples_per_s)
        LAST_DEV_F1.set(card.metrics.dev.get("f1", 0.0))
        log.info("model.published", version=card.version, announced=fresh)
        metrics = {**card.summary(), "test": card.metrics.test}
        await self._best_effort_status(request, state="published", version=card.version, metrics=metrics)
        await self._discard_checkpoints(request.request_id)

    async def _discard_checkpoints(self, request_id: str) -> None:
        try:
            await asyncio.to_thread(discard_checkpoints, self._store(), self.settings, request_id)
        except Exception as exc:  # noqa: BLE001 - the version is published; a stale checkpoint only costs space
            log.warning("checkpoint.cleanup_failed", request_id=request_id, error=type(exc).__name__)

    async def _status(self, request: TrainRequest, **fields: Any) -> None:
        status = TrainStatus(request_id=request.request_id, model_name=request.model_name, **fields)
        await self._bus().publish(streams.TRAIN_STATUS, status)

    async def _best_effort_status(self, request: TrainRequest, **fields: Any) -> None:
        try:
            await self._status(request, **fields)
        except Exception as exc:  # noqa: BLE001 - progress is informative; the run's outcome does not depend on it
            log.warning("status.publish_failed", state=fields.get("state"), error=type(exc).__name__)

    def _run_context(self, request: TrainRequest) -> RunContext:
        loop = asyncio.get_running_loop()

        def report(**fields: Any) -> None:
            future = asyncio.run_coroutine_threadsafe(self._best_effort_status(request, **fields), loop)
            try:
                future.result(timeout=STATUS_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - a stalled loop must not stop the training
                log.warning("status.publish_timeout", state=fields.get("state"), error=type(exc).__name__)

        return RunContext(store=self._store(), settings=self.settings, report=report, clock=self.clock,
                          should_stop=self.stopping.is_set, after_epoch=self.after_epoch)
