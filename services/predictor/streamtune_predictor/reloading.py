"""Keeping the registry current: the startup scan of the object store, then hot reload on announcements."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

import structlog
from pydantic import ValidationError
from redis.asyncio import Redis
from streamtune_shared import streams
from streamtune_shared.model_card import VersionRejected
from streamtune_shared.model_registry import RegistryLayout, is_version
from streamtune_shared.schemas import ModelPublished
from streamtune_shared.tasks import raise_if_cancelled

from .metrics import RELOADS, serving_changed
from .registry import ModelRegistry, ServingModel
from .versions import ReloadDecision, reload_decision, startup_candidates

log = structlog.get_logger(__name__)

LoadVersion = Callable[[str, str], ServingModel]
ListKeys = Callable[[str], list[str]]
LoadOutcome = Literal["loaded", "rejected", "failed"]
RETRY_PAUSE_S = 1.0


class AnnouncementFeed(Protocol):
    """Where announcements of new model versions come from."""

    async def start(self) -> None: ...

    async def read(self, block_ms: int) -> list[bytes]: ...


class RedisAnnouncementFeed:
    """``models.published`` read with plain XREAD from where the stream ended at startup.

    No consumer group: a group hands each entry to one consumer, but every replica must see
    every announcement to reload its own copy of the model.
    """

    def __init__(self, redis: Redis, stream: str = streams.MODELS_PUBLISHED) -> None:
        self._redis = redis
        self._stream = stream
        self._cursor = "0-0"

    async def start(self) -> None:
        """Remember the last entry now (what ``$`` means at startup); the startup scan covers older ones."""
        last = await self._redis.xrevrange(self._stream, count=1)
        self._cursor = _text(last[0][0]) if last else "0-0"

    async def read(self, block_ms: int) -> list[bytes]:
        """Announcements after the cursor, waiting up to ``block_ms`` for one."""
        response = await self._redis.xread({self._stream: self._cursor}, block=block_ms, count=64)
        payloads = []
        for _, entries in response or []:
            for entry_id, fields in entries:
                self._cursor = _text(entry_id)
                payload = fields.get(streams.PAYLOAD_FIELD.encode(), fields.get(streams.PAYLOAD_FIELD))
                if payload is not None:
                    payloads.append(payload)
        return payloads


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ModelReloader:
    """Loads configured models at startup and newer versions when they are announced.

    Loads run in a thread beside the serving version; a rejected version never replaces it.
    """

    def __init__(self, registry: ModelRegistry, *, layout: RegistryLayout, list_keys: ListKeys, load: LoadVersion,
                 rescan_s: float) -> None:
        self.registry = registry
        self._layout = layout
        self._list_keys = list_keys
        self._load_version = load
        self._rescan_s = rescan_s
        self._refused: dict[str, set[str]] = defaultdict(set)
        self._retry: dict[str, str] = {}

    async def run(self, feed: AnnouncementFeed, block_ms: int) -> None:
        """Scan the store, then follow announcements until cancelled; missing models are looked for again."""
        await _until_done(feed.start, "announcements.start_failed")
        await self.load_missing()
        next_scan = time.monotonic() + self._rescan_s
        while True:
            try:
                payloads = await feed.read(block_ms)
            except Exception as exc:  # noqa: BLE001 - Redis unavailable: keep serving, read again
                log.warning("announcements.read_failed", error=type(exc).__name__)
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            finally:
                raise_if_cancelled()  # a blocking XREAD can swallow the cancel of a shutdown
            for payload in payloads:
                await self.on_announcement(payload)
            if time.monotonic() >= next_scan:
                await self.retry_failed()
                await self.load_missing()
                next_scan = time.monotonic() + self._rescan_s

    async def load_missing(self) -> None:
        """For each model with nothing loaded: the pinned version, else the newest committed one that loads."""
        for name in self.registry.missing():
            try:
                keys = await asyncio.to_thread(self._list_keys, self._layout.model_prefix(name))
            except Exception as exc:  # noqa: BLE001 - object store unavailable: next scan
                log.warning("model.scan_failed", model=name, error=type(exc).__name__)
                continue
            pinned = self.registry.pinned(name)
            candidates = startup_candidates(self._layout.committed_versions(keys, name), pinned,
                                            self._refused[name])
            if not candidates:
                log.info("model.not_found", model=name, pinned=pinned)
            for version in candidates:
                if await self.load(name, version) != "rejected":
                    break

    async def on_announcement(self, payload: bytes) -> None:
        """Load an announced version when it is for a configured, unpinned model and newer than the serving one."""
        try:
            announced = ModelPublished.model_validate_json(payload)
        except ValidationError:
            log.warning("announcement.invalid")
            return
        name, version = announced.model_name, announced.version
        if name not in self.registry.names:
            return
        decision = self._decision(name, version)
        if decision != "load":
            log.info("model.reload_skipped", model=name, version=version, reason=decision)
            return
        await self.load(name, version)

    async def retry_failed(self) -> None:
        """Try again the announced versions whose load failed for a transient reason.

        Models with nothing loaded are left to ``load_missing``, which runs right after and would
        otherwise download the same version a second time.
        """
        missing = set(self.registry.missing())
        for name, version in list(self._retry.items()):
            if name in missing:
                continue
            if self._decision(name, version) == "load":
                await self.load(name, version)
            else:
                self._retry.pop(name, None)

    def _decision(self, name: str, version: str) -> ReloadDecision:
        serving = self.registry.get(name)
        return reload_decision(version, serving.version if serving else None, self.registry.pinned(name))

    async def load(self, name: str, version: str) -> LoadOutcome:
        """Load one version in a thread and serve it; a rejected or failed load leaves the old one serving."""
        log.info("model.loading", model=name, version=version)
        try:
            if not is_version(version):
                raise VersionRejected("not a valid version name")
            model = await asyncio.to_thread(self._load_version, name, version)
        except VersionRejected as exc:
            self._refused[name].add(version)
            self._retry.pop(name, None)
            RELOADS.labels("rejected").inc()
            log.error("model.rejected", model=name, version=version, reason=exc.reason)
            return "rejected"
        except Exception as exc:  # noqa: BLE001 - object store unavailable: retried on the next scan
            self._retry[name] = version
            log.warning("model.load_failed", model=name, version=version, error=type(exc).__name__,
                        detail=str(exc)[:200])
            return "failed"
        self._retry.pop(name, None)
        previous = self.registry.install(model)
        serving_changed(name, version, previous.version if previous else None)
        RELOADS.labels("loaded").inc()
        log.info("model.loaded", model=name, version=version, task=model.task,
                 replaced=previous.version if previous else None)
        return "loaded"


async def _until_done(step: Callable[[], Awaitable[None]], failure: str) -> None:
    while True:
        raise_if_cancelled()
        try:
            await step()
            return
        except Exception as exc:  # noqa: BLE001 - Redis unavailable at startup: try again
            log.warning(failure, error=type(exc).__name__)
            await asyncio.sleep(RETRY_PAUSE_S)
