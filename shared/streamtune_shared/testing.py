"""Fakes for unit and component tests: an in-memory bus and object store (never used in services)."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel

from .bus import Forward, ForwardResult, encode
from .storage import ObjectNotFound


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 60.0, *,
                     interval_s: float = 0.1, on_timeout: Callable[[], str] | None = None) -> None:
    """Poll ``check`` until it holds; after ``timeout_s`` fail naming ``what`` (plus ``on_timeout()``'s text)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():
        if loop.time() > deadline:
            detail = f"\n{on_timeout()}" if on_timeout is not None else ""
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}{detail}")
        await asyncio.sleep(interval_s)


class InMemoryBus:
    """Records what would be published and acknowledged; honours dedupe keys like the Lua script."""

    def __init__(self) -> None:
        self.streams: dict[str, list[bytes]] = defaultdict(list)
        self.acked: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.dedupe: set[str] = set()
        self.touched: list[tuple[str, str, str, tuple[str, ...]]] = []

    def messages(self, stream: str) -> list[dict[str, Any]]:
        """The JSON documents published to a stream, decoded."""
        return [json.loads(p) for p in self.streams[stream]]

    async def publish(self, stream: str, message: BaseModel) -> str:
        return await self.publish_bytes(stream, encode(message))

    async def publish_bytes(self, stream: str, payload: bytes) -> str:
        self.streams[stream].append(payload)
        return f"0-{len(self.streams[stream])}"

    async def forward(self, source: str, group: str, items: Sequence[Forward]) -> list[ForwardResult]:
        results = []
        for item in items:
            fresh = item.dedupe_key is None or item.dedupe_key not in self.dedupe
            if fresh and item.dedupe_key is not None:
                self.dedupe.add(item.dedupe_key)
            if fresh and item.target:
                self.streams[item.target].append(item.payload or b"")
            self.acked[(source, group)].append(item.entry_id)
            results.append(ForwardResult.PUBLISHED if fresh else ForwardResult.DUPLICATE)
        return results

    async def ack(self, source: str, group: str, ids: Sequence[str]) -> int:
        self.acked[(source, group)].extend(ids)
        return len(ids)

    async def ack_and_publish(
        self, source: str, group: str, ids: Sequence[str], target: str, message: BaseModel
    ) -> int:
        await self.publish(target, message)
        return await self.ack(source, group, ids)


    async def touch(self, stream: str, group: str, consumer: str, ids: Sequence[str]) -> None:
        self.touched.append((stream, group, consumer, tuple(ids)))


class InMemoryObjectStore:
    """An ObjectStore in a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.objects[key] = bytes(data)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise ObjectNotFound(key) from None

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))

    def exists(self, key: str) -> bool:
        return key in self.objects

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)


class InMemoryRolloutControl:
    """The rollout control of one predictor process on an in-memory store (no Redis, no lock needed)."""

    def __init__(self, store: InMemoryObjectStore, layout: Any = None, consumer: str = "test-predictor") -> None:
        from .model_registry import RegistryLayout  # noqa: PLC0415 - keeps this module's imports light

        self.store, self.layout, self.consumer = store, layout or RegistryLayout(), consumer
        self.applied_revisions: dict[str, int] = {}
        self.notices: list[Any] = []
        self.beats = 0
        self.shadow: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])

    async def change(self, dataset: str, change: Callable[[Any, Any], Any]) -> Any:
        from .rollout import RolloutChanged, read_state, write_state  # noqa: PLC0415
        from .schemas import utcnow  # noqa: PLC0415

        current = read_state(self.store, self.layout, dataset)
        changed = change(current, utcnow())
        if changed is not None:
            write_state(self.store, self.layout, changed)
            self.notices.append(RolloutChanged(dataset=dataset, revision=changed.revision,
                                               action=changed.changed_by, at=changed.updated_at))
        return changed

    async def applied(self, dataset: str, revision: int) -> None:
        self.applied_revisions[dataset] = revision

    async def heartbeat(self) -> None:
        self.beats += 1

    async def leave(self, datasets: list[str]) -> None:
        for dataset in datasets:
            self.applied_revisions.pop(dataset, None)

    async def add_shadow_agreement(self, dataset: str, version: str, compared: int, agreement: float) -> None:
        totals = self.shadow[(dataset, version)]
        totals[0] += compared
        totals[1] += agreement
