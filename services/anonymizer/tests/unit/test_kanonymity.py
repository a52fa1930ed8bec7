"""k-anonymity per shard: classes, one more generalization step for the whole shard, then suppression."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from streamtune_anonymizer.generalization import DatasetGeneralization, GpsRule
from streamtune_anonymizer.kanonymity import KAnonymityRule, enforce_k_anonymity
from streamtune_anonymizer.shards import build_shard
from streamtune_shared.datasets import read_table
from streamtune_shared.schemas import CleanEvent

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RULES = DatasetGeneralization(ts="minute", gps=GpsRule(decimals=2))


def _row(i: int, *, minute: int = 0, lat: float = 52.51, site: str = "plant-3") -> CleanEvent:
    return CleanEvent(schema_version=1, event_id=f"e-{i}", device_id=f"ps_{i:024d}", dataset="pumps",
                      ts=T0 + timedelta(minutes=minute), readings={"p": 1.0}, label=0,
                      meta={"lat": lat, "site": site}, ingested_at=T0, anonymized_at=T0)


def test_a_shard_that_is_already_k_anonymous_is_stored_as_it_is():
    rows = [_row(i, minute=i % 2) for i in range(10)]
    result = enforce_k_anonymity(rows, KAnonymityRule(quasi_identifiers=("ts", "lat"), k=5), RULES)
    assert result.events == rows
    assert result.report.model_dump() == {"k": 5, "quasi_identifiers": ("ts", "lat"), "classes": 2,
                                          "smallest_class": 5, "suppressed_rows": 0, "generalization_level": 0}


def test_small_classes_make_the_whole_shard_one_step_coarser():
    # Ten rows, each in its own minute of one hour: no class reaches k at minute level, all do at hour level.
    rows = [_row(i, minute=i) for i in range(10)]
    result = enforce_k_anonymity(rows, KAnonymityRule(quasi_identifiers=("ts",), k=5), RULES)
    assert result.report.generalization_level == 1 and result.report.suppressed_rows == 0
    assert {e.ts for e in result.events} == {T0}
    assert result.report.classes == 1 and result.report.smallest_class == 10


def test_rows_still_below_k_after_the_steps_allowed_are_dropped():
    rows = [_row(i) for i in range(20)] + [_row(99, site="plant-9")]
    rule = KAnonymityRule(quasi_identifiers=("site", "lat"), k=5, max_suppressed_fraction=0.0)
    result = enforce_k_anonymity(rows, rule, RULES)
    assert [e.event_id for e in result.events] == [f"e-{i}" for i in range(20)]
    assert result.report.suppressed_rows == 1
    # 'site' has no rule and a coarser grid merges no class, so nothing was made coarser for nothing.
    assert result.report.generalization_level == 0
    assert {e.meta["lat"] for e in result.events} == {52.51}


def test_the_shard_climbs_as_far_as_it_helps_and_no_further():
    rows = [_row(i, minute=i) for i in range(9)] + [_row(99, minute=24 * 60)]  # the last one a day later
    rule = KAnonymityRule(quasi_identifiers=("ts",), k=3, max_steps=5, max_suppressed_fraction=0.0)
    result = enforce_k_anonymity(rows, rule, RULES)
    # minute -> hour merges the nine; hour -> day merges nothing more; past a day there is no step.
    assert result.report.generalization_level == 1 and result.report.suppressed_rows == 1


def test_a_few_outliers_within_the_suppression_share_do_not_coarsen_everyone():
    rows = [_row(i) for i in range(40)] + [_row(99, lat=48.13)]
    result = enforce_k_anonymity(rows, KAnonymityRule(quasi_identifiers=("lat",), k=5), RULES)
    assert result.report.generalization_level == 0 and result.report.suppressed_rows == 1
    assert {e.meta["lat"] for e in result.events} == {52.51}


def test_the_manifest_reports_k_anonymity_and_an_all_suppressed_shard_is_stored_empty():
    rows = [_row(i, site=f"site-{i}") for i in range(3)]
    files = build_shard("pumps", "s1", rows, "test", KAnonymityRule(quasi_identifiers=("site",), k=2), RULES)
    assert files.manifest.rows == 0 and read_table(files.parquet).num_rows == 0
    assert files.manifest.k_anonymity is not None and files.manifest.k_anonymity.suppressed_rows == 3
    assert files.announcement().rows == 0


def test_quasi_identifiers_must_be_distinct_and_k_at_least_two():
    with pytest.raises(ValidationError):
        KAnonymityRule(quasi_identifiers=("ts", "ts"))
    with pytest.raises(ValidationError):
        KAnonymityRule(quasi_identifiers=("ts",), k=1)
