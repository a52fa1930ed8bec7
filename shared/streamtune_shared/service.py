"""The lifecycle every service shares: clients made at startup, consumers, background tasks, drain on stop.

    runtime = ServiceRuntime(settings.infra, name="ingestion", bus=deps.bus)   # fakes injected in tests
    runtime.add_consumer(ConsumerSpec(streams.RAW, "ingestion", stage="ingestion"), process)
    app = runtime.build(http_app)        # an AsgiFastStream: bus subscribers + HTTP routes + probes
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from faststream.asgi import AsgiFastStream
from redis.asyncio import Redis
from starlette.applications import Starlette

from .bus import BatchConsumer, Bus, ConsumerSpec, ProcessBatch, RedisBus, make_broker
from .group_metrics import run_group_metrics
from .settings import InfraSettings
from .storage import ObjectStore, minio_store
from .tasks import cancel_and_wait
from .web import add_probe_routes, asgi_routes

log = structlog.get_logger(__name__)

TaskFactory = Callable[[], Awaitable[None]]


class ServiceRuntime:
    """Owns the broker, the Redis client, the bus, the object store and the background tasks of one service."""

    def __init__(
        self,
        infra: InfraSettings,
        *,
        name: str,
        bus: Bus | None = None,
        store: ObjectStore | None = None,
        needs_store: bool = False,
        drain_timeout_s: float = 30.0,
    ) -> None:
        self.infra = infra
        self.name = name
        self.broker = make_broker(infra.redis_url.get_secret_value())
        self.redis: Redis | None = None
        self._bus = bus
        self._store = store
        self._needs_store = needs_store
        self._drain_timeout_s = drain_timeout_s
        self.consumers: list[BatchConsumer] = []
        self._task_factories: list[tuple[str, TaskFactory]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_hooks: list[TaskFactory] = []
        self._stopping_hooks: list[TaskFactory] = []
        self.started = False

    @property
    def bus(self) -> Bus:
        """The bus (real once started, or the fake given to the constructor)."""
        if self._bus is None:
            raise RuntimeError(f"{self.name}: the bus is used before startup")
        return self._bus

    @property
    def store(self) -> ObjectStore:
        """The object store (opened at startup, or the fake given to the constructor)."""
        if self._store is None:
            raise RuntimeError(f"{self.name}: the object store is used before startup")
        return self._store

    def add_consumer(self, spec: ConsumerSpec, process: ProcessBatch) -> BatchConsumer:
        """Subscribe ``process`` to a stream as a batch consumer with reclaim and dead-lettering."""
        consumer = BatchConsumer(spec, process, lambda: self._real_bus())
        consumer.register(self.broker)
        self.consumers.append(consumer)
        return consumer

    def add_task(self, name: str, factory: TaskFactory) -> None:
        """Run a background coroutine (a timer, a watcher) from startup until shutdown."""
        self._task_factories.append((name, factory))

    def add_stopping_hook(self, hook: TaskFactory) -> None:
        """Run as soon as shutdown begins, before in-flight batches drain (e.g. tell a long wait to give up)."""
        self._stopping_hooks.append(hook)

    def add_stop_hook(self, hook: TaskFactory) -> None:
        """Run after in-flight batches drained, before Redis closes (e.g. flush a buffer)."""
        self._stop_hooks.append(hook)

    def _real_bus(self) -> RedisBus:
        if not isinstance(self._bus, RedisBus):
            raise RuntimeError(f"{self.name}: reclaim needs a Redis bus")
        return self._bus

    async def _on_startup(self) -> None:
        if self._bus is None:
            self.redis = Redis.from_url(self.infra.redis_url.get_secret_value())
            self._bus = RedisBus(self.redis)
        if self._needs_store and self._store is None:
            self._store = await asyncio.to_thread(minio_store, self.infra)
        for consumer in self.consumers:
            await consumer.start()

    async def _after_startup(self) -> None:
        for name, factory in self._task_factories:
            self._tasks.append(asyncio.create_task(factory(), name=f"{self.name}:{name}"))
        if self.redis is not None and self.consumers:  # lag/pending gauges of the groups this service reads
            pairs = [(consumer.spec.stream, consumer.spec.group) for consumer in self.consumers]
            self._tasks.append(asyncio.create_task(run_group_metrics(self.redis, pairs),
                                                   name=f"{self.name}:group_metrics"))
        self.started = True
        log.info("service.started", service=self.name, consumers=len(self.consumers))

    async def _on_shutdown(self) -> None:
        self.started = False
        for hook in self._stopping_hooks:
            await hook()
        for consumer in self.consumers:
            await consumer.stop_reclaimer()

    async def _after_shutdown(self) -> None:
        for consumer in self.consumers:
            await consumer.drain(self._drain_timeout_s)
        await cancel_and_wait(self._tasks)
        for hook in self._stop_hooks:
            try:
                await hook()
            except Exception as exc:  # noqa: BLE001 - the remaining hooks and the close still run
                log.error("service.stop_hook_failed", service=self.name, error=type(exc).__name__, detail=str(exc)[:200])
        if self.redis is not None:
            await self.redis.aclose()
        log.info("service.stopped", service=self.name)

    def build(self, http_app: Starlette | None = None,
              ready: Callable[[], bool | Awaitable[bool]] | None = None) -> AsgiFastStream:
        """The FastStream ASGI app: subscribers, the service's HTTP routes, /healthz, /readyz, /metrics."""
        http_app = http_app or Starlette()
        add_probe_routes(http_app, ready or (lambda: self.started))
        app = AsgiFastStream(
            self.broker,
            asgi_routes=asgi_routes(http_app),
            logger=None,
            on_startup=[self._on_startup],
            after_startup=[self._after_startup],
            on_shutdown=[self._on_shutdown],
            after_shutdown=[self._after_shutdown],
        )
        # AsgiFastStream matches exact paths only: a path with parameters (/devices/{id}/stats,
        # /models/{name}/{version}/report) falls through to the service's own app, which also answers the 404s.
        app.not_found = http_app  # type: ignore[method-assign]
        return app
