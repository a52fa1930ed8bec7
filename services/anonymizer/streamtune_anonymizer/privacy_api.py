"""HTTP: how much of its privacy budget a device has spent, per DP dataset.

``GET /privacy/devices?device_id=<raw id>`` or ``?pseudonym=ps_...``. The raw id is pseudonymized
with the service's key and never echoed or logged. A query parameter rather than a path segment:
FastStream's ASGI router matches exact paths.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog
from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from streamtune_shared.schemas import Identifier

from .private_readings import PrivateReadings

log = structlog.get_logger(__name__)

DEVICES_PATH = "/privacy/devices"
_IDENTIFIER = TypeAdapter(Identifier)


def create_http_app(readings: PrivateReadings, pseudonymize: Callable[[str], str],
                    now: Callable[[], datetime]) -> Starlette:
    """A Starlette app with the privacy-budget route."""

    async def device_budget(request: Request) -> Response:
        raw, given = request.query_params.get("device_id"), request.query_params.get("pseudonym")
        if (raw is None) == (given is None):
            return JSONResponse({"error": "give exactly one of device_id or pseudonym"}, status_code=400)
        try:
            device = pseudonymize(_IDENTIFIER.validate_python(raw)) if raw is not None else given
        except ValidationError:
            return JSONResponse({"error": "device_id is not a valid identifier"}, status_code=400)
        datasets = await readings.spent(device, now())
        log.info("privacy.budget_read", device=device, datasets=len(datasets))
        return JSONResponse({"device": device, "datasets": datasets})

    app = Starlette()
    app.add_route(DEVICES_PATH, device_budget, methods=["GET"])
    return app
