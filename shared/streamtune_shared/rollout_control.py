"""Changing a dataset's serving state safely, and seeing which predictor processes applied it (Redis + S3).

A change runs under a per-dataset Redis lock: read the state, apply a pure transition from
``rollout``, write it with a higher revision, announce it on ``models.control``. Every predictor
applies it and records the revision in ``streamtune:rollout:applied:<dataset>`` (consumer -> revision);
each also keeps a heartbeat in ``streamtune:rollout:predictors`` so operators can tell live processes
from gone ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

from redis.asyncio import Redis

from . import streams
from .bus import encode
from .model_registry import RegistryLayout
from .rollout import RolloutChanged, RolloutRefused, ServingState, read_state, write_state
from .schemas import utcnow
from .storage import ObjectStore

LOCK_KEY = "streamtune:rollout:lock:{dataset}"
APPLIED_KEY = "streamtune:rollout:applied:{dataset}"
PREDICTORS_KEY = "streamtune:rollout:predictors"
SHADOW_KEY = "streamtune:rollout:shadow:{dataset}:{version}"
LOCK_TIMEOUT_S = 30.0
LOCK_WAIT_S = 15.0

Change = Callable[[ServingState | None, datetime], ServingState | None]


async def change_state(redis: Redis, store: ObjectStore, layout: RegistryLayout, dataset: str,
                       change: Change) -> ServingState | None:
    """Apply ``change`` to a dataset's state under its lock; store and announce the result.

    ``change(current, now)`` returns the new state, or None for "nothing to change" (then nothing is
    written). Raises ``RolloutRefused`` from the transition, or when the lock cannot be had.
    """
    lock = redis.lock(LOCK_KEY.format(dataset=dataset), timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_WAIT_S)
    if not await lock.acquire():
        raise RolloutRefused(f"another change of {dataset} is in progress; try again")
    try:
        current = await asyncio.to_thread(read_state, store, layout, dataset)
        changed = change(current, utcnow())
        if changed is None:
            return None
        if current is not None and changed.revision <= current.revision:
            raise RolloutRefused(f"stale change of {dataset}: revision {changed.revision} <= {current.revision}")
        await asyncio.to_thread(write_state, store, layout, changed)
        notice = RolloutChanged(dataset=dataset, revision=changed.revision, action=changed.changed_by,
                                at=changed.updated_at)
        await redis.xadd(streams.MODELS_CONTROL, {streams.PAYLOAD_FIELD: encode(notice)})
        return changed
    finally:
        try:
            await lock.release()
        except Exception:  # noqa: BLE001 - the lock expired by itself: the write above is what counts
            pass


async def record_applied(redis: Redis, consumer: str, dataset: str, revision: int) -> None:
    """Say that this predictor process now serves ``revision`` of the dataset."""
    await redis.hset(APPLIED_KEY.format(dataset=dataset), consumer, revision)


async def heartbeat(redis: Redis, consumer: str) -> None:
    """Say that this predictor process is alive (unix time)."""
    await redis.hset(PREDICTORS_KEY, consumer, f"{time.time():.3f}")


async def forget_consumer(redis: Redis, consumer: str, datasets: list[str]) -> None:
    """A predictor process that stops removes itself, so a missing acknowledgement means a live laggard."""
    pipe = redis.pipeline(transaction=False)
    pipe.hdel(PREDICTORS_KEY, consumer)
    for dataset in datasets:
        pipe.hdel(APPLIED_KEY.format(dataset=dataset), consumer)
    await pipe.execute()


async def applied_revisions(redis: Redis, dataset: str) -> dict[str, int]:
    """Which revision of the dataset each predictor process serves."""
    raw = await redis.hgetall(APPLIED_KEY.format(dataset=dataset))
    return {_text(k): int(v) for k, v in raw.items()}


async def live_predictors(redis: Redis, within_s: float) -> dict[str, float]:
    """Predictor processes with a heartbeat in the last ``within_s`` seconds, with their last beat."""
    now = time.time()
    beats = {_text(k): float(v) for k, v in (await redis.hgetall(PREDICTORS_KEY)).items()}
    return {name: at for name, at in beats.items() if now - at <= within_s}


async def add_shadow_agreement(redis: Redis, dataset: str, version: str, compared: int, agreement: float) -> None:
    """Accumulate how far a shadow version agreed with the primary (sum of per-event agreement in [0, 1])."""
    key = SHADOW_KEY.format(dataset=dataset, version=version)
    pipe = redis.pipeline(transaction=False)
    pipe.hincrby(key, "compared", compared)
    pipe.hincrbyfloat(key, "agreement_sum", agreement)
    await pipe.execute()


async def shadow_agreement(redis: Redis, dataset: str, version: str) -> tuple[int, float | None]:
    """Events compared and mean agreement of a shadow version (None before any comparison)."""
    raw = await redis.hgetall(SHADOW_KEY.format(dataset=dataset, version=version))
    compared = int(raw.get(b"compared", 0))
    total = float(raw.get(b"agreement_sum", 0.0))
    return compared, (total / compared if compared else None)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisRolloutControl:
    """What a predictor process does to the rollout state: change it, acknowledge it, beat its heart."""

    def __init__(self, redis: Redis, store: ObjectStore, layout: RegistryLayout, consumer: str) -> None:
        self._redis, self._store, self._layout, self.consumer = redis, store, layout, consumer

    async def change(self, dataset: str, change: Change) -> ServingState | None:
        """``change_state`` on this deployment's Redis and store."""
        return await change_state(self._redis, self._store, self._layout, dataset, change)

    async def applied(self, dataset: str, revision: int) -> None:
        """Acknowledge that this process serves ``revision`` of the dataset."""
        await record_applied(self._redis, self.consumer, dataset, revision)

    async def heartbeat(self) -> None:
        """This process is alive."""
        await heartbeat(self._redis, self.consumer)

    async def leave(self, datasets: list[str]) -> None:
        """This process stops: remove its heartbeat and acknowledgements."""
        await forget_consumer(self._redis, self.consumer, datasets)

    async def add_shadow_agreement(self, dataset: str, version: str, compared: int, agreement: float) -> None:
        """Accumulate a shadow's agreement with the primary."""
        await add_shadow_agreement(self._redis, dataset, version, compared, agreement)
