"""``POST /events`` for producers that only speak HTTP.

Items are judged by the same ``ingest_payload`` as stream entries; valid ones are written to
``events.raw`` verbatim, so deduplication and forwarding happen on the one durable stream path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Literal

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import RedisError
from streamtune_shared import streams
from streamtune_shared.bus import Bus, dead_letter_for_bytes, encode
from streamtune_shared.schemas import FieldError

from .config import IngestionSettings
from .domain import Accepted, IngestionPolicy, Outcome, Rejected, ingest_payload
from .http_body import BodyNotJSON, TooManyItems, split_events_body
from .metrics import HTTP_ITEMS, REJECTIONS
from .stats_store import DeviceStatsStore

HTTP_STAGE = "ingestion-http"
BODY_FIELD = "body"

log = structlog.get_logger(__name__)


class ItemResult(BaseModel):
    """What became of one event of the request."""

    index: int
    event_id: str | None
    status: Literal["accepted", "rejected"]
    errors: list[FieldError] = []


class IngestResponse(BaseModel):
    """The answer to ``POST /events``; ``errors`` is set only when the body as a whole was refused."""

    accepted: int
    rejected: int
    results: list[ItemResult]
    errors: list[FieldError] = []


class SensorStatsOut(BaseModel):
    """Running statistics of one sensor of one device (sample variance; ``last_ts`` in epoch seconds)."""

    count: int
    mean: float
    variance: float
    std: float
    min: float
    max: float
    last_ts: float


class DeviceStatsResponse(BaseModel):
    """``GET /devices/{id}/stats``: every sensor the device has sent a kept reading for."""

    device_id: str
    sensors: dict[str, SensorStatsOut]


class BusUnavailable(Exception):
    """Redis could not take the writes; the producer should retry."""


def create_http_app(settings: IngestionSettings, bus: Callable[[], Bus], clock: Callable[[], datetime],
                    stats: Callable[[], DeviceStatsStore | None] = lambda: None) -> FastAPI:
    """The producer-facing HTTP API; ``bus`` is called per request (the real one exists only after startup)."""
    app = FastAPI(title="streamtune ingestion", version="1", openapi_url="/openapi.json")
    policy = settings.policy()

    @app.post("/events", status_code=202, response_model=IngestResponse,
              responses={400: {"model": IngestResponse}, 413: {"model": IngestResponse},
                         422: {"model": IngestResponse}, 503: {"model": IngestResponse}})
    async def post_events(request: Request) -> JSONResponse:
        """Accept one event object or an array of them; 202 when at least one was accepted, else 422."""
        body = await read_body(request, settings.http_max_body_bytes)
        if body is None:
            return body_error(413, f"body is larger than {settings.http_max_body_bytes} bytes")
        try:
            return await ingest_body(current_bus(bus), body, settings.http_max_items, policy, clock())
        except TooManyItems as exc:
            return body_error(413, str(exc))
        except BusUnavailable as exc:
            return body_error(503, str(exc))

    @app.get("/devices/{device_id}/stats", response_model=DeviceStatsResponse, responses={404: {}, 503: {}})
    async def device_stats(device_id: str) -> JSONResponse:
        """Running per-sensor statistics of a raw device id: an operator endpoint inside the trust boundary."""
        return await stats_response(stats(), device_id)

    return app


async def stats_response(store: DeviceStatsStore | None, device_id: str) -> JSONResponse:
    """200 with the device's statistics, 404 for a device never seen, 503 without a store."""
    if store is None:
        return JSONResponse({"detail": "device statistics are off or the service is starting"}, status_code=503)
    try:
        sensors = await store.read(device_id)
    except (RedisError, OSError):
        return JSONResponse({"detail": "the statistics store is unavailable"}, status_code=503,
                            headers={"Retry-After": "1"})
    if not sensors:
        return JSONResponse({"detail": "no statistics for this device"}, status_code=404)
    body = DeviceStatsResponse(device_id=device_id,
                               sensors={name: SensorStatsOut(**s.as_dict()) for name, s in sensors.items()})
    return JSONResponse(body.model_dump(mode="json"))


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def ingest_body(bus: Bus, body: bytes, max_items: int, policy: IngestionPolicy, now: datetime) -> JSONResponse:
    """Judge each item; valid ones to events.raw, rejected ones to events.dlq, in request order."""
    try:
        items = split_events_body(body, max_items)
    except BodyNotJSON as exc:
        error = FieldError(field=BODY_FIELD, message=str(exc))
        await publish_dead_letter(bus, body, str(exc), (error,), None)
        REJECTIONS.labels("http", "not_json").inc()
        log.info("http.body_rejected", code="not_json", size=len(body))
        return body_error(400, str(exc))
    outcomes = [ingest_payload(item, policy, now) for item in items]
    for item, outcome in zip(items, outcomes, strict=True):
        if isinstance(outcome, Accepted):
            await publish(bus, streams.RAW, item)  # the producer's own bytes: the stream consumer judges them alike
        else:
            await publish_dead_letter(bus, item, outcome.reason, outcome.errors, outcome.event_id)
    return item_results(outcomes)


async def publish_dead_letter(
    bus: Bus, original: bytes, reason: str, errors: Sequence[FieldError], event_id: str | None
) -> None:
    """Dead-letter HTTP input: no stream entry, the producer's bytes as the original."""
    letter = dead_letter_for_bytes(original, stage=HTTP_STAGE, reason=reason, errors=errors, event_id=event_id)
    await publish(bus, streams.DLQ, encode(letter))


def current_bus(bus: Callable[[], Bus]) -> Bus:
    """The bus, or BusUnavailable while the service is still starting."""
    try:
        return bus()
    except RuntimeError:
        raise BusUnavailable("the service is starting; retry shortly") from None


async def publish(bus: Bus, stream: str, payload: bytes) -> None:
    """Publish the payload as given, turning a Redis outage into BusUnavailable (503: the producer retries)."""
    try:
        await bus.publish_bytes(stream, payload)
    except (RedisError, OSError) as exc:
        log.warning("http.bus_unavailable", error=type(exc).__name__)
        raise BusUnavailable("the event bus is unavailable; retry shortly") from None


def item_results(outcomes: Sequence[Outcome]) -> JSONResponse:
    """202 with a result per item when at least one was accepted, else 422."""
    results = [_item_result(i, outcome) for i, outcome in enumerate(outcomes)]
    accepted = sum(r.status == "accepted" for r in results)
    for outcome in outcomes:
        if isinstance(outcome, Rejected):
            REJECTIONS.labels("http", outcome.code).inc()
    HTTP_ITEMS.labels("accepted").inc(accepted)
    HTTP_ITEMS.labels("rejected").inc(len(results) - accepted)
    log.info("http.events_received", accepted=accepted, rejected=len(results) - accepted)
    response = IngestResponse(accepted=accepted, rejected=len(results) - accepted, results=results)
    return JSONResponse(response.model_dump(mode="json"), status_code=202 if accepted else 422)


def _item_result(index: int, outcome: Outcome) -> ItemResult:
    if isinstance(outcome, Accepted):
        return ItemResult(index=index, event_id=outcome.event.event_id, status="accepted")
    return ItemResult(index=index, event_id=outcome.event_id, status="rejected", errors=list(outcome.errors))


def body_error(status: int, message: str) -> JSONResponse:
    """A refusal of the whole body (400, 413, 503), in the same shape as a per-item answer."""
    response = IngestResponse(accepted=0, rejected=0, results=[],
                              errors=[FieldError(field=BODY_FIELD, message=message)])
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse(response.model_dump(mode="json"), status_code=status, headers=headers)
