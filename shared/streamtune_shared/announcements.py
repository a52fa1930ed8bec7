"""Following announcement streams (``models.published``, ``models.control``) from every replica, without a group."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import structlog
from pydantic import ValidationError
from redis.asyncio import Redis

from . import streams
from .schemas import ModelPublished
from .tasks import raise_if_cancelled

log = structlog.get_logger(__name__)


class ControlFeed(Protocol):
    """Where announcements of new versions and rollout changes come from, as (stream, payload) pairs."""

    async def start(self) -> None: ...

    async def read(self, block_ms: int) -> list[tuple[str, bytes]]: ...


class RedisControlFeed:
    """The announcement streams read with plain XREAD from where they ended at startup.

    No consumer group: a group hands each entry to one consumer, but every replica must see every
    announcement to update its own copy of the routes.
    """

    def __init__(self, redis: Redis,
                 names: Sequence[str] = (streams.MODELS_PUBLISHED, streams.MODELS_CONTROL)) -> None:
        self._redis = redis
        self._cursors = {name: "0-0" for name in names}

    async def start(self) -> None:
        """Remember the last entry of each stream now (what ``$`` means); the startup sync covers older ones."""
        for name in self._cursors:
            last = await self._redis.xrevrange(name, count=1)
            self._cursors[name] = _text(last[0][0]) if last else "0-0"

    async def read(self, block_ms: int) -> list[tuple[str, bytes]]:
        """Entries after the cursors, waiting up to ``block_ms`` for one."""
        response = await self._redis.xread(dict(self._cursors), block=block_ms, count=64)
        found = []
        for stream, entries in response or []:
            name = _text(stream)
            for entry_id, fields in entries:
                self._cursors[name] = _text(entry_id)
                payload = fields.get(streams.PAYLOAD_FIELD.encode(), fields.get(streams.PAYLOAD_FIELD))
                if payload is not None:
                    found.append((name, payload))
        return found


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def parse_announcement(payload: bytes) -> ModelPublished | None:
    """The ``models.published`` message in a payload, or None (logged) when it is not one."""
    try:
        return ModelPublished.model_validate_json(payload)
    except ValidationError:
        log.warning("announcement.invalid")
        return None


OnEntry = Callable[[str, bytes], Awaitable[None]]
Rescan = Callable[[], Awaitable[None]]


async def follow(feed: ControlFeed, block_ms: int, on_entry: OnEntry, rescan: Rescan, rescan_s: float,
                 retry_pause_s: float = 1.0) -> None:
    """Start the feed (retrying while Redis is away), rescan, then hand every entry to ``on_entry`` until
    cancelled, rescanning every ``rescan_s``; a failed read is logged and retried, never fatal."""
    while True:
        raise_if_cancelled()
        try:
            await feed.start()
            break
        except Exception as exc:  # noqa: BLE001 - Redis unavailable at startup: try again
            log.warning("announcements.start_failed", error=type(exc).__name__)
            await asyncio.sleep(retry_pause_s)
    await rescan()
    next_scan = time.monotonic() + rescan_s
    while True:
        try:
            entries = await feed.read(block_ms)
        except Exception as exc:  # noqa: BLE001 - Redis unavailable: keep serving, read again
            log.warning("announcements.read_failed", error=type(exc).__name__)
            await asyncio.sleep(retry_pause_s)
            continue
        finally:
            raise_if_cancelled()  # a blocking XREAD can swallow the cancel of a shutdown
        for stream, payload in entries:
            await on_entry(stream, payload)
        if time.monotonic() >= next_scan:
            await rescan()
            next_scan = time.monotonic() + rescan_s
