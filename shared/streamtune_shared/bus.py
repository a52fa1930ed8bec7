"""Redis-streams plumbing shared by every service.

- plain-JSON entries (one ``payload`` field), never FastStream's binary envelope;
- consumer groups created from the start of the stream (``0``), one consumer name per process;
- atomic "publish what an entry produced, then acknowledge it" in one Lua script, with an
  optional dedupe key, so a crash at any point neither loses nor duplicates an output;
- batch subscribers with ``max_records``, a reclaimer (XAUTOCLAIM) for entries left pending
  by a dead consumer, and dead-lettering after ``max_deliveries``;
- in-flight batches are finished on shutdown (``BatchConsumer.drain``).
"""

from __future__ import annotations

import asyncio
import base64
import enum
import os
import socket
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisBatchStreamMessage as BatchMessage
from faststream.redis.message import FAKE_CONSUMER, RedisBatchStreamMessage
from faststream.redis.parser import MessageFormat
from prometheus_client import Counter, Histogram
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from . import streams
from .schemas import DeadLetter, FieldError
from .tasks import cancel_and_wait, raise_if_cancelled

log = structlog.get_logger(__name__)

DLQ_ORIGINAL_LIMIT = 256 * 1024
_PAYLOAD = streams.PAYLOAD_FIELD.encode()
_FASTSTREAM_DATA = b"__data__"

ENTRIES = Counter("streamtune_entries_total", "Stream entries handled", ["stream", "group", "outcome"])
RECLAIMED = Counter("streamtune_entries_reclaimed_total", "Entries reclaimed from idle consumers", ["stream", "group"])
STALE = Counter("streamtune_entries_already_acked_total",
                "Entries finished here after another worker had already acked them (output not published)",
                ["stream", "group"])
BATCH_FAILURES = Counter("streamtune_batch_failures_total", "Batches whose processing raised", ["stream", "group"])
BATCH_SIZE = Histogram("streamtune_batch_size", "Entries per batch handed to a consumer group's handler",
                       ["stream", "group"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048))


def consumer_name() -> str:
    """A consumer name unique to this process: hostname and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


def encode(message: BaseModel) -> bytes:
    """The JSON bytes of a message, as written to the ``payload`` field."""
    return message.model_dump_json().encode()


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry as read from Redis."""

    id: str
    fields: Mapping[bytes, bytes]
    deliveries: int = 1

    @property
    def payload(self) -> bytes | None:
        """The ``payload`` field; TestRedisBroker's ``__data__`` stands in for it in component tests."""
        return self.fields.get(_PAYLOAD, self.fields.get(_FASTSTREAM_DATA))


class ForwardResult(enum.Enum):
    """What ``Bus.forward`` did with one item; truthy only when its payload was published."""

    PUBLISHED = 1
    DUPLICATE = 0  # acknowledged; the dedupe key existed, so nothing was published
    ALREADY_ACKED = -1  # another worker had finished the entry: nothing published, nothing acknowledged

    def __bool__(self) -> bool:
        return self is ForwardResult.PUBLISHED


@dataclass(frozen=True, slots=True)
class Forward:
    """What one input entry produced: a payload for ``target`` (or nothing), then its ack."""

    entry_id: str
    target: str | None
    payload: bytes | None = None
    dedupe_key: str | None = None
    dedupe_ttl_s: int = 86_400


def dead_letter(
    entry: Entry,
    *,
    stage: str,
    reason: str,
    source_stream: str,
    errors: Sequence[FieldError] = (),
    event_id: str | None = None,
) -> DeadLetter:
    """A dead letter for a stream entry; without a payload field, its fields as ``name=value`` lines."""
    raw = entry.payload
    if raw is None:
        raw = b"".join(k + b"=" + v + b"\n" for k, v in entry.fields.items())
    return dead_letter_for_bytes(raw, stage=stage, reason=reason, source_stream=source_stream,
                                 entry_id=entry.id, deliveries=entry.deliveries, errors=errors, event_id=event_id)


def dead_letter_forward(
    entry: Entry,
    *,
    stage: str,
    reason: str,
    source_stream: str,
    errors: Sequence[FieldError] = (),
    event_id: str | None = None,
) -> Forward:
    """An entry's dead letter as its output: published to ``events.dlq`` and acked with ``Bus.forward``."""
    letter = dead_letter(entry, stage=stage, reason=reason, source_stream=source_stream, errors=errors,
                         event_id=event_id)
    return Forward(entry.id, streams.DLQ, encode(letter))


def dead_letter_for_bytes(
    raw: bytes,
    *,
    stage: str,
    reason: str,
    source_stream: str | None = None,
    entry_id: str | None = None,
    deliveries: int = 1,
    errors: Sequence[FieldError] = (),
    event_id: str | None = None,
) -> DeadLetter:
    """A dead letter carrying original bytes (base64, and as text when it is UTF-8), e.g. an HTTP body."""
    truncated = len(raw) > DLQ_ORIGINAL_LIMIT
    raw = raw[:DLQ_ORIGINAL_LIMIT]
    try:
        text: str | None = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return DeadLetter(
        stage=stage,
        reason=reason,
        errors=tuple(errors),
        source_stream=source_stream,
        entry_id=entry_id,
        event_id=event_id,
        deliveries=deliveries,
        original=text,
        original_b64=base64.b64encode(raw).decode(),
        original_truncated=truncated,
    )


# 1: published and acked; 0: acked, the dedupe key existed; -1: someone else already acked the
# entry (it was reclaimed and finished elsewhere while this worker held it): nothing is published.
_FORWARD_LUA = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return -1
end
if KEYS[3] ~= '' then
  if not redis.call('SET', KEYS[3], ARGV[2], 'NX', 'EX', ARGV[4]) then
    return 0
  end
end
if KEYS[2] ~= '' then
  redis.call('XADD', KEYS[2], '*', 'payload', ARGV[3])
end
return 1
"""

# Publishes only when at least one of the entries was still pending: entries all finished
# elsewhere (reclaimed from a stalled worker) must not announce their output a second time.
_ACK_AND_PUBLISH_LUA = """
local acked = 0
for i = 3, #ARGV, 1000 do
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if acked > 0 then
  redis.call('XADD', KEYS[2], '*', 'payload', ARGV[2])
end
return acked
"""


class Bus(Protocol):
    """What handlers need from the message bus; ``RedisBus`` is real, ``testing.InMemoryBus`` a fake."""

    async def publish(self, stream: str, message: BaseModel) -> str: ...

    async def publish_bytes(self, stream: str, payload: bytes) -> str: ...

    async def forward(self, source: str, group: str, items: Sequence[Forward]) -> list[ForwardResult]: ...

    async def ack(self, source: str, group: str, ids: Sequence[str]) -> int: ...

    async def ack_and_publish(
        self, source: str, group: str, ids: Sequence[str], target: str, message: BaseModel
    ) -> int: ...

    async def touch(self, stream: str, group: str, consumer: str, ids: Sequence[str]) -> None: ...


class RedisBus:
    """The bus on a real Redis: every write that acknowledges an input is one atomic script."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._forward = redis.register_script(_FORWARD_LUA)
        self._ack_and_publish = redis.register_script(_ACK_AND_PUBLISH_LUA)

    async def publish(self, stream: str, message: BaseModel) -> str:
        """Append one message to a stream; returns the entry id."""
        return await self.publish_bytes(stream, encode(message))

    async def publish_bytes(self, stream: str, payload: bytes) -> str:
        """Append a payload exactly as given (e.g. a producer's own JSON bytes); returns the entry id."""
        entry_id = await self.redis.xadd(stream, {streams.PAYLOAD_FIELD: payload})
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def forward(self, source: str, group: str, items: Sequence[Forward]) -> list[ForwardResult]:
        """Publish each item's payload and ack its entry atomically; one ``ForwardResult`` per item.

        Nothing is published where the dedupe key existed, or where the entry was no longer
        pending (another worker reclaimed and finished it), so an output never doubles.
        """
        if not items:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for item in items:
            await self._forward(
                keys=[source, item.target or "", item.dedupe_key or ""],
                args=[group, item.entry_id, item.payload or b"", item.dedupe_ttl_s],
                client=pipe,
            )
        results = [ForwardResult(int(r)) for r in await pipe.execute()]
        self._count_stale(source, group, results.count(ForwardResult.ALREADY_ACKED))
        return results

    @staticmethod
    def _count_stale(source: str, group: str, stale: int) -> None:
        if stale:
            STALE.labels(source, group).inc(stale)
            log.warning("entries.already_acked", stream=source, group=group, count=stale)

    async def ack(self, source: str, group: str, ids: Sequence[str]) -> int:
        """Acknowledge entries that produced nothing."""
        return int(await self.redis.xack(source, group, *ids)) if ids else 0

    async def ack_and_publish(
        self, source: str, group: str, ids: Sequence[str], target: str, message: BaseModel
    ) -> int:
        """Acknowledge many entries and publish one message atomically (e.g. a stored shard).

        Returns how many entries were acknowledged; when none was still pending, nothing is published.
        """
        acked = int(await self._ack_and_publish(keys=[source, target], args=[group, encode(message), *ids]))
        self._count_stale(source, group, len(ids) - acked)
        return acked

    async def touch(self, stream: str, group: str, consumer: str, ids: Sequence[str]) -> None:
        """Reset the idle time of entries this consumer still works on, so no reclaimer takes them.

        XCLAIM with JUSTID does not count as a delivery.
        """
        ids = list(ids)
        # Chunked: one XCLAIM with tens of thousands of ids would stall Redis.
        for start in range(0, len(ids), 1000):
            await self.redis.xclaim(stream, group, consumer, min_idle_time=0, message_ids=ids[start:start + 1000],
                                    justid=True)

    async def delivery_counts(self, stream: str, group: str, ids: Sequence[str]) -> dict[str, int]:
        """How often each pending entry was delivered (XPENDING)."""
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xpending_range(stream, group, min=entry_id, max=entry_id, count=1)
        counts: dict[str, int] = {}
        for entry_id, rows in zip(ids, await pipe.execute(), strict=True):
            counts[entry_id] = int(rows[0]["times_delivered"]) if rows else 1
        return counts

    async def ensure_group(self, stream: str, group: str) -> None:
        """Create the group at the start of the stream, so entries written before any worker started are read."""
        try:
            await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


class PlainJSONMessageFormat(MessageFormat):
    """FastStream message format with no envelope: the body bytes are the message."""

    @classmethod
    async def encode(cls, *, message: Any, reply_to: str | None, headers: dict[str, Any] | None,
                     correlation_id: str, serializer: Any = None, codec: Any = None) -> bytes:
        built = await cls.build(message=message, reply_to=reply_to, headers=headers,
                                correlation_id=correlation_id, serializer=serializer, codec=codec)
        return built.data

    @classmethod
    def parse(cls, data: bytes) -> tuple[bytes, dict[str, Any]]:
        return data, {}


def make_broker(redis_url: str) -> RedisBroker:
    """A RedisBroker with plain-JSON messages and no per-message logging."""
    return RedisBroker(redis_url, logger=None, message_format=PlainJSONMessageFormat)


async def _parse_entries(msg: Any) -> RedisBatchStreamMessage:
    ids = msg.get("message_ids") or []
    data = msg["data"]
    entries = [
        Entry(id=(ids[i].decode() if i < len(ids) else f"0-{i + 1}"), fields=fields)
        for i, fields in enumerate(data)
    ]
    message = RedisBatchStreamMessage(raw_message=msg, body=entries, consumer=FAKE_CONSUMER, group=None)
    if not ids:
        # TestRedisBroker's fake PEL is keyed by the publisher's correlation id, which the plain
        # format does not carry: an empty id tells it there is nothing to remove.
        message.correlation_id = ""
    return message


async def _decode_entries(msg: RedisBatchStreamMessage) -> Any:
    return msg.body


ProcessBatch = Callable[[list[Entry]], Awaitable[None]]


@dataclass(frozen=True)
class ConsumerSpec:
    """Where a batch consumer reads, and its delivery policy."""

    stream: str
    group: str
    stage: str
    consumer: str = field(default_factory=consumer_name)
    max_records: int = 256
    block_ms: int = 200
    claim_idle_ms: int = 30_000
    reclaim_every_s: float = 2.0
    max_deliveries: int = 5
    prune_idle_ms: int = 3_600_000


class BatchConsumer:
    """A FastStream batch subscriber plus a reclaimer and a keeper, running one ``process`` function.

    ``process(entries)`` must acknowledge every entry it finishes (through ``Bus.forward`` and
    friends). If it raises, its entries stay pending and are reclaimed after ``claim_idle_ms``,
    then retried one by one; an entry delivered more than ``max_deliveries`` times is
    dead-lettered with its original bytes.

    While an entry is in hand (its batch runs, it waits in a reclaimed round, or a handler
    ``hold``s it past its batch, e.g. in a buffer) the keeper resets its idle time every third of
    ``claim_idle_ms`` (XCLAIM JUSTID: not a delivery), so no reclaimer elsewhere takes a live entry.
    """

    def __init__(self, spec: ConsumerSpec, process: ProcessBatch, bus: Callable[[], RedisBus]) -> None:
        self.spec = spec
        self._process = process
        self._bus = bus
        self._inflight: set[asyncio.Task[None]] = set()
        self._reclaimer: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._held: Tally[str] = Tally()

    def hold(self, ids: Sequence[str]) -> None:
        """Keep these entries claimed until ``release``d (held twice, released twice)."""
        self._held.update(ids)

    def release(self, ids: Sequence[str]) -> None:
        """Stop keeping these entries claimed (finished, or left for another worker)."""
        self._held.subtract(ids)
        self._held += Tally()  # drops ids whose count reached zero

    @property
    def held(self) -> list[str]:
        """The entries kept claimed now."""
        return list(self._held)

    def register(self, broker: RedisBroker) -> None:
        """Subscribe to fresh entries (XREADGROUP ``>``) on the broker."""
        spec = self.spec
        sub = StreamSub(spec.stream, group=spec.group, consumer=spec.consumer, batch=True,
                        max_records=spec.max_records, polling_interval=spec.block_ms)

        @broker.subscriber(stream=sub, ack_policy=AckPolicy.MANUAL, parser=_parse_entries,
                           decoder=_decode_entries, title=f"{spec.stage}:{spec.stream}")
        async def on_batch(message: BatchMessage) -> None:
            await self._run(list(message.body))

    async def start(self) -> None:
        """Create the group at ``0``, start the reclaimer and the keeper; call before the broker starts."""
        await self._bus().ensure_group(self.spec.stream, self.spec.group)
        self._reclaimer = asyncio.create_task(self._reclaim_forever(), name=f"reclaim:{self.spec.stream}")
        self._keeper = asyncio.create_task(self._keep_forever(), name=f"keep:{self.spec.stream}")

    async def stop_reclaimer(self) -> None:
        """Stop reclaiming (first step of a graceful shutdown)."""
        if self._reclaimer is not None:
            await cancel_and_wait([self._reclaimer])
            self._reclaimer = None

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait for in-flight batches to finish (still kept claimed), then stop the keeper.

        What does not finish stays pending and is reclaimed by another worker after ``claim_idle_ms``.
        """
        if self._inflight:
            log.info("consumer.draining", stream=self.spec.stream, batches=len(self._inflight))
            await asyncio.wait(set(self._inflight), timeout=timeout_s)
        if self._keeper is not None:
            await cancel_and_wait([self._keeper])
            self._keeper = None

    async def keep_held_once(self) -> None:
        """Reset the idle time of every entry in hand (one keeper round)."""
        if ids := self.held:
            spec = self.spec
            await self._bus().touch(spec.stream, spec.group, spec.consumer, ids)

    async def _keep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.spec.claim_idle_ms / 3000)
            try:
                await self.keep_held_once()
            except Exception as exc:  # noqa: BLE001 - Redis hiccup: the next round tries again
                log.warning("keep.failed", stream=self.spec.stream, error=type(exc).__name__)

    async def _run(self, entries: list[Entry]) -> None:
        # Shielded so a shutdown that cancels the subscriber still finishes the batch in hand.
        task = asyncio.create_task(self._guarded(entries))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        await asyncio.shield(task)

    async def _guarded(self, entries: list[Entry]) -> None:
        spec = self.spec
        ids = [entry.id for entry in entries]
        self.hold(ids)
        BATCH_SIZE.labels(spec.stream, spec.group).observe(len(entries))
        try:
            await self._process(entries)
            ENTRIES.labels(spec.stream, spec.group, "processed").inc(len(entries))
        except Exception as exc:  # noqa: BLE001 - left pending, reclaimed and retried
            BATCH_FAILURES.labels(spec.stream, spec.group).inc()
            log.error("batch.failed", stream=spec.stream, group=spec.group, entries=len(entries),
                      error=type(exc).__name__, detail=str(exc)[:200])
        finally:
            self.release(ids)

    async def _reclaim_forever(self) -> None:
        rounds = 0
        while True:
            raise_if_cancelled()
            try:
                if rounds % 30 == 0:
                    await self.prune_consumers()
                rounds += 1
                claimed = await self.reclaim_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis unavailable: try again next round
                log.warning("reclaim.failed", stream=self.spec.stream, error=type(exc).__name__)
                claimed = 0
            if not claimed:
                await asyncio.sleep(self.spec.reclaim_every_s)

    async def reclaim_once(self) -> int:
        """Claim entries idle longer than ``claim_idle_ms``; dead-letter the exhausted, retry the rest."""
        spec, bus = self.spec, self._bus()
        _, raw, *_ = await bus.redis.xautoclaim(
            spec.stream, spec.group, spec.consumer, min_idle_time=spec.claim_idle_ms,
            start_id="0-0", count=spec.max_records,
        )
        if not raw:
            return 0
        ids = [entry_id.decode() for entry_id, _ in raw]
        self.hold(ids)  # the whole round is ours now, also the entries still waiting for their turn
        try:
            counts = await bus.delivery_counts(spec.stream, spec.group, ids)
            entries = [Entry(id=i, fields=f, deliveries=counts[i]) for i, (_, f) in zip(ids, raw, strict=True)]
            RECLAIMED.labels(spec.stream, spec.group).inc(len(entries))
            exhausted = [e for e in entries if e.deliveries > spec.max_deliveries]
            retry = [e for e in entries if e.deliveries <= spec.max_deliveries]
            if exhausted:
                await self._dead_letter_exhausted(bus, exhausted)
            log.info("entries.reclaimed", stream=spec.stream, retried=len(retry), dead_lettered=len(exhausted))
            # One by one, so that a poison entry cannot take a whole batch down with it.
            for entry in retry:
                await self._run([entry])
        finally:
            self.release(ids)
        return len(entries)

    async def prune_consumers(self) -> int:
        """Forget consumers of dead processes: nothing pending and idle longer than ``prune_idle_ms``.

        Every restart and scale-down leaves its hostname-pid consumer behind in the group.
        """
        spec, redis = self.spec, self._bus().redis
        pruned = 0
        for info in await redis.xinfo_consumers(spec.stream, spec.group):
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            if name != spec.consumer and info["pending"] == 0 and info["idle"] > spec.prune_idle_ms:
                pruned += await redis.xgroup_delconsumer(spec.stream, spec.group, name) == 0
        if pruned:
            log.info("consumers.pruned", stream=spec.stream, group=spec.group, count=pruned)
        return pruned

    async def _dead_letter_exhausted(self, bus: RedisBus, entries: list[Entry]) -> None:
        spec = self.spec
        reason = f"gave up after {spec.max_deliveries} failed deliveries"
        await bus.forward(spec.stream, spec.group, [
            dead_letter_forward(e, stage=spec.stage, reason=reason, source_stream=spec.stream) for e in entries
        ])
        ENTRIES.labels(spec.stream, spec.group, "dead_lettered").inc(len(entries))
        log.warning("entries.dead_lettered", stream=spec.stream, count=len(entries), reason=reason)


def monotonic_ms() -> float:
    """Milliseconds from a monotonic clock, for latency figures."""
    return time.perf_counter() * 1000.0
