"""The per-dataset sensor catalogue: each sensor's unit, valid range and the input units it accepts.

    catalogue = parse_catalogue({"pump-sensors": {"Temperature": {"unit": "degC", "range": [-20, 150],
                                                                   "accepts": ["degF", "K"]}}})
    value, note = catalogue["pump-sensors"].convert("Temperature", 176.0, "degF")   # 80.0, 'converted ...'

A producer names the unit of a reading in ``meta["units"]`` ("Temperature=degF; Pressure=kPa"); a reading
without a unit is taken to be in the catalogue's unit. Conversion factors come from ``pint`` once per
(unit, unit) pair: every unit pint knows is affine, so ``value * scale + offset`` is exact and fast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any

import pint

UNITS_META_KEY = "units"

# Exact rational factors (degF -> degC is 5/9 and -160/9), so a round value converts to a round value.
_REGISTRY = pint.UnitRegistry(non_int_type=Fraction, autoconvert_offset_to_baseunit=True)


class CatalogueError(ValueError):
    """A catalogue document that cannot be used (unknown unit, units of another dimension, bad range)."""


class UnitNotAccepted(ValueError):
    """A reading sent in a unit the catalogue does not accept for its sensor."""


@dataclass(frozen=True)
class SensorSpec:
    """One sensor of a dataset: its unit, its inclusive valid range (in that unit), the other units accepted."""

    unit: str
    valid_range: tuple[float, float] | None = None
    accepts: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DatasetCatalogue:
    """The sensors one dataset declares; sensors not declared are kept as sent unless ``drop_unknown``."""

    sensors: Mapping[str, SensorSpec] = field(default_factory=dict)
    drop_unknown: bool = False

    def convert(self, sensor: str, value: float, unit: str | None) -> tuple[float, str | None]:
        """The reading in the catalogue's unit and a note when it was converted; UnitNotAccepted otherwise."""
        spec = self.sensors.get(sensor)
        if spec is None or unit is None or unit == spec.unit:
            return value, None
        if unit not in spec.accepts:
            raise UnitNotAccepted(f"unit {unit!r} not accepted (catalogue unit {spec.unit!r})")
        scale, offset = conversion(unit, spec.unit)
        return value * scale + offset, f"reading {sensor!r} converted from {unit} to {spec.unit}"


@lru_cache(maxsize=256)
def conversion(source: str, target: str) -> tuple[float, float]:
    """(scale, offset) with ``target = source * scale + offset``, computed by pint."""
    try:
        zero = _REGISTRY.Quantity(Fraction(0), source).to(target).magnitude
        one = _REGISTRY.Quantity(Fraction(1), source).to(target).magnitude
    except pint.errors.DimensionalityError:
        raise CatalogueError(f"cannot convert {source!r} to {target!r}: not the same kind of quantity") from None
    except (pint.errors.PintError, AttributeError, TypeError, ValueError):
        # pint's messages cannot format Fraction magnitudes: say which unit it did not understand instead.
        raise CatalogueError(f"cannot convert {source!r} to {target!r}: unknown unit") from None
    return float(one - zero), float(zero)


def units_of(meta: Mapping[str, Any]) -> dict[str, str]:
    """The per-reading units a producer declared in ``meta["units"]`` ("sensor=unit; sensor=unit")."""
    declared = meta.get(UNITS_META_KEY)
    if not isinstance(declared, str):
        return {}
    units: dict[str, str] = {}
    for part in declared.split(";"):
        sensor, sep, unit = part.partition("=")
        if sep and sensor.strip() and unit.strip():
            units[sensor.strip()] = unit.strip()
    return units


def parse_catalogue(document: Mapping[str, Any]) -> dict[str, DatasetCatalogue]:
    """The catalogue of every dataset in ``document``; CatalogueError when a unit or range cannot be used."""
    catalogues: dict[str, DatasetCatalogue] = {}
    for dataset, sensors in document.items():
        if not isinstance(sensors, Mapping):
            raise CatalogueError(f"dataset {dataset!r}: expected an object of sensors")
        drop_unknown = sensors.get("_drop_unknown", False) is True
        specs = {name: _sensor_spec(dataset, name, raw) for name, raw in sensors.items() if name != "_drop_unknown"}
        catalogues[dataset] = DatasetCatalogue(specs, drop_unknown)
    return catalogues


def _sensor_spec(dataset: str, sensor: str, raw: Any) -> SensorSpec:
    where = f"dataset {dataset!r}, sensor {sensor!r}"
    if not isinstance(raw, Mapping) or not isinstance(raw.get("unit"), str):
        raise CatalogueError(f"{where}: expected an object with a 'unit'")
    unit = raw["unit"]
    accepts = frozenset(raw.get("accepts", ()))
    for other in accepts:
        try:
            conversion(other, unit)
        except CatalogueError as exc:
            raise CatalogueError(f"{where}: {exc}") from None
    conversion(unit, unit)  # an unknown catalogue unit fails here, at startup
    bounds = raw.get("range")
    if bounds is None:
        return SensorSpec(unit, None, accepts)
    low, high = (float(b) for b in bounds)
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise CatalogueError(f"{where}: range [{low}, {high}] is not an ordered pair of numbers")
    return SensorSpec(unit, (low, high), accepts)
