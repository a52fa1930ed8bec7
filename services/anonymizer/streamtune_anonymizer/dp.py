"""Differential privacy on numeric readings: OpenDP's Laplace and Gaussian mechanisms per declared sensor.

Pure (no Redis): the budget is accounted elsewhere (``budget.py``); this module says what an event
costs and noises or suppresses its readings.

Why OpenDP: its mechanisms sample noise exactly (no floating-point attacks of the Mironov kind on a
naive ``x + random.laplace()``), and the scale is found by OpenDP's own privacy map rather than a
formula copied here. ``dp-accounting`` and ``pipeline-dp`` are accounting and aggregation libraries
and would still leave the noise to be drawn by hand.

The unit of privacy is one event: neighbouring inputs differ in the readings of one event, each
reading anywhere within its sensor's declared ``[low, high]`` (readings are clamped to it), so one
reading's sensitivity is ``high - low``. ``epsilon_per_event`` (and ``delta`` for Gaussian) is split
evenly between the dataset's declared sensors (basic composition inside an event); an event is
charged for the sensors it actually carries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Self

import opendp.prelude as dp
from pydantic import BaseModel, ConfigDict, Field, model_validator
from streamtune_shared.schemas import CleanEvent, SensorName

dp.enable_features("contrib")

Mechanism = Literal["laplace", "gaussian"]
BUDGET_SPENT_NOTE = "readings suppressed: privacy budget spent"
NO_BOUNDS_NOTE = "reading {sensor} suppressed: no declared bounds for differential privacy"


class DatasetDP(BaseModel):
    """Differential privacy for one dataset's readings (opt-in): mechanism, per-event loss, bounds, budget."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mechanism: Mechanism = "laplace"
    epsilon_per_event: float = Field(gt=0, le=10, description="Privacy loss of one event's readings together.")
    delta: float | None = Field(default=None, gt=0, lt=1e-3, description="Gaussian only: delta per event.")
    sensors: dict[SensorName, tuple[float, float]] = Field(
        min_length=1, description="Sensor -> declared [low, high]; readings of other sensors are suppressed.")
    budget_epsilon: float = Field(gt=0, description="Epsilon one device may spend in this dataset per window.")
    window_s: int = Field(default=86_400, ge=1, description="Length of the fixed budget window, in seconds.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.mechanism == "gaussian") != (self.delta is not None):
            raise ValueError("delta is required for the gaussian mechanism and not allowed for laplace")
        bad = sorted(name for name, (low, high) in self.sensors.items()
                     if not (math.isfinite(low) and math.isfinite(high) and low < high))
        if bad:
            raise ValueError(f"sensor bounds must be finite with low < high: {', '.join(bad)}")
        if self.budget_epsilon < self.epsilon_per_event:
            raise ValueError("budget_epsilon is smaller than one event's epsilon: every reading would be suppressed")
        return self

    @property
    def epsilon_per_sensor(self) -> float:
        """The share of ``epsilon_per_event`` one declared sensor's reading spends."""
        return self.epsilon_per_event / len(self.sensors)

    @property
    def delta_per_sensor(self) -> float | None:
        """The share of ``delta`` one declared sensor's reading spends (Gaussian)."""
        return None if self.delta is None else self.delta / len(self.sensors)


def laplace_measurement(scale: float) -> dp.Measurement:
    """OpenDP's Laplace mechanism on one float under the absolute distance (pure epsilon-DP)."""
    return dp.m.make_laplace(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=scale)


def vector_noise(mechanism: Mechanism, scale: float) -> dp.Measurement:
    """The same mechanism on a vector: independent noise of ``scale`` on each element, in one call.

    Each element is a different event's reading, so each gets exactly the scalar mechanism's noise;
    one call per sensor and batch saves the per-call cost of the exact samplers.
    """
    domain = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    if mechanism == "laplace":
        return dp.m.make_laplace(domain, dp.l1_distance(T=float), scale=scale)
    return dp.m.make_gaussian(domain, dp.l2_distance(T=float), scale=scale)


def gaussian_measurement(scale: float, delta: float) -> dp.Measurement:
    """OpenDP's Gaussian mechanism on one float, its zCDP converted to (epsilon, delta) at ``delta``."""
    gaussian = dp.m.make_gaussian(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=scale)
    return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(gaussian), delta)


def measurement(mechanism: Mechanism, scale: float, delta: float | None = None) -> dp.Measurement:
    """The OpenDP measurement of ``mechanism`` at ``scale`` (Gaussian: as (epsilon, delta)-DP at ``delta``)."""
    if mechanism == "laplace":
        return laplace_measurement(scale)
    if delta is None:
        raise ValueError("the gaussian mechanism needs a delta")
    return gaussian_measurement(scale, delta)


def calibrate_scale(mechanism: Mechanism, sensitivity: float, epsilon: float, delta: float | None = None) -> float:
    """The smallest noise scale OpenDP's privacy map proves ``(epsilon[, delta])``-DP at ``sensitivity``."""
    if mechanism == "laplace":
        return float(dp.binary_search_param(laplace_measurement, d_in=sensitivity, d_out=epsilon))
    if delta is None:
        raise ValueError("the gaussian mechanism needs a delta")
    return float(dp.binary_search_param(lambda s: gaussian_measurement(s, delta), d_in=sensitivity,
                                        d_out=(epsilon, delta), bounds=gaussian_scale_bracket(sensitivity, epsilon,
                                                                                              delta)))


def gaussian_scale_bracket(sensitivity: float, epsilon: float, delta: float) -> tuple[float, float]:
    """Scales between which OpenDP's search for the Gaussian looks (unbounded, it overflows on small ones).

    Below: rho-zCDP gives epsilon > rho, so rho < epsilon, i.e. scale > sensitivity / sqrt(2 epsilon).
    Above: rho + 2 sqrt(rho ln(1/delta)) <= epsilon (Bun and Steinke) is enough, so that rho's scale suffices.
    """
    log_inv_delta = math.log(1 / delta)
    rho_enough = (math.sqrt(log_inv_delta + epsilon) - math.sqrt(log_inv_delta)) ** 2
    return sensitivity / math.sqrt(2 * epsilon), 1.01 * sensitivity / math.sqrt(2 * rho_enough)


@dataclass(frozen=True)
class SensorNoise:
    """One declared sensor: its bounds, the calibrated scale and OpenDP's mechanism at that scale."""

    low: float
    high: float
    scale: float  # Laplace b, or the Gaussian's standard deviation
    measurement: dp.Measurement  # proves the per-reading (epsilon, delta) the scale was calibrated to
    noise: dp.Measurement  # the same noise, element-wise on a vector

    def release(self, value: float) -> float:
        """The reading clamped to ``[low, high]``, then noised."""
        return self.release_many([value])[0]

    def release_many(self, values: Sequence[float]) -> list[float]:
        """Readings of different events, each clamped to ``[low, high]`` and noised independently."""
        return [float(v) for v in self.noise([min(max(float(v), self.low), self.high) for v in values])]


@dataclass(frozen=True)
class ReadingPrivacy:
    """A dataset's DP settings with every declared sensor's calibrated mechanism."""

    config: DatasetDP
    sensors: Mapping[str, SensorNoise]

    @classmethod
    def calibrated(cls, config: DatasetDP) -> ReadingPrivacy:
        """Calibrate each declared sensor once (OpenDP's search takes milliseconds, an event microseconds)."""
        return cls(config, {name: _sensor_noise(config, low, high) for name, (low, high) in config.sensors.items()})

    def cost(self, event: CleanEvent) -> float:
        """The epsilon releasing this event's readings spends: one share per declared sensor it carries."""
        carried = sum(1 for name, value in event.readings.items() if value is not None and name in self.config.sensors)
        return carried * self.config.epsilon_per_sensor

    def release(self, event: CleanEvent) -> CleanEvent:
        """The event with declared readings noised and undeclared ones suppressed (never passed raw)."""
        return self.release_many([event])[0]

    def release_many(self, events: Sequence[CleanEvent]) -> list[CleanEvent]:
        """``release`` for a batch, with one noise call per declared sensor."""
        column: dict[str, list[tuple[int, float]]] = {}
        for i, event in enumerate(events):
            for name, value in event.readings.items():
                if value is not None and name in self.sensors:
                    column.setdefault(name, []).append((i, value))
        noised: dict[tuple[int, str], float] = {}
        for name, cells in column.items():
            released = self.sensors[name].release_many([value for _, value in cells])
            noised.update({(i, name): value for (i, _), value in zip(cells, released, strict=True)})
        return [self._rebuilt(i, event, noised) for i, event in enumerate(events)]

    def _rebuilt(self, i: int, event: CleanEvent, noised: Mapping[tuple[int, str], float]) -> CleanEvent:
        readings = {name: noised.get((i, name)) for name in event.readings if name in self.sensors}
        notes = [NO_BOUNDS_NOTE.format(sensor=name) for name in event.readings if name not in self.sensors]
        return event.model_copy(update={"readings": readings, "notes": (*event.notes, *notes)})

    @staticmethod
    def suppress(event: CleanEvent) -> CleanEvent:
        """The event without its readings, and a note saying why."""
        return event.model_copy(update={"readings": {}, "notes": (*event.notes, BUDGET_SPENT_NOTE)})


def reading_privacy(configs: Mapping[str, DatasetDP]) -> dict[str, ReadingPrivacy]:
    """The DP step of every configured dataset, calibrated now, so a bad setting fails at startup."""
    return {dataset: ReadingPrivacy.calibrated(config) for dataset, config in configs.items()}


def _sensor_noise(config: DatasetDP, low: float, high: float) -> SensorNoise:
    scale = calibrate_scale(config.mechanism, high - low, config.epsilon_per_sensor, config.delta_per_sensor)
    return SensorNoise(low, high, scale, measurement(config.mechanism, scale, config.delta_per_sensor),
                       vector_noise(config.mechanism, scale))
