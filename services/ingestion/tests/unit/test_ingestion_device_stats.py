"""Running per-device statistics: Welford merges equal one pass over all readings, in any batch order."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta

import pytest
from streamtune_ingestion.device_stats import SensorStats, merge, single, summarize_batch
from streamtune_ingestion.stats_store import parse_hash
from streamtune_shared.schemas import ValidEvent

T0 = datetime(2020, 3, 9, 10, 0, tzinfo=UTC)


def event(n: int, device: str, readings: dict[str, float], ts: datetime | None = None) -> ValidEvent:
    return ValidEvent(schema_version=1, event_id=f"e{n}", device_id=device, dataset="pump-sensors",
                      ts=ts or T0 + timedelta(seconds=n), readings=readings, ingested_at=T0)


def fold(values: list[float]) -> SensorStats:
    total = None
    for i, value in enumerate(values):
        total = merge(total, single(value, float(i)))
    return total


def test_merged_batches_give_the_statistics_of_one_pass():
    rng = random.Random(7)
    values = [rng.gauss(80, 3) for _ in range(500)]
    cuts = sorted(rng.sample(range(1, 500), 6))
    batches = [values[a:b] for a, b in zip([0, *cuts], [*cuts, 500], strict=True)]
    rng.shuffle(batches)
    total = None
    for batch in batches:
        total = merge(total, fold(batch))
    assert total.count == 500
    assert total.mean == pytest.approx(statistics.fmean(values), rel=1e-12)
    assert total.variance == pytest.approx(statistics.variance(values), rel=1e-9)
    assert (total.min, total.max) == (min(values), max(values))


def test_summaries_are_per_device_and_sensor_and_skip_missing_sensors():
    events = [event(0, "a", {"T": 1.0, "P": 5.0}), event(1, "a", {"T": 3.0}), event(2, "b", {"T": 10.0})]
    summaries = summarize_batch(events)
    assert set(summaries) == {("a", "T"), ("a", "P"), ("b", "T")}
    assert (summaries[("a", "T")].count, summaries[("a", "T")].mean, summaries[("a", "T")].variance) == (2, 2.0, 2.0)
    assert summaries[("a", "P")].count == 1 and summaries[("a", "P")].variance == 0.0


def test_last_seen_never_moves_back_for_an_out_of_order_reading():
    late = summarize_batch([event(0, "a", {"T": 1.0}, ts=T0 + timedelta(minutes=5))])[("a", "T")]
    early = summarize_batch([event(1, "a", {"T": 2.0}, ts=T0)])[("a", "T")]
    assert merge(late, early).last_ts == (T0 + timedelta(minutes=5)).timestamp()


def test_a_stored_hash_reads_back_per_sensor():
    fields = {"T|n": "2", "T|mean": "2.0", "T|m2": "2.0", "T|min": "1", "T|max": "3", "T|last_ts": "5",
              "Flow Rate|n": "1", "Flow Rate|mean": "4", "Flow Rate|m2": "0", "Flow Rate|min": "4",
              "Flow Rate|max": "4", "Flow Rate|last_ts": "6", "Half|n": "1"}
    parsed = parse_hash(fields)
    assert set(parsed) == {"T", "Flow Rate"}
    assert parsed["T"].as_dict() == {"count": 2, "mean": 2.0, "variance": 2.0, "std": 2.0 ** 0.5,
                                     "min": 1.0, "max": 3.0, "last_ts": 5.0}
