"""Generalization of structured fields: GPS on a grid, coarse timestamps, numeric buckets, and their levels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError
from streamtune_anonymizer.generalization import (
    DatasetGeneralization,
    GpsRule,
    bucket,
    coarsen_time,
    generalize_fields,
    generalize_meta_value,
    snap,
    snap_gps_string,
)

TS = datetime(2026, 11, 28, 13, 47, 31, 123456, tzinfo=UTC)


@pytest.mark.parametrize(("unit", "expected"), [
    ("minute", datetime(2026, 11, 28, 13, 47, tzinfo=UTC)),
    ("hour", datetime(2026, 11, 28, 13, 0, tzinfo=UTC)),
    ("day", datetime(2026, 11, 28, tzinfo=UTC)),
])
def test_timestamps_are_floored_to_the_unit(unit, expected):
    assert coarsen_time(TS, unit) == expected


def test_each_level_is_the_next_unit_until_past_a_day():
    assert coarsen_time(TS, "minute", 1) == datetime(2026, 11, 28, 13, 0, tzinfo=UTC)
    assert coarsen_time(TS, "minute", 2) == datetime(2026, 11, 28, tzinfo=UTC)
    assert coarsen_time(TS, "minute", 3) is None


def test_a_day_starts_at_midnight_utc_whatever_the_offset():
    local = datetime(2026, 11, 29, 1, 30, tzinfo=timezone(timedelta(hours=2)))  # 23:30 UTC the day before
    assert coarsen_time(local, "day") == datetime(2026, 11, 28, tzinfo=UTC)


def test_coordinates_snap_to_the_lower_corner_of_their_cell():
    assert snap(52.51739, 0.01) == 52.51
    assert snap(-13.40501, 0.01) == -13.41
    assert snap(0.6, 0.01) == 0.6  # 0.6 / 0.01 is 59.99999... in floats
    assert snap_gps_string("52.51739,-13.40501", 0.01) == "52.51,-13.41"
    assert snap_gps_string("not a place", 0.01) is None


def test_a_coarser_level_of_a_generalized_value_equals_the_coarser_level_of_the_original():
    rules = DatasetGeneralization(gps=GpsRule(decimals=2), buckets={"age": 5})
    for lat in (52.51739, 0.6, -13.40501, 7.999):
        once = generalize_meta_value("lat", lat, rules)
        for level in (1, 2, 3):
            assert generalize_meta_value("lat", once, rules, level) == generalize_meta_value("lat", lat, rules, level)
    assert generalize_meta_value("age", generalize_meta_value("age", 37, rules), rules, 1) == 30


def test_numbers_fall_into_buckets_and_integers_stay_integers():
    assert bucket(37, 10) == 30 and isinstance(bucket(37, 10), int)
    assert bucket(37.5, 2.5) == 37.5
    assert bucket(-1, 10) == -10


def test_generalize_fields_covers_only_keys_with_a_rule_and_never_passes_an_unreadable_value():
    rules = DatasetGeneralization(ts="hour", gps=GpsRule(grid_deg=0.05), buckets={"age": 10})
    meta = {"lat": 52.51739, "lon": 13.40501, "gps": "52.51739,13.40501", "age": "thirty-seven", "site": "plant-3"}
    general = generalize_fields(TS, meta, rules)
    assert general.ts == datetime(2026, 11, 28, 13, 0, tzinfo=UTC)
    assert general.meta == {"lat": 52.5, "lon": 13.4, "gps": "52.50,13.40", "age": None}


def test_no_rules_changes_nothing():
    general = generalize_fields(TS, {"lat": 52.51739}, None)
    assert general.ts == TS and general.meta == {}


def test_a_gps_rule_needs_exactly_one_of_grid_or_decimals_and_widths_must_be_positive():
    with pytest.raises(ValidationError):
        GpsRule()
    with pytest.raises(ValidationError):
        GpsRule(grid_deg=0.1, decimals=1)
    with pytest.raises(ValidationError, match="age"):
        DatasetGeneralization(buckets={"age": 0})
