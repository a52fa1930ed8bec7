"""How a window of sensor readings becomes a model input: the contract the trainer and the predictor share.

    spec = WindowSpec(sensors=("Current", "Pressure"), window=32, calibration_events=400)
    rows = reading_matrix([event.readings for event in device_events], spec.sensors)   # (n, S), NaN = missing
    calibration = Calibration.of(rows[:spec.calibration_events])                        # the device's own normal
    x = calibration.normalize(rows, spec.clip)                                          # z-scores, missing -> 0
    windows = sliding_windows(x, spec.window)                                           # (n, window, S)

Each device is normalized by its own first ``calibration_events`` events, so a model learns deviations
from that device's normal. Pure numpy: no torch, no Redis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MIN_STD = 1e-3  # a sensor that never moved during calibration: any change is a large deviation, not a division by 0


@dataclass(frozen=True)
class WindowSpec:
    """Which sensors (in order), how many consecutive events per window, and the calibration length."""

    sensors: tuple[str, ...]
    window: int = 32
    calibration_events: int = 400
    clip: float = 10.0


@dataclass(frozen=True)
class Calibration:
    """Per-sensor mean and (population) standard deviation of a device's calibration period."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, rows: np.ndarray) -> Calibration:
        """The calibration of ``rows`` (n, S); a sensor missing throughout gets mean 0, std 1."""
        with np.errstate(all="ignore"):
            mean = np.nanmean(rows, axis=0) if len(rows) else np.zeros(rows.shape[1])
            std = np.nanstd(rows, axis=0) if len(rows) else np.ones(rows.shape[1])
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std), np.maximum(std, MIN_STD), 1.0)
        return cls(mean.astype(np.float64), std.astype(np.float64))

    @classmethod
    def from_sums(cls, count: float, sums: np.ndarray, squares: np.ndarray, counts: np.ndarray | None = None
                  ) -> Calibration:
        """The calibration from running sums (what the predictor keeps in Redis); ``counts`` per sensor."""
        n = np.asarray(counts if counts is not None else np.full_like(sums, count), dtype=np.float64)
        with np.errstate(all="ignore"):
            mean = np.where(n > 0, sums / n, 0.0)
            var = np.where(n > 0, squares / n - mean * mean, 1.0)
        std = np.where(n > 0, np.maximum(np.sqrt(np.maximum(var, 0.0)), MIN_STD), 1.0)
        return cls(mean, std)

    def normalize(self, rows: np.ndarray, clip: float) -> np.ndarray:
        """z-scores clipped to ±clip, float32; a missing reading (NaN) becomes 0, the calibration mean."""
        z = (rows - self.mean) / self.std
        z = np.where(np.isfinite(z), z, 0.0)
        return np.clip(z, -clip, clip).astype(np.float32)


def reading_matrix(readings: Iterable[Mapping[str, float | None]], sensors: Sequence[str]) -> np.ndarray:
    """(n, S) float64 of the readings in ``sensors`` order; a missing or null reading is NaN."""
    rows = [[_value(r.get(s)) for s in sensors] for r in readings]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(sensors))


def _value(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def sliding_windows(x: np.ndarray, window: int, stride: int = 1, start: int = 0) -> np.ndarray:
    """Windows ending at each index ``start, start + stride, ...`` (left-padded with the first row), (m, window, S)."""
    if len(x) == 0:
        return np.zeros((0, window, x.shape[1]), dtype=x.dtype)
    padded = np.concatenate([np.repeat(x[:1], window - 1, axis=0), x], axis=0)
    ends = np.arange(start, len(x), stride)
    index = ends[:, None] + np.arange(window)[None, :]
    return padded[index]


def window_ends(n: int, stride: int = 1, start: int = 0) -> np.ndarray:
    """The row index each window of ``sliding_windows(x, ..., stride, start)`` ends at (its label's row)."""
    return np.arange(start, n, stride)
