"""HTTP beside the bus: probes and metrics routes, mounting a Starlette/FastAPI app into FastStream, serving."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import uvicorn
from faststream.asgi import AsgiFastStream
from pydantic import ValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .logs import configure_logging
from .schemas import field_errors
from .settings import InfraSettings

ReadyCheck = Callable[[], bool | Awaitable[bool]]


def add_probe_routes(app: Starlette, ready: ReadyCheck) -> None:
    """``/healthz`` (the process answers), ``/readyz`` (``ready()`` holds), ``/metrics`` (Prometheus)."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        result = ready()
        ok = await result if inspect.isawaitable(result) else result
        return JSONResponse({"ready": bool(ok)}, status_code=200 if ok else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.add_route("/healthz", healthz, methods=["GET"])
    app.add_route("/readyz", readyz, methods=["GET"])
    app.add_route("/metrics", metrics, methods=["GET"])


def asgi_routes(http_app: Starlette) -> list[tuple[str, Starlette]]:
    """Every path of ``http_app``, for ``AsgiFastStream(asgi_routes=...)`` (which matches exact paths)."""
    return [(route.path, http_app) for route in http_app.routes if hasattr(route, "path")]


def serve(app: AsgiFastStream, host: str, port: int, graceful_s: float = 30.0) -> None:
    """Run the app under uvicorn; SIGTERM runs the app's shutdown hooks (drain, then close)."""
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                            lifespan="on", timeout_graceful_shutdown=graceful_s)
    uvicorn.Server(config).run()


class ServiceSettings(Protocol):
    """What every service's settings carry."""

    infra: InfraSettings
    http_host: str
    http_port: int


S = TypeVar("S", bound=ServiceSettings)


def run_service(name: str, load_settings: Callable[[], S], create_app: Callable[[S], AsgiFastStream],
                prepare: Callable[[S], None] | None = None) -> None:
    """A service's ``main``: read the environment, configure logging, serve until SIGTERM.

    Invalid settings stop the process with one line per field and no traceback; values are never
    printed (some are secrets).
    """
    try:
        settings = load_settings()
    except ValidationError as exc:
        fields = "\n".join(f"  {error.field}: {error.message}" for error in field_errors(exc, None, root="settings"))
        raise SystemExit(f"{name}: refusing to start, invalid settings:\n{fields}") from None
    configure_logging(settings.infra.log_format, settings.infra.log_level)
    if prepare is not None:
        prepare(settings)
    serve(create_app(settings), settings.http_host, settings.http_port)
