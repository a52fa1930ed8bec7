"""Each device's last readings and calibration, where every predictor replica sees them (Redis, one Lua call per batch).

Why Redis and not a partition per device: the predictor group shares ``events.clean`` entries by whoever reads
first, so consecutive events of one device land on different replicas, and a ``kill -9`` hands a replica's
pending entries to another. Keeping the window in Redis, ordered by ``ts`` and updated atomically, makes every
replica see the same history without re-partitioning the stream.

Per dataset and device (keys under ``streamtune:predictor:device:<dataset>:<device>``):

- ``...:win``   sorted set, score = ts (epoch s), member = the event's JSON ``{"id", "r"}``; trimmed to the
  newest ``4 * window`` (slack for late, out-of-order events). Re-adding a redelivered event is a no-op.
- ``...:cal``   hash of the calibration sums ``n``, ``s|<sensor>``, ``q|<sensor>``, ``c|<sensor>`` over the
  device's first ``calibration_events`` events (in arrival order), then frozen;
- ``...:calids`` the ids of those events, so a redelivered one is still "calibrating" and counted once.

Keys expire after ``ttl_s`` without events: a device silent that long calibrates again.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

KEY_PREFIX = "streamtune:predictor:device:"

# KEYS: per device (win, cal, calids). ARGV: window, calibration_events, ttl_s, then per device: k, then k
# (event id, ts, member JSON). Reply per device: {calibrating flags..., cal hash flat, members with scores}.
_APPEND_LUA = """
local window, calib_n, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local a, out = 4, {}
for d = 1, #KEYS / 3 do
  local win, cal, ids = KEYS[3 * d - 2], KEYS[3 * d - 1], KEYS[3 * d]
  local k = tonumber(ARGV[a]); a = a + 1
  local flags, newest, oldest = {}, nil, nil
  for e = 1, k do
    local id, ts, member = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]; a = a + 3
    redis.call('ZADD', win, ts, member)
    if newest == nil or ts > newest then newest = ts end
    if oldest == nil or ts < oldest then oldest = ts end
    local calibrating = 0
    if redis.call('SISMEMBER', ids, id) == 1 then
      calibrating = 1
    elseif (tonumber(redis.call('HGET', cal, 'n')) or 0) < calib_n then
      redis.call('SADD', ids, id)
      redis.call('HINCRBY', cal, 'n', 1)
      for sensor, value in pairs(cjson.decode(member)['r']) do
        if type(value) == 'number' then
          redis.call('HINCRBYFLOAT', cal, 's|' .. sensor, value)
          redis.call('HINCRBYFLOAT', cal, 'q|' .. sensor, value * value)
          redis.call('HINCRBY', cal, 'c|' .. sensor, 1)
        end
      end
      calibrating = 1
    end
    flags[e] = calibrating
  end
  redis.call('ZREMRANGEBYRANK', win, 0, -(4 * window) - 1)
  -- everything between the batch's oldest and newest event (other replicas' events too), then a window older
  local span = redis.call('ZCOUNT', win, oldest, newest)
  local members = redis.call('ZREVRANGEBYSCORE', win, newest, '-inf', 'WITHSCORES', 'LIMIT', 0, span + window)
  for _, key in ipairs({win, cal, ids}) do redis.call('EXPIRE', key, ttl) end
  out[d] = {flags, redis.call('HGETALL', cal), members}
end
return out
"""


@dataclass(frozen=True)
class SensorEvent:
    """What the window keeps of one clean event."""

    event_id: str
    device_id: str
    ts: float
    readings: Mapping[str, float]


@dataclass(frozen=True)
class EventView:
    """One event's window (oldest first, the event last), its device's calibration sums, and whether it calibrates."""

    rows: tuple[Mapping[str, float], ...]
    calibration: Mapping[str, float]
    calibrating: bool


class DeviceWindowStore(Protocol):
    """Adds a batch's events to their devices' windows and returns each event's view, in order."""

    async def append(self, dataset: str, events: Sequence[SensorEvent], window: int,
                     calibration_events: int) -> list[EventView]: ...


def member_of(event: SensorEvent) -> str:
    """The sorted-set member of an event: the same bytes every delivery (sorted keys), so re-adding is a no-op."""
    return json.dumps({"id": event.event_id, "r": dict(event.readings)}, sort_keys=True, separators=(",", ":"))


def decode_member(member: str) -> tuple[str, Mapping[str, float]]:
    """An event's id and readings from its sorted-set member."""
    doc = json.loads(member)
    return doc["id"], doc["r"]


def views_of(events: Sequence[SensorEvent], flags: Sequence[int], calibration: Mapping[str, float],
             members: Sequence[tuple[str, float]], window: int,
             decode: Callable[[str], tuple[str, Mapping[str, float]]] = decode_member) -> list[EventView]:
    """Each event's view from its device's newest members (any order): those up to it by (ts, id), the last ``window``.

    The views of one device share their row objects (a row in several windows is one mapping).
    """
    docs = {event_id: (score, event_id, readings) for (event_id, readings), score in
            ((decode(m), s) for m, s in members)}
    for event in events:  # an event so late that newer ones trimmed it from the window still sees itself
        docs.setdefault(event.event_id, (event.ts, event.event_id, dict(event.readings)))
    ordered = sorted(docs.values(), key=lambda p: (p[0], p[1]))
    keys, rows = [(score, event_id) for score, event_id, _ in ordered], [r for _, _, r in ordered]
    views = []
    for event, flag in zip(events, flags, strict=True):
        end = bisect_right(keys, (event.ts, event.event_id))
        views.append(EventView(tuple(rows[max(0, end - window):end]), calibration, bool(flag)))
    return views


class MemberCache:
    """Decoded members by their bytes (a member never changes), so a row read by many batches is parsed once."""

    def __init__(self, limit: int = 50_000) -> None:
        self._decoded: dict[str, tuple[str, Mapping[str, float]]] = {}
        self._limit = limit

    def decode(self, member: str) -> tuple[str, Mapping[str, float]]:
        """``decode_member``, remembered; the cache starts over once it holds ``limit`` members."""
        found = self._decoded.get(member)
        if found is None:
            if len(self._decoded) >= self._limit:
                self._decoded.clear()
            found = self._decoded[member] = decode_member(member)
        return found


def device_key(dataset: str, device_id: str) -> str:
    """The prefix of one device's keys."""
    return f"{KEY_PREFIX}{dataset}:{device_id}"


class RedisDeviceWindows:
    """The windows in Redis: one script call per batch and dataset, atomic across replicas."""

    def __init__(self, redis: Redis, ttl_s: int = 7 * 86_400) -> None:
        self._script = redis.register_script(_APPEND_LUA)
        self._ttl_s = ttl_s
        self._members = MemberCache()

    async def append(self, dataset: str, events: Sequence[SensorEvent], window: int,
                     calibration_events: int) -> list[EventView]:
        """Add the events and return each one's view (same order as ``events``)."""
        by_device = _group(events)
        keys: list[str] = []
        args: list[str | int | float] = [window, calibration_events, self._ttl_s]
        for device_id, items in by_device.items():
            base = device_key(dataset, device_id)
            keys += [f"{base}:win", f"{base}:cal", f"{base}:calids"]
            args.append(len(items))
            for _, event in items:
                args += [event.event_id, repr(event.ts), member_of(event)]
        replies = await self._script(keys=keys, args=args)
        views: list[EventView | None] = [None] * len(events)
        for (device_id, items), (flags, cal_flat, flat_members) in zip(by_device.items(), replies, strict=True):
            calibration = {_text(k): float(v) for k, v in zip(cal_flat[::2], cal_flat[1::2], strict=True)}
            members = [(_text(m), float(s)) for m, s in zip(flat_members[::2], flat_members[1::2], strict=True)]
            for (index, _), view in zip(items, views_of([e for _, e in items], flags, calibration, members, window,
                                                          self._members.decode), strict=True):
                views[index] = view
        return [v for v in views if v is not None]


class InMemoryDeviceWindows:
    """The same behaviour in dicts: for component tests and a predictor running on a fake bus."""

    def __init__(self) -> None:
        self.windows: dict[tuple[str, str], dict[str, tuple[str, float]]] = {}
        self.calibration: dict[tuple[str, str], dict[str, float]] = {}
        self.calibrated_ids: dict[tuple[str, str], set[str]] = {}

    async def append(self, dataset: str, events: Sequence[SensorEvent], window: int,
                     calibration_events: int) -> list[EventView]:
        """Add the events and return each one's view."""
        views: list[EventView | None] = [None] * len(events)
        for device_id, items in _group(events).items():
            key = (dataset, device_id)
            win, cal = self.windows.setdefault(key, {}), self.calibration.setdefault(key, {})
            ids = self.calibrated_ids.setdefault(key, set())
            flags = [self._add(win, cal, ids, event, calibration_events) for _, event in items]
            oldest, newest = min(e.ts for _, e in items), max(e.ts for _, e in items)
            members = sorted(((m, s) for m, s in win.values() if s <= newest), key=lambda p: -p[1])
            span = sum(1 for _, s in members if s >= oldest)  # as the script: the batch's span, then a window
            for (index, _), view in zip(items, views_of([e for _, e in items], flags, dict(cal),
                                                        members[:span + window], window), strict=True):
                views[index] = view
        return [v for v in views if v is not None]

    @staticmethod
    def _add(win: dict[str, tuple[str, float]], cal: dict[str, float], ids: set[str], event: SensorEvent,
             calibration_events: int) -> int:
        win[event.event_id] = (member_of(event), event.ts)
        if event.event_id in ids:
            return 1
        if cal.get("n", 0) >= calibration_events:
            return 0
        ids.add(event.event_id)
        cal["n"] = cal.get("n", 0) + 1
        for sensor, value in event.readings.items():
            for prefix, amount in (("s|", value), ("q|", value * value), ("c|", 1.0)):
                cal[prefix + sensor] = cal.get(prefix + sensor, 0.0) + amount
        return 1


def _group(events: Sequence[SensorEvent]) -> dict[str, list[tuple[int, SensorEvent]]]:
    grouped: dict[str, list[tuple[int, SensorEvent]]] = {}
    for index, event in enumerate(events):
        grouped.setdefault(event.device_id, []).append((index, event))
    return grouped


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
