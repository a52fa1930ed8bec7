"""Status rows: lag and pending per group, and the dead-consumer rule (pending entries and idle too long)."""

from __future__ import annotations

from streamtune_cli.stream_health import (
    consumer_health,
    format_duration,
    group_health,
    group_rows,
    is_dead,
    status_document,
    stream_health,
)


def test_a_consumer_is_dead_only_with_pending_entries_and_idle_past_the_threshold() -> None:
    assert is_dead(pending=3, idle_ms=60_001, dead_after_ms=60_000)
    assert not is_dead(pending=3, idle_ms=60_000, dead_after_ms=60_000)
    assert not is_dead(pending=0, idle_ms=10**9, dead_after_ms=60_000)  # an idle worker with nothing to do is fine


def _sample():
    alive = consumer_health({"name": b"host-1", "pending": 2, "idle": 500}, dead_after_ms=300_000)
    dead = consumer_health({"name": b"host-2", "pending": 5, "idle": 900_000}, dead_after_ms=300_000)
    group = group_health({"name": b"ingestion", "consumers": 2, "pending": 7, "last-delivered-id": b"5-0",
                          "entries-read": 5, "lag": 3}, [alive, dead])
    stale = group_health({"name": b"audit", "consumers": 0, "pending": 0, "last-delivered-id": b"0-0",
                          "entries-read": None, "lag": None}, [])
    raw = stream_health("events.raw", {"length": 8, "last-generated-id": b"8-0"}, [group, stale])
    return [raw, stream_health("events.valid", None, [])]


def test_rows_show_lag_pending_consumers_and_the_dead_ones() -> None:
    assert group_rows(_sample()) == [
        ("events.raw", "8", "ingestion", "3", "7", "2", "host-2"),
        ("events.raw", "8", "audit", "?", "0", "0", ""),  # Redis cannot tell the lag after deletions
        ("events.valid", "-", "-", "-", "-", "-", ""),
    ]


def test_the_json_document_carries_the_numbers_scripts_read() -> None:
    document = status_document(_sample(), dead_after_s=300)
    raw, valid = document["streams"]
    assert document["dead_after_s"] == 300
    assert (raw["exists"], raw["length"], valid["exists"]) == (True, 8, False)
    ingestion = raw["groups"][0]
    assert (ingestion["group"], ingestion["lag"], ingestion["pending"]) == ("ingestion", 3, 7)
    assert ingestion["dead_consumers"] == ["host-2"]
    assert [(c["name"], c["idle_ms"], c["dead"]) for c in ingestion["consumers"]] == [
        ("host-1", 500, False), ("host-2", 900_000, True)]


def test_durations_read_at_a_glance() -> None:
    assert [format_duration(ms) for ms in (850, 42_000, 192_000, 5 * 3_600_000 + 180_000, 52 * 3_600_000)] == [
        "850ms", "42s", "3m 12s", "5h 03m", "2d 04h"]
