"""HTTP beside the bus: probes and metrics routes, mounting a Starlette/FastAPI app into FastStream, serving."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

import uvicorn
from faststream.asgi import AsgiFastStream
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

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
