"""Running per-device, per-sensor statistics (count, mean, variance by Welford's method, min, max, last seen).

    batch = summarize_batch(events)             # {(device_id, sensor): SensorStats} of one batch
    total = merge(stored, batch[key])           # Chan et al.'s pairwise merge: same result as one long pass

A batch is summarized here and merged into the stored statistics by one Lua script (``stats_store``), which
applies the same ``merge``: replicas and restarts share one running total per device and sensor.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from streamtune_shared.schemas import ValidEvent


@dataclass(frozen=True, slots=True)
class SensorStats:
    """Statistics of one sensor of one device; ``last_ts`` is the newest reading's ts (epoch seconds)."""

    count: int
    mean: float
    m2: float
    min: float
    max: float
    last_ts: float

    @property
    def variance(self) -> float:
        """Sample variance (n - 1); 0 for fewer than two readings."""
        return self.m2 / (self.count - 1) if self.count > 1 else 0.0

    @property
    def std(self) -> float:
        """Sample standard deviation."""
        return math.sqrt(self.variance)

    def as_dict(self) -> dict[str, float | int]:
        """The JSON shape of ``GET /devices/{id}/stats``."""
        return {"count": self.count, "mean": self.mean, "variance": self.variance, "std": self.std,
                "min": self.min, "max": self.max, "last_ts": self.last_ts}


def single(value: float, ts: float) -> SensorStats:
    """The statistics of one reading."""
    return SensorStats(1, value, 0.0, value, value, ts)


def merge(a: SensorStats | None, b: SensorStats) -> SensorStats:
    """The statistics of both sets of readings (Chan et al.); ``last_ts`` never moves back (out-of-order ts)."""
    if a is None or a.count == 0:
        return b
    n = a.count + b.count
    delta = b.mean - a.mean
    mean = a.mean + delta * b.count / n
    m2 = a.m2 + b.m2 + delta * delta * a.count * b.count / n
    return SensorStats(n, mean, m2, min(a.min, b.min), max(a.max, b.max), max(a.last_ts, b.last_ts))


def summarize_batch(events: Iterable[ValidEvent]) -> dict[tuple[str, str], SensorStats]:
    """Per (device, sensor), the statistics of the readings of ``events`` (missing sensors add nothing)."""
    summaries: dict[tuple[str, str], SensorStats] = {}
    for event in events:
        ts = event.ts.timestamp()
        for sensor, value in event.readings.items():
            if value is None:
                continue
            key = (event.device_id, sensor)
            summaries[key] = merge(summaries.get(key), single(value, ts))
    return summaries
