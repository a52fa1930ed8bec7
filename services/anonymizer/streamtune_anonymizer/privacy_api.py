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
        """The privacy budget a device spent, per DP dataset (the OpenAPI below feeds docs/openapi/anonymizer.json).
        ---
        summary: Privacy budget a device spent, per DP dataset
        parameters:
          - {name: device_id, in: query, schema: {type: string}, description: "Raw device id (pseudonymized here)"}
          - {name: pseudonym, in: query, schema: {type: string}, description: "The device's pseudonym, ps_..."}
        responses:
          "200":
            description: "{device: pseudonym, datasets: {<dataset>: {spent_epsilon, budget_epsilon, window_s}}}"
          "400":
            description: Neither or both of device_id and pseudonym, or an invalid device_id
        """
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
