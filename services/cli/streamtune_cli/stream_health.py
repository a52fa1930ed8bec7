"""Stream and consumer-group health from XINFO replies: lag, pending, idle consumers, dead ones. Pure.

A consumer is dead when it holds pending entries and has been idle longer than the threshold: its
process is gone (or stuck) and its entries wait for a reclaimer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_DEAD_AFTER_S = 300


@dataclass(frozen=True)
class ConsumerHealth:
    """One consumer of a group (XINFO CONSUMERS)."""

    name: str
    pending: int
    idle_ms: int
    dead: bool


@dataclass(frozen=True)
class GroupHealth:
    """One consumer group of a stream (XINFO GROUPS); ``lag`` is None when Redis cannot tell (after XDEL)."""

    group: str
    lag: int | None
    pending: int
    entries_read: int | None
    last_delivered_id: str
    consumers: list[ConsumerHealth] = field(default_factory=list)

    @property
    def dead_consumers(self) -> list[str]:
        """Names of the group's dead consumers."""
        return [c.name for c in self.consumers if c.dead]


@dataclass(frozen=True)
class StreamHealth:
    """One stream (XINFO STREAM) and its groups; a stream nobody wrote to yet does not exist."""

    stream: str
    exists: bool
    length: int = 0
    last_id: str | None = None
    groups: list[GroupHealth] = field(default_factory=list)


def is_dead(pending: int, idle_ms: int, dead_after_ms: int) -> bool:
    """The dead-consumer rule: entries pending, and idle for longer than the threshold."""
    return pending > 0 and idle_ms > dead_after_ms


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def consumer_health(info: Mapping[str, Any], dead_after_ms: int) -> ConsumerHealth:
    """A consumer from its XINFO CONSUMERS entry."""
    pending, idle = int(info["pending"]), int(info["idle"])
    return ConsumerHealth(name=_text(info["name"]), pending=pending, idle_ms=idle,
                          dead=is_dead(pending, idle, dead_after_ms))


def group_health(info: Mapping[str, Any], consumers: Sequence[ConsumerHealth]) -> GroupHealth:
    """A group from its XINFO GROUPS entry (``lag`` and ``entries-read`` exist from Redis 7)."""
    lag, read = info.get("lag"), info.get("entries-read")
    return GroupHealth(group=_text(info["name"]), lag=None if lag is None else int(lag), pending=int(info["pending"]),
                       entries_read=None if read is None else int(read),
                       last_delivered_id=_text(info["last-delivered-id"]), consumers=list(consumers))


def stream_health(stream: str, info: Mapping[str, Any] | None, groups: Sequence[GroupHealth]) -> StreamHealth:
    """A stream from its XINFO STREAM reply (None: the stream does not exist)."""
    if info is None:
        return StreamHealth(stream=stream, exists=False)
    return StreamHealth(stream=stream, exists=True, length=int(info["length"]),
                        last_id=_text(info["last-generated-id"]), groups=list(groups))


def status_document(health: Sequence[StreamHealth], dead_after_s: int) -> dict[str, Any]:
    """The ``status --json`` document."""
    streams = []
    for stream in health:
        document = asdict(stream)
        for group, group_document in zip(stream.groups, document["groups"], strict=True):
            group_document["dead_consumers"] = group.dead_consumers
        streams.append(document)
    return {"dead_after_s": dead_after_s, "streams": streams}


def format_duration(ms: int) -> str:
    """A short human duration: 850ms, 42s, 3m 12s, 5h 03m, 2d 04h."""
    if ms < 1_000:
        return f"{ms}ms"
    seconds = ms // 1_000
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def group_rows(health: Sequence[StreamHealth]) -> list[tuple[str, str, str, str, str, str, str]]:
    """Rows of the status table: stream, length, group, lag, pending, consumers, dead consumers."""
    rows = []
    for stream in health:
        length = str(stream.length) if stream.exists else "-"
        if not stream.groups:
            rows.append((stream.stream, length, "-", "-", "-", "-", ""))
        for group in stream.groups:
            lag = "?" if group.lag is None else str(group.lag)
            rows.append((stream.stream, length, group.group, lag, str(group.pending), str(len(group.consumers)),
                         ", ".join(group.dead_consumers)))
    return rows
