"""Consumer-group backlog as Prometheus gauges: lag and pending per (stream, group), from XINFO GROUPS.

Every service's runtime refreshes the groups its consumers read every ``REFRESH_S`` seconds, so
`/metrics` shows the same numbers KEDA scales on (deploy/k8s/keda.yaml: lagCount, pendingEntriesCount).
Replicas of one service all export the same values: aggregate with ``max by (stream, group)``.

Lag is what Redis 7 reports: entries added to the stream that the group was not yet given. Redis
reports none when it cannot tell (entries were deleted with XDEL after the group's last delivery);
then lag is counted from the entries after the group's last-delivered id, up to ``LAG_COUNT_LIMIT``
(the gauge then reads the limit: "at least this many").
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from .tasks import raise_if_cancelled

log = structlog.get_logger(__name__)

LAG = Gauge("streamtune_consumer_group_lag",
            "Stream entries not yet delivered to the consumer group (XINFO GROUPS lag)", ["stream", "group"])
PENDING = Gauge("streamtune_consumer_group_pending",
                "Entries delivered to the consumer group and not yet acknowledged (its PEL)", ["stream", "group"])
REFRESH_S = 15.0  # KEDA's pollingInterval and a usual scrape interval
LAG_COUNT_LIMIT = 2000  # the largest lagCount threshold in keda.yaml: counting further changes no decision


@dataclass(frozen=True)
class GroupBacklog:
    """One consumer group's backlog; ``lag`` is None when Redis cannot tell it."""

    stream: str
    group: str
    lag: int | None
    pending: int
    last_delivered_id: str


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_groups(stream: str, reply: Sequence[Mapping[Any, Any]], wanted: Iterable[str]) -> list[GroupBacklog]:
    """The backlog of the ``wanted`` groups from an XINFO GROUPS reply (groups not created yet are left out)."""
    wanted = set(wanted)
    backlogs = []
    for info in reply:
        fields = {_text(key): value for key, value in info.items()}
        name = _text(fields["name"])
        if name not in wanted:
            continue
        lag = fields.get("lag")  # absent before Redis 7, None when Redis cannot tell
        backlogs.append(GroupBacklog(stream=stream, group=name, lag=None if lag is None else int(lag),
                                     pending=int(fields["pending"]),
                                     last_delivered_id=_text(fields["last-delivered-id"])))
    return backlogs


def by_stream(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """(stream, group) pairs grouped per stream, duplicates dropped, in first-seen order."""
    groups: dict[str, list[str]] = {}
    for stream, group in pairs:
        if group not in groups.setdefault(stream, []):
            groups[stream].append(group)
    return groups


async def counted_lag(redis: Redis, backlog: GroupBacklog, limit: int = LAG_COUNT_LIMIT) -> int:
    """Entries after the group's last-delivered id, counted up to ``limit``."""
    entries = await redis.xrange(backlog.stream, min=f"({backlog.last_delivered_id}", max="+", count=limit)
    return len(entries)


async def read_backlogs(redis: Redis, stream: str, groups: Sequence[str]) -> list[GroupBacklog]:
    """The backlog of ``groups`` on ``stream``, lag counted where Redis reports none; [] for a missing stream."""
    try:
        reply = await redis.xinfo_groups(stream)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return []
        raise
    backlogs = parse_groups(stream, reply, groups)
    return [b if b.lag is not None else GroupBacklog(b.stream, b.group, await counted_lag(redis, b), b.pending,
                                                     b.last_delivered_id)
            for b in backlogs]


def export(backlogs: Iterable[GroupBacklog]) -> None:
    """Set the lag and pending gauges (a lag nobody could tell leaves the lag gauge as it was)."""
    for backlog in backlogs:
        if backlog.lag is not None:
            LAG.labels(backlog.stream, backlog.group).set(backlog.lag)
        PENDING.labels(backlog.stream, backlog.group).set(backlog.pending)


async def refresh(redis: Redis, groups: Mapping[str, Sequence[str]]) -> list[GroupBacklog]:
    """Read and export every stream's groups once; returns what was exported."""
    backlogs = [b for stream, names in groups.items() for b in await read_backlogs(redis, stream, names)]
    export(backlogs)
    return backlogs


async def run_group_metrics(redis: Redis, pairs: Iterable[tuple[str, str]], interval_s: float | None = None) -> None:
    """Refresh the gauges of these (stream, group) pairs every ``interval_s`` (``REFRESH_S``) until cancelled."""
    groups, interval_s = by_stream(pairs), REFRESH_S if interval_s is None else interval_s
    while True:
        raise_if_cancelled()
        try:
            await refresh(redis, groups)
        except RedisError as exc:  # Redis away for a moment: the gauges keep their last values
            log.warning("group_metrics.refresh_failed", error=type(exc).__name__, detail=str(exc)[:200])
        await asyncio.sleep(interval_s)
