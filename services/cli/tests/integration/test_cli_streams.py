"""produce, tail, status and dlq replay against a real Redis."""

from __future__ import annotations

import json
import time
from pathlib import Path

from redis import Redis
from streamtune_shared import streams
from streamtune_shared.bus import dead_letter_for_bytes

from .conftest import Invoke


def _event(i: int, dataset: str = "pumps", device: str = "pump-7") -> str:
    return json.dumps({"schema_version": 1, "event_id": f"e{i}", "device_id": device, "dataset": dataset,
                       "ts": "2026-01-01T00:00:00Z", "readings": {"temp": 20.0 + i}})


def _payloads(redis: Redis, stream: str) -> list[bytes]:
    return [fields[b"payload"] for _, fields in redis.xrange(stream)]


def test_produce_writes_valid_events_and_reports_bad_lines(invoke: Invoke, redis_sync: Redis, tmp_path: Path) -> None:
    file = tmp_path / "events.jsonl"
    file.write_text("\n".join([_event(1), _event(2), '{"schema_version": 1, "event_id": "e3"}', _event(4)]) + "\n")
    result = invoke("produce", str(file), "--batch", "2", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["written"] == 3
    assert [r["line"] for r in report["rejected"]] == [3]
    assert "device_id" in report["rejected"][0]["problem"]
    events = [json.loads(p) for p in _payloads(redis_sync, streams.RAW)]
    assert [e["event_id"] for e in events] == ["e1", "e2", "e4"]
    assert events[0]["readings"] == {"temp": 21.0}


def test_produce_paces_to_the_rate(invoke: Invoke, redis_sync: Redis, tmp_path: Path) -> None:
    file = tmp_path / "events.jsonl"
    file.write_text("\n".join(_event(i) for i in range(20)) + "\n")
    start = time.monotonic()
    result = invoke("produce", str(file), "--rate", "40")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - start >= 0.45  # 20 events at 40/s: the last batch leaves after ~0.5 s
    assert result.stdout.strip() == f"wrote 20 events to {streams.RAW}"
    assert redis_sync.xlen(streams.RAW) == 20


def test_tail_filters_by_dataset_and_device(invoke: Invoke, redis_sync: Redis) -> None:
    for i, (dataset, device) in enumerate([("pumps", "a"), ("notes", "a"), ("pumps", "b"), ("pumps", "a")]):
        redis_sync.xadd(streams.RAW, {"payload": _event(i, dataset, device)})
    result = invoke("tail", streams.RAW, "--from-start", "--dataset", "pumps", "--device", "a", "--json",
                    "--count", "2")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["event_id"] for line in result.stdout.splitlines()] == ["e0", "e3"]


def test_status_shows_lag_pending_and_dead_consumers(invoke: Invoke, redis_sync: Redis) -> None:
    for i in range(5):
        redis_sync.xadd(streams.RAW, {"payload": _event(i)})
    redis_sync.xgroup_create(streams.RAW, "ingestion", id="0")
    redis_sync.xreadgroup("ingestion", "worker-1", {streams.RAW: ">"}, count=2)  # delivered, never acked
    time.sleep(1.1)
    result = invoke("status", "--json", "--dead-after", "1")
    assert result.exit_code == 0, result.output
    raw = next(s for s in json.loads(result.stdout)["streams"] if s["stream"] == streams.RAW)
    assert (raw["exists"], raw["length"]) == (True, 5)
    [group] = raw["groups"]
    assert (group["group"], group["lag"], group["pending"]) == ("ingestion", 3, 2)
    assert group["dead_consumers"] == ["worker-1"]
    assert [(c["name"], c["pending"]) for c in group["consumers"]] == [("worker-1", 2)]
    table = invoke("status", "--dead-after", "1")
    assert table.exit_code == 0 and "worker-1" in table.stdout and "dead" in table.stdout


def _dead_letter(redis: Redis, raw: bytes, stage: str, source: str | None) -> str:
    letter = dead_letter_for_bytes(raw, stage=stage, reason="schema error", source_stream=source)
    return redis.xadd(streams.DLQ, {"payload": letter.model_dump_json()}).decode()


def test_dlq_replay_puts_the_original_bytes_back(invoke: Invoke, redis_sync: Redis) -> None:
    original = b'{"schema_version": 1, "event_id": "fixed-later",  "dataset": "pumps"}'
    kept = _dead_letter(redis_sync, b"other", "anonymizer", streams.VALID)
    replayed = _dead_letter(redis_sync, original, "ingestion", streams.RAW)

    dry = invoke("dlq", "replay", "--stage", "ingestion", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["replays"] == [{"entry_id": replayed, "target": streams.RAW}]
    assert redis_sync.xlen(streams.RAW) == 0

    result = invoke("dlq", "replay", "--stage", "ingestion", "--delete")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"replayed 1 dead letters (1 to {streams.RAW}); deleted 1 from {streams.DLQ}; skipped 0"
    assert _payloads(redis_sync, streams.RAW) == [original]
    assert [entry_id.decode() for entry_id, _ in redis_sync.xrange(streams.DLQ)] == [kept]

    listed = invoke("dlq", "list", "--json")
    assert [row["entry_id"] for row in json.loads(listed.stdout)] == [kept]
    shown = invoke("dlq", "show", kept, "--json")
    assert json.loads(shown.stdout)["original"] == "other"


def test_an_unreachable_redis_is_one_line_and_exit_1(invoke: Invoke) -> None:
    result = invoke("status", env={"STREAMTUNE_REDIS_URL": "redis://:secret-pw@127.0.0.1:9/0"})
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: cannot reach Redis (STREAMTUNE_REDIS_URL):")
    assert "secret-pw" not in line
