"""Generalizing structured fields: GPS snapped to a grid, timestamps coarsened, numbers bucketed.

Pure: no Redis, no S3, no environment. Every rule has levels: level 0 is the configured
granularity, each level above it is one step coarser (grid and bucket width doubled, the next
time unit), which is what the k-anonymity check climbs. Cells are aligned at zero, so a value
generalized at one level and then at a coarser one lands where the original value would.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from streamtune_shared.schemas import MetaKey, MetaValue

TimeUnit = Literal["minute", "hour", "day"]
TIME_LADDER: tuple[TimeUnit, ...] = ("minute", "hour", "day")
GPS_KEY, LAT_KEY, LON_KEY = "gps", "lat", "lon"
# A value already on a grid divided by the grid step must not fall just below an integer.
_SNAP_TOLERANCE = 1e-9
_STRICT = ConfigDict(frozen=True, extra="forbid")


class GpsRule(BaseModel):
    """A square grid for coordinates: a step in degrees, or a number of decimals (2 means 0.01 degrees)."""

    model_config = _STRICT

    grid_deg: float | None = Field(default=None, gt=0, le=90, description="Cell size in degrees.")
    decimals: int | None = Field(default=None, ge=0, le=8, description="Keep this many decimals (truncating).")

    @model_validator(mode="after")
    def _one_of_grid_or_decimals(self) -> Self:
        if (self.grid_deg is None) == (self.decimals is None):
            raise ValueError("give exactly one of grid_deg or decimals")
        return self

    @property
    def step(self) -> float:
        """The cell size in degrees at level 0."""
        return self.grid_deg if self.grid_deg is not None else 10.0 ** -(self.decimals or 0)


class DatasetGeneralization(BaseModel):
    """How one dataset's structured fields are generalized; a field without a rule is left as it is."""

    model_config = _STRICT

    ts: TimeUnit | None = Field(default=None, description="Floor the event time to this unit (UTC).")
    gps: GpsRule | None = Field(default=None, description="Grid for meta 'lat'/'lon' and the meta 'gps' string.")
    buckets: dict[MetaKey, float] = Field(
        default_factory=dict, description="Numeric meta key -> bucket width; a value becomes its bucket's lower bound.")

    @model_validator(mode="after")
    def _widths_are_positive(self) -> Self:
        bad = sorted(name for name, width in self.buckets.items() if not width > 0)
        if bad:
            raise ValueError(f"bucket widths must be positive: {', '.join(bad)}")
        return self

    def generalizes(self, name: str) -> bool:
        """Whether a quasi-identifier ('ts' or a meta key) has a rule, so it can be made coarser."""
        return self.ts is not None if name == "ts" else self.covers_meta(name)

    def covers_meta(self, name: str) -> bool:
        """Whether a meta key has a rule (GPS grid or bucket width)."""
        if name in (GPS_KEY, LAT_KEY, LON_KEY):
            return self.gps is not None
        return name in self.buckets


@dataclass(frozen=True, slots=True)
class Generalized:
    """The generalized values of one event: its time and the meta keys a rule covered."""

    ts: datetime
    meta: dict[str, MetaValue]


def coarsen_time(ts: datetime, unit: TimeUnit, level: int = 0) -> datetime | None:
    """``ts`` floored to ``unit`` (``level`` steps coarser); None once past the coarsest unit (a day)."""
    index = TIME_LADDER.index(unit) + level
    if index >= len(TIME_LADDER):
        return None
    coarse = ts.replace(second=0, microsecond=0)
    if TIME_LADDER[index] in ("hour", "day"):
        coarse = coarse.replace(minute=0)
    if TIME_LADDER[index] == "day":
        # Floor in UTC, so every replica and reader agrees on where a day starts.
        offset = ts.utcoffset() or timedelta(0)
        coarse = (ts - offset).replace(hour=0, minute=0, second=0, microsecond=0) + offset
    return coarse


def snap(value: float, step: float) -> float:
    """The lower edge of the cell of width ``step`` (aligned at 0) that holds ``value``."""
    cells = math.floor(value / step + _SNAP_TOLERANCE)
    return round(cells * step, 10)


def bucket(value: int | float, width: float) -> int | float:
    """The lower bound of ``value``'s bucket; integers stay integers when the width is whole."""
    lower = snap(float(value), width)
    return int(lower) if isinstance(value, int) and float(width).is_integer() else lower


def snap_gps_string(value: str, step: float) -> str | None:
    """A ``"lat,lon"`` string snapped to the grid; None when it is not two numbers."""
    parts = value.split(",")
    try:
        lat, lon = (float(p) for p in parts)
    except ValueError:
        return None
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return None
    decimals = max(0, -math.floor(math.log10(step) + _SNAP_TOLERANCE))
    return f"{snap(lat, step):.{decimals}f},{snap(lon, step):.{decimals}f}"


def generalize_meta_value(name: str, value: MetaValue, rules: DatasetGeneralization, level: int = 0) -> MetaValue:
    """One meta value generalized by its rule at ``level``; a value the rule cannot read becomes None."""
    if value is None:
        return None
    scale = 2 ** level
    if name in (LAT_KEY, LON_KEY, GPS_KEY) and rules.gps is not None:
        step = rules.gps.step * scale
        if name == GPS_KEY:
            return snap_gps_string(value, step) if isinstance(value, str) else None
        return snap(float(value), step) if _is_number(value) else None
    width = rules.buckets.get(name)
    if width is not None:
        return bucket(value, width * scale) if _is_number(value) else None
    return value


def generalize_fields(ts: datetime, meta: Mapping[str, MetaValue],
                      rules: DatasetGeneralization | None) -> Generalized:
    """The event's time and the meta values its dataset's rules cover, generalized at level 0.

    A value a rule covers but cannot read (a text where a number belongs) becomes None, never raw.
    """
    if rules is None:
        return Generalized(ts=ts, meta={})
    coarse_ts = coarsen_time(ts, rules.ts) if rules.ts is not None else ts
    covered = {name: generalize_meta_value(name, value, rules) for name, value in meta.items()
               if rules.covers_meta(name)}
    return Generalized(ts=coarse_ts or ts, meta=covered)


def _is_number(value: MetaValue) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
