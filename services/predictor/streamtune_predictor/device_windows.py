"""Each device's last readings and calibration, where every predictor replica sees them (Redis, one Lua call per batch).

Why Redis and not a partition per device: the predictor group shares ``events.clean`` entries by whoever reads
first, so consecutive events of one device land on different replicas, and a ``kill -9`` hands a replica's
pending entries to another. Keeping the window in Redis, ordered by ``ts`` and updated atomically, makes every
replica see the same history without re-partitioning the stream.

Per dataset and device (keys under ``streamtune:predictor:device:v2:<dataset>:<device>``):

- ``...:win``   sorted set, score = ts (epoch s), member = the event id; trimmed to the newest ``4 * window``
  (slack for late, out-of-order events). Re-adding a redelivered event is a no-op.
- ``...:rows``  hash, event id -> its readings as JSON, for the ids in ``...:win``. The script returns a
  window's ids and ts only, and a replica fetches just the rows it has not seen (``RowCache``): each row
  crosses the network about once per replica, not once per window that holds it.
- ``...:cal``   hash of the calibration sums ``n``, ``s|<sensor>``, ``q|<sensor>``, ``c|<sensor>`` over the
  device's first ``calibration_events`` events (in arrival order), then frozen;
- ``...:calids`` the ids of those events, so a redelivered one is still "calibrating" and counted once.

Keys expire after ``ttl_s`` without events: a device silent that long calibrates again.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

KEY_PREFIX = "streamtune:predictor:device:v2:"  # v2: ids in the sorted set, readings in a hash beside it
_HDEL_CHUNK = 1000

# KEYS: per device (win, rows, cal, calids). ARGV: window, calibration_events, ttl_s, then per device: k, then k
# (event id, ts, readings JSON). Reply per device: {calibrating flags..., cal hash flat, window ids with scores}.
_APPEND_LUA = """
local window, calib_n, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local a, out = 4, {}
for d = 1, #KEYS / 4 do
  local win, rows, cal, ids = KEYS[4 * d - 3], KEYS[4 * d - 2], KEYS[4 * d - 1], KEYS[4 * d]
  local k = tonumber(ARGV[a]); a = a + 1
  local flags, newest, oldest = {}, nil, nil
  for e = 1, k do
    local id, ts, readings = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]; a = a + 3
    redis.call('ZADD', win, ts, id)
    redis.call('HSETNX', rows, id, readings)
    if newest == nil or ts > newest then newest = ts end
    if oldest == nil or ts < oldest then oldest = ts end
    local calibrating = 0
    if redis.call('SISMEMBER', ids, id) == 1 then
      calibrating = 1
    elseif (tonumber(redis.call('HGET', cal, 'n')) or 0) < calib_n then
      redis.call('SADD', ids, id)
      redis.call('HINCRBY', cal, 'n', 1)
      for sensor, value in pairs(cjson.decode(readings)) do
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
  local extra = redis.call('ZCARD', win) - 4 * window
  if extra > 0 then
    local trimmed = redis.call('ZRANGE', win, 0, extra - 1)
    redis.call('ZREMRANGEBYRANK', win, 0, extra - 1)
    for i = 1, #trimmed, """ + str(_HDEL_CHUNK) + """ do
      redis.call('HDEL', rows, unpack(trimmed, i, math.min(i + """ + str(_HDEL_CHUNK - 1) + """, #trimmed)))
    end
  end
  -- everything between the batch's oldest and newest event (other replicas' events too), then a window older
  local span = redis.call('ZCOUNT', win, oldest, newest)
  local members = redis.call('ZREVRANGEBYSCORE', win, newest, '-inf', 'WITHSCORES', 'LIMIT', 0, span + window)
  for _, key in ipairs({win, rows, cal, ids}) do redis.call('EXPIRE', key, ttl) end
  out[d] = {flags, redis.call('HGETALL', cal), members}
end
return out
"""
Row = tuple[str, float, Mapping[str, float]]  # event id, ts, readings


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


def readings_json(event: SensorEvent) -> str:
    """An event's readings as stored: the same bytes every delivery (sorted keys)."""
    return json.dumps(dict(event.readings), sort_keys=True, separators=(",", ":"))


def views_of(events: Sequence[SensorEvent], flags: Sequence[int], calibration: Mapping[str, float],
             rows: Sequence[Row], window: int) -> list[EventView]:
    """Each event's view from its device's newest rows (any order): those up to it by (ts, id), the last ``window``.

    The views of one device share their row objects (a row in several windows is one mapping).
    """
    docs = {event_id: (ts, event_id, readings) for event_id, ts, readings in rows}
    for event in events:  # an event so late that newer ones trimmed it from the window still sees itself
        docs.setdefault(event.event_id, (event.ts, event.event_id, dict(event.readings)))
    ordered = sorted(docs.values(), key=lambda p: (p[0], p[1]))
    keys, readings = [(ts, event_id) for ts, event_id, _ in ordered], [r for _, _, r in ordered]
    views = []
    for event, flag in zip(events, flags, strict=True):
        end = bisect_right(keys, (event.ts, event.event_id))
        views.append(EventView(tuple(readings[max(0, end - window):end]), calibration, bool(flag)))
    return views


class RowCache:
    """Readings this replica has fetched or written, by (rows key, event id): an event's readings never change."""

    def __init__(self, limit: int = 50_000) -> None:
        self._rows: dict[tuple[str, str], Mapping[str, float]] = {}
        self._limit = limit

    def get(self, rows_key: str, event_id: str) -> Mapping[str, float] | None:
        """The readings, or None when this replica has not seen them."""
        return self._rows.get((rows_key, event_id))

    def put(self, rows_key: str, event_id: str, readings: Mapping[str, float]) -> Mapping[str, float]:
        """Remember readings (the cache starts over once it holds ``limit`` rows); returns the object kept."""
        if len(self._rows) >= self._limit:
            self._rows.clear()
        return self._rows.setdefault((rows_key, event_id), readings)


def device_key(dataset: str, device_id: str) -> str:
    """The prefix of one device's keys."""
    return f"{KEY_PREFIX}{dataset}:{device_id}"


class RedisDeviceWindows:
    """The windows in Redis: one script call per batch and dataset, atomic across replicas, then one pipelined
    fetch of the rows this replica has not seen yet."""

    def __init__(self, redis: Redis, ttl_s: int = 7 * 86_400) -> None:
        self._redis = redis
        self._script = redis.register_script(_APPEND_LUA)
        self._ttl_s = ttl_s
        self._rows = RowCache()

    async def append(self, dataset: str, events: Sequence[SensorEvent], window: int,
                     calibration_events: int) -> list[EventView]:
        """Add the events and return each one's view (same order as ``events``)."""
        by_device = _group(events)
        keys: list[str] = []
        rows_keys: list[str] = []
        args: list[str | int | float] = [window, calibration_events, self._ttl_s]
        for device_id, items in by_device.items():
            base = device_key(dataset, device_id)
            rows_keys.append(rows_key := f"{base}:rows")
            keys += [f"{base}:win", rows_key, f"{base}:cal", f"{base}:calids"]
            args.append(len(items))
            for _, event in items:
                args += [event.event_id, repr(event.ts), readings_json(event)]
                self._rows.put(rows_key, event.event_id, dict(event.readings))
        replies = await self._script(keys=keys, args=args)
        windows = [[(_text(m), float(s)) for m, s in zip(flat[::2], flat[1::2], strict=True)] for *_, flat in replies]
        rows = await self._fetch(rows_keys, windows)
        views: list[EventView | None] = [None] * len(events)
        for (_, items), (flags, cal_flat, _), device_rows in zip(by_device.items(), replies, rows, strict=True):
            calibration = {_text(k): float(v) for k, v in zip(cal_flat[::2], cal_flat[1::2], strict=True)}
            for (index, _), view in zip(items, views_of([e for _, e in items], flags, calibration, device_rows,
                                                        window), strict=True):
                views[index] = view
        return [v for v in views if v is not None]

    async def _fetch(self, rows_keys: list[str], windows: list[list[tuple[str, float]]]) -> list[list[Row]]:
        """Each device's window rows: from the cache, the others in one pipelined HMGET per device.

        A row trimmed meanwhile by another replica (older than its device's newest ``4 * window``) is left out.
        """
        missing = [[event_id for event_id, _ in ids if self._rows.get(key, event_id) is None]
                   for key, ids in zip(rows_keys, windows, strict=True)]
        if any(missing):
            pipe = self._redis.pipeline(transaction=False)
            for key, ids in zip(rows_keys, missing, strict=True):
                if ids:
                    pipe.hmget(key, ids)
            fetched = iter(await pipe.execute())
            for key, ids in zip(rows_keys, missing, strict=True):
                for event_id, value in zip(ids, next(fetched) if ids else (), strict=True):
                    if value is not None:
                        self._rows.put(key, event_id, json.loads(value))
        out = []
        for key, ids in zip(rows_keys, windows, strict=True):
            found = ((event_id, ts, self._rows.get(key, event_id)) for event_id, ts in ids)
            out.append([(event_id, ts, readings) for event_id, ts, readings in found if readings is not None])
        return out


class InMemoryDeviceWindows:
    """The same behaviour in dicts: for component tests and a predictor running on a fake bus."""

    def __init__(self) -> None:
        self.windows: dict[tuple[str, str], dict[str, tuple[Mapping[str, float], float]]] = {}
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
            rows = sorted(((i, ts, r) for i, (r, ts) in win.items() if ts <= newest), key=lambda p: -p[1])
            span = sum(1 for _, ts, _ in rows if ts >= oldest)  # as the script: the batch's span, then a window
            for (index, _), view in zip(items, views_of([e for _, e in items], flags, dict(cal),
                                                        rows[:span + window], window), strict=True):
                views[index] = view
        return [v for v in views if v is not None]

    @staticmethod
    def _add(win: dict[str, tuple[Mapping[str, float], float]], cal: dict[str, float], ids: set[str],
             event: SensorEvent, calibration_events: int) -> int:
        win.setdefault(event.event_id, (dict(event.readings), event.ts))
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
