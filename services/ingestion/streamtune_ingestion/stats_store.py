"""Where the running device statistics live: one Redis hash per device, merged by one Lua script per batch.

Key ``streamtune:ingestion:stats:<device_id>``, fields ``<sensor>|<n|mean|m2|min|max|last_ts>``. The script
applies ``device_stats.merge`` inside Redis, so concurrent replicas never lose an update. The raw device id
is in the key: these statistics are for operators inside the trust boundary (the anonymizer pseudonymizes
ids further down the pipeline).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from redis.asyncio import Redis

from .device_stats import SensorStats, merge

STATS_PREFIX = "streamtune:ingestion:stats:"
_FIELDS = ("n", "mean", "m2", "min", "max", "last_ts")

# KEYS[i]: a device's hash; ARGV: 7 values per key (sensor, n, mean, m2, min, max, last_ts).
_MERGE_LUA = """
local function f(x) return string.format('%.17g', x) end
for i, key in ipairs(KEYS) do
  local b = (i - 1) * 7
  local s = ARGV[b + 1]
  local n2, mean2, m22 = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local min2, max2, ts2 = tonumber(ARGV[b + 5]), tonumber(ARGV[b + 6]), tonumber(ARGV[b + 7])
  local old = redis.call('HMGET', key, s .. '|n', s .. '|mean', s .. '|m2', s .. '|min', s .. '|max', s .. '|last_ts')
  local n1 = tonumber(old[1]) or 0
  if n1 > 0 then
    local mean1, m21 = tonumber(old[2]), tonumber(old[3])
    local n = n1 + n2
    local delta = mean2 - mean1
    mean2 = mean1 + delta * n2 / n
    m22 = m21 + m22 + delta * delta * n1 * n2 / n
    min2 = math.min(tonumber(old[4]), min2)
    max2 = math.max(tonumber(old[5]), max2)
    ts2 = math.max(tonumber(old[6]), ts2)
    n2 = n
  end
  redis.call('HSET', key, s .. '|n', n2, s .. '|mean', f(mean2), s .. '|m2', f(m22),
             s .. '|min', f(min2), s .. '|max', f(max2), s .. '|last_ts', f(ts2))
end
return #KEYS
"""


def stats_key(device_id: str) -> str:
    """The Redis hash holding one device's statistics."""
    return f"{STATS_PREFIX}{device_id}"


class DeviceStatsStore(Protocol):
    """Merges batch summaries into the running statistics and reads a device's statistics back."""

    async def add(self, summaries: Mapping[tuple[str, str], SensorStats]) -> None: ...

    async def read(self, device_id: str) -> dict[str, SensorStats]: ...


class RedisDeviceStats:
    """The statistics in Redis: one EVALSHA per batch, atomic across replicas."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._merge = redis.register_script(_MERGE_LUA)

    async def add(self, summaries: Mapping[tuple[str, str], SensorStats]) -> None:
        """Merge every (device, sensor) summary of a batch in one script call."""
        if not summaries:
            return
        keys: list[str] = []
        args: list[str | int | float] = []
        for (device_id, sensor), s in summaries.items():
            keys.append(stats_key(device_id))
            args.extend((sensor, s.count, repr(s.mean), repr(s.m2), repr(s.min), repr(s.max), repr(s.last_ts)))
        await self._merge(keys=keys, args=args)

    async def read(self, device_id: str) -> dict[str, SensorStats]:
        """Every sensor's statistics of one device ({} for a device never seen)."""
        raw = await self._redis.hgetall(stats_key(device_id))
        return parse_hash({_text(k): _text(v) for k, v in raw.items()})


class InMemoryDeviceStats:
    """The same store in a dict, for tests and for a service running on a fake bus."""

    def __init__(self) -> None:
        self.devices: dict[str, dict[str, SensorStats]] = {}

    async def add(self, summaries: Mapping[tuple[str, str], SensorStats]) -> None:
        """Merge each summary into the device's statistics."""
        for (device_id, sensor), summary in summaries.items():
            sensors = self.devices.setdefault(device_id, {})
            sensors[sensor] = merge(sensors.get(sensor), summary)

    async def read(self, device_id: str) -> dict[str, SensorStats]:
        """Every sensor's statistics of one device."""
        return dict(self.devices.get(device_id, {}))


def parse_hash(fields: Mapping[str, str]) -> dict[str, SensorStats]:
    """The hash's ``<sensor>|<field>`` values as statistics per sensor (incomplete sensors left out)."""
    by_sensor: dict[str, dict[str, str]] = {}
    for name, value in fields.items():
        sensor, _, part = name.rpartition("|")
        by_sensor.setdefault(sensor, {})[part] = value
    return {sensor: SensorStats(int(float(v["n"])), float(v["mean"]), float(v["m2"]), float(v["min"]),
                                float(v["max"]), float(v["last_ts"]))
            for sensor, v in sorted(by_sensor.items()) if all(f in v for f in _FIELDS)}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
