"""Validation and cleaning of producer events: pure functions of the payload, the policy and ``now``.

    outcome = ingest_payload(raw_bytes, policy, now)   # Accepted(event=ValidEvent) or Rejected(reason, errors)

The stream consumer and ``POST /events`` both call ``ingest_payload``, so an event is judged the
same way whichever door it came in by.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import ValidationError
from streamtune_shared.schemas import Event, FieldError, ValidEvent

from .catalogue import DatasetCatalogue, UnitNotAccepted, units_of
from .payloads import PayloadRejected, check_schema_version, decode_object, event_id_of, field_errors

DropReason = Literal["not_finite", "out_of_range", "null", "unit_not_accepted", "unknown_sensor"]
_NO_CATALOGUE = DatasetCatalogue()


@dataclass(frozen=True)
class IngestionPolicy:
    """The rules an event must meet: payload size, time window, per-sensor limits (inclusive).

    ``catalogues`` (per dataset) convert units and override ``sensor_limits`` for their sensors;
    ``dataset_max_age_s`` lets a dataset accept older timestamps (replays of recorded data).
    """

    max_payload_bytes: int = 64 * 1024
    max_future_skew_s: int = 300
    max_age_s: int = 30 * 86_400
    sensor_limits: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    catalogues: Mapping[str, DatasetCatalogue] = field(default_factory=dict)
    dataset_max_age_s: Mapping[str, int] = field(default_factory=dict)

    def max_age_for(self, dataset: str | None) -> int:
        """How old a ts of ``dataset`` may be: its own max age when configured, else the strict default."""
        return self.dataset_max_age_s.get(dataset, self.max_age_s) if dataset else self.max_age_s


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid, cleaned event, and why each dropped reading was dropped (for metrics)."""

    event: ValidEvent
    dropped: tuple[DropReason, ...] = ()


@dataclass(frozen=True, slots=True)
class Rejected:
    """An input that is not a valid event: a short code, a reason for people, the fields at fault."""

    code: str
    reason: str
    errors: tuple[FieldError, ...]
    event_id: str | None = None


Outcome = Accepted | Rejected


def ingest_payload(raw: bytes | None, policy: IngestionPolicy, now: datetime) -> Outcome:
    """Decode, validate, time-check and clean one producer payload."""
    try:
        document = decode_object(raw, policy.max_payload_bytes)
        check_schema_version(document)
    except PayloadRejected as exc:
        return Rejected(exc.code, exc.reason, exc.errors)
    try:
        event = Event.model_validate(document)
    except ValidationError as exc:
        errors = field_errors(exc)
        fields = ", ".join(e.field for e in errors)
        return Rejected("invalid", f"invalid event: {len(errors)} field error(s) ({fields})", errors,
                        event_id_of(document))
    time_error = check_time_window(event.ts, policy, now, event.dataset)
    if time_error is not None:
        return Rejected("ts_out_of_window", time_error.message, (time_error,), event.event_id)
    return clean_event(event, policy, now)


def check_time_window(ts: datetime, policy: IngestionPolicy, now: datetime,
                      dataset: str | None = None) -> FieldError | None:
    """An error naming ``ts`` when it is too far in the future or the past (for ``dataset``), else None."""
    ahead_s = (ts - now).total_seconds()
    if ahead_s > policy.max_future_skew_s:
        return FieldError(field="ts", message=(
            f"ts is {ahead_s:.0f} s in the future (max skew {policy.max_future_skew_s} s)"))
    max_age_s = policy.max_age_for(dataset)
    if -ahead_s > max_age_s:
        return FieldError(field="ts", message=f"ts is {-ahead_s:.0f} s in the past (max age {max_age_s} s)")
    return None


def clean_event(event: Event, policy: IngestionPolicy, now: datetime) -> Accepted:
    """The event with unusable readings dropped, a note for each, stamped with ``now``."""
    catalogue = policy.catalogues.get(event.dataset, _NO_CATALOGUE)
    readings, notes, dropped = clean_readings(event.readings, policy.sensor_limits, catalogue, units_of(event.meta))
    fields = dict(event)
    fields["readings"] = readings
    # Every field was validated as an Event and the cleaned readings are a subset: no second validation.
    valid = ValidEvent.model_construct(**fields, notes=tuple(notes), ingested_at=now)
    return Accepted(valid, tuple(dropped))


def clean_readings(
    readings: Mapping[str, float | None], limits: Mapping[str, tuple[float, float]],
    catalogue: DatasetCatalogue = _NO_CATALOGUE, units: Mapping[str, str] | None = None,
) -> tuple[dict[str, float], list[str], list[DropReason]]:
    """Keep finite, present, in-range readings in the catalogue's units; a note for each converted or dropped.

    Missing sensors are not filled in; sensors the catalogue does not declare are kept as sent (dropped when
    the catalogue says ``_drop_unknown``), checked against ``limits`` only.
    """
    kept: dict[str, float] = {}
    notes: list[str] = []
    dropped: list[DropReason] = []
    for sensor, value in readings.items():
        converted, note, problem = _clean_reading(sensor, value, limits, catalogue, (units or {}).get(sensor))
        if problem is None:
            kept[sensor] = converted  # type: ignore[assignment]  # no problem, so a float
            if note:
                notes.append(note)
            continue
        reason, detail = problem
        notes.append(f"reading {sensor!r} dropped: {detail}")
        dropped.append(reason)
    return kept, notes, dropped


def _clean_reading(
    sensor: str, value: float | None, limits: Mapping[str, tuple[float, float]],
    catalogue: DatasetCatalogue, unit: str | None,
) -> tuple[float | None, str | None, tuple[DropReason, str] | None]:
    spec = catalogue.sensors.get(sensor)
    if spec is None and catalogue.drop_unknown:
        return None, None, ("unknown_sensor", "not in the dataset's sensor catalogue")
    problem = _reading_problem(value, None)
    if problem is not None:
        return None, None, problem
    try:
        converted, note = catalogue.convert(sensor, value, unit)  # type: ignore[arg-type]  # finite here
    except UnitNotAccepted as exc:
        return None, None, ("unit_not_accepted", str(exc))
    limit = spec.valid_range if spec is not None and spec.valid_range is not None else limits.get(sensor)
    return converted, note, _reading_problem(converted, limit)


def _reading_problem(value: float | None, limit: tuple[float, float] | None) -> tuple[DropReason, str] | None:
    if value is None:
        return "null", "null"
    if not math.isfinite(value):
        return "not_finite", "not finite"
    if limit is not None and not limit[0] <= value <= limit[1]:
        return "out_of_range", f"{value!r} outside [{_number(limit[0])}, {_number(limit[1])}]"
    return None


def _number(value: float) -> str:
    return str(int(value)) if math.isfinite(value) and float(value).is_integer() else repr(float(value))
