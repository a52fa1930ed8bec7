"""The sensor catalogue: units converted by pint with a note, ranges in the catalogue's unit, per-dataset max age,
and what happens to missing, new, out-of-order and duplicate-timestamp readings."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from streamtune_ingestion.catalogue import CatalogueError, parse_catalogue, units_of
from streamtune_ingestion.domain import Accepted, IngestionPolicy, Rejected, ingest_payload

CATALOGUE = parse_catalogue({
    "pump-sensors": {
        "Temperature": {"unit": "degC", "range": [-20, 150], "accepts": ["degF", "K"]},
        "Pressure": {"unit": "bar", "range": [-1, 16], "accepts": ["kPa", "psi"]},
        "Volume Flow RateRMS": {"unit": "L/min", "accepts": ["m**3/h"]},
    },
    "strict-line": {"_drop_unknown": True, "Pressure": {"unit": "bar"}},
})
POLICY = IngestionPolicy(catalogues=CATALOGUE, dataset_max_age_s={"pump-sensors": 10 * 365 * 86_400},
                         max_age_s=3600, sensor_limits={"Pressure": (0, 1)})


def ingest(now, readings: dict[str, Any], units: str | None = None, dataset: str = "pump-sensors",
           ts=None) -> Accepted | Rejected:
    document = {"schema_version": 1, "event_id": "e1", "device_id": "pump-7", "dataset": dataset,
                "ts": (ts or now).isoformat(), "readings": readings, "meta": {"units": units} if units else {}}
    return ingest_payload(json.dumps(document).encode(), POLICY, now)


def accepted(outcome) -> Accepted:
    assert isinstance(outcome, Accepted), outcome
    return outcome


def test_readings_in_other_units_arrive_converted_with_a_note(now):
    outcome = accepted(ingest(now, {"Temperature": 176.0, "Pressure": 250.0, "Volume Flow RateRMS": 1.8},
                              units="Temperature=degF; Pressure=kPa; Volume Flow RateRMS=m**3/h"))
    readings = outcome.event.readings
    assert readings["Temperature"] == pytest.approx(80.0)
    assert readings["Pressure"] == pytest.approx(2.5)
    assert readings["Volume Flow RateRMS"] == pytest.approx(30.0)
    assert "reading 'Temperature' converted from degF to degC" in outcome.event.notes
    assert len(outcome.event.notes) == 3


def test_a_reading_in_the_catalogue_unit_is_left_alone_without_a_note(now):
    outcome = accepted(ingest(now, {"Temperature": 80.0}, units="Temperature=degC"))
    assert outcome.event.readings == {"Temperature": 80.0} and outcome.event.notes == ()


def test_the_range_is_checked_after_conversion_and_overrides_the_global_limits(now):
    # 500 K is 226.85 degC, outside [-20, 150]; Pressure 5 bar is inside the catalogue range though not SENSOR_LIMITS.
    outcome = accepted(ingest(now, {"Temperature": 500.0, "Pressure": 5.0}, units="Temperature=K"))
    assert outcome.event.readings == {"Pressure": 5.0}
    assert outcome.dropped == ("out_of_range",)
    assert outcome.event.notes[0].startswith("reading 'Temperature' dropped: 226.85")


def test_a_unit_the_catalogue_does_not_accept_drops_the_reading_and_says_why(now):
    outcome = accepted(ingest(now, {"Temperature": 20.0, "Pressure": 2.0}, units="Temperature=degR; Pressure=florps"))
    assert outcome.event.readings == {}
    assert outcome.dropped == ("unit_not_accepted", "unit_not_accepted")
    assert "unit 'florps' not accepted (catalogue unit 'bar')" in outcome.event.notes[1]


def test_missing_sensors_are_not_filled_and_new_sensors_are_kept_as_sent(now):
    outcome = accepted(ingest(now, {"Temperature": 70.0, "Vibration X": 0.3}, units="Vibration X=g"))
    assert outcome.event.readings == {"Temperature": 70.0, "Vibration X": 0.3}
    assert outcome.event.notes == ()


def test_a_catalogue_can_drop_sensors_it_does_not_declare(now):
    outcome = accepted(ingest(now, {"Pressure": 0.5, "Other": 1.0}, dataset="strict-line"))
    assert outcome.event.readings == {"Pressure": 0.5} and outcome.dropped == ("unknown_sensor",)


def test_a_replayed_dataset_accepts_its_recorded_timestamps_while_others_stay_strict(now):
    recorded = now - timedelta(days=5 * 365)
    assert isinstance(ingest(now, {"Temperature": 70.0}, ts=recorded), Accepted)
    refused = ingest(now, {"Pressure": 0.5}, dataset="strict-line", ts=now - timedelta(hours=2))
    assert isinstance(refused, Rejected) and "max age 3600 s" in refused.reason + refused.errors[0].message


def test_out_of_order_and_duplicate_timestamps_are_accepted_as_separate_events(now):
    later, earlier = now - timedelta(seconds=1), now - timedelta(seconds=5)
    outcomes = [ingest(now, {"Temperature": 70.0}, ts=t) for t in (later, earlier, earlier)]
    assert all(isinstance(o, Accepted) for o in outcomes)
    assert [o.event.ts for o in outcomes] == [later, earlier, earlier]


def test_units_meta_is_read_leniently():
    assert units_of({"units": " Temperature = degF ;; bad ; Pressure=kPa"}) == {"Temperature": "degF",
                                                                              "Pressure": "kPa"}
    assert units_of({"units": 3}) == {} and units_of({}) == {}


@pytest.mark.parametrize("document, message", [
    ({"d": {"T": {"unit": "florps"}}}, "florps"),
    ({"d": {"T": {"unit": "degC", "accepts": ["bar"]}}}, "cannot convert 'bar'"),
    ({"d": {"T": {"unit": "degC", "range": [10, 0]}}}, "not an ordered pair"),
    ({"d": {"T": "degC"}}, "expected an object with a 'unit'"),
])
def test_unusable_catalogues_are_refused(document, message):
    with pytest.raises(CatalogueError, match=message):
        parse_catalogue(document)
