"""The trainer's HTTP routes beside its consumer: each published version's training report.

    GET /models/{name}/{version}/report       report.json (curves' data, classification report, hyper-parameters)
    GET /models/{name}/{version}/report.png   the loss and dev-metric curves

404 for a model, version or report that does not exist; 409 when the stored file does not match its card.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from streamtune_shared.model_card import VersionRejected
from streamtune_shared.model_registry import RegistryLayout
from streamtune_shared.storage import ObjectStore

from .report import REPORT_FILE, REPORT_PNG, read_report_file

log = structlog.get_logger(__name__)

MEDIA_TYPES = {REPORT_FILE: "application/json", REPORT_PNG: "image/png"}


def create_http_app(store: Callable[[], ObjectStore], layout: RegistryLayout) -> Starlette:
    """The report routes; ``store()`` is the runtime's object store (503 before startup)."""

    def route(file_name: str) -> Callable[[Request], object]:
        async def serve(request: Request) -> Response:
            name, version = request.path_params["name"], request.path_params["version"]
            try:
                opened = store()
            except RuntimeError:  # the object store is not open yet
                return JSONResponse({"detail": "the trainer is starting"}, status_code=503)
            try:
                data = await asyncio.to_thread(read_report_file, opened, layout, name, version, file_name)
            except VersionRejected as exc:
                log.warning("report.rejected", model=name, version=version, reason=exc.reason)
                return JSONResponse({"detail": exc.reason}, status_code=409)
            if data is None:
                return JSONResponse({"detail": f"no {file_name} for model {name!r} version {version!r}"},
                                    status_code=404)
            return Response(data, media_type=MEDIA_TYPES[file_name])

        return serve

    return Starlette(routes=[Route("/models/{name}/{version}/report", route(REPORT_FILE), methods=["GET"]),
                             Route("/models/{name}/{version}/report.png", route(REPORT_PNG), methods=["GET"])])
