"""Consumer-group lag and pending from XINFO GROUPS replies, as the gauges /metrics shows."""

from __future__ import annotations

from prometheus_client import REGISTRY
from streamtune_shared.group_metrics import GroupBacklog, by_stream, export, parse_groups


def group_info(name: str, pending: int, lag: int | None, **extra) -> dict:
    """An XINFO GROUPS entry as redis-py returns it without decode_responses: str keys, bytes values."""
    return {"name": name.encode(), "consumers": 1, "pending": pending, "last-delivered-id": b"5-0",
            "entries-read": 5, "lag": lag, **extra}


def gauge(name: str, stream: str, group: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"stream": stream, "group": group})


def test_parse_groups_keeps_only_the_groups_asked_for_with_their_lag_and_pending():
    reply = [group_info("ingestion", pending=7, lag=3), group_info("audit", pending=0, lag=12)]
    assert parse_groups("events.raw", reply, ["ingestion"]) == [
        GroupBacklog("events.raw", "ingestion", lag=3, pending=7, last_delivered_id="5-0")]


def test_parse_groups_says_when_redis_cannot_tell_the_lag():
    reply = [group_info("predictor", pending=2, lag=None)]
    [backlog] = parse_groups("events.clean", reply, ["predictor"])
    assert backlog.lag is None and backlog.pending == 2


def test_parse_groups_reads_decoded_replies_and_redis_6_replies_without_lag():
    reply = [{"name": "trainer", "pending": 1, "last-delivered-id": "9-1"}]  # decode_responses, Redis 6
    assert parse_groups("train.requests", reply, ["trainer"]) == [
        GroupBacklog("train.requests", "trainer", lag=None, pending=1, last_delivered_id="9-1")]


def test_a_group_not_created_yet_is_left_out():
    assert parse_groups("events.valid", [group_info("other", 0, 0)], ["anonymizer"]) == []


def test_by_stream_groups_pairs_per_stream_once_each():
    pairs = [("events.valid", "anonymizer"), ("events.clean", "anonymizer-shards"), ("events.valid", "anonymizer"),
             ("events.clean", "predictor")]
    assert by_stream(pairs) == {"events.valid": ["anonymizer"], "events.clean": ["anonymizer-shards", "predictor"]}


def test_export_sets_the_lag_and_pending_gauges_per_stream_and_group():
    export([GroupBacklog("unit.s", "g1", lag=4, pending=2, last_delivered_id="1-0"),
            GroupBacklog("unit.s", "g2", lag=0, pending=9, last_delivered_id="1-0")])
    assert gauge("streamtune_consumer_group_lag", "unit.s", "g1") == 4
    assert gauge("streamtune_consumer_group_pending", "unit.s", "g1") == 2
    assert gauge("streamtune_consumer_group_pending", "unit.s", "g2") == 9
    export([GroupBacklog("unit.s", "g1", lag=0, pending=0, last_delivered_id="3-0")])
    assert gauge("streamtune_consumer_group_lag", "unit.s", "g1") == 0  # a caught-up group reads 0, not its old lag
