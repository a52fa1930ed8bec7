"""Benchmark: cost of the structured-field privacy steps (pure: no Redis, no S3) on the committed pump events.

    .venv/bin/python services/anonymizer/benchmarks/privacy_throughput.py [--events 5000] [--batch 256]

Figures: anonymize_event without and with generalization (ts to the minute, a GPS grid), the DP
release of a batch's readings (8 SKAB sensors per event, OpenDP Laplace and Gaussian, one noise call per
sensor and batch), and k-anonymity of one shard. The budget's Redis call is not included.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streamtune_anonymizer.domain import AnonymizationPolicy, anonymize_event
from streamtune_anonymizer.dp import DatasetDP, ReadingPrivacy
from streamtune_anonymizer.generalization import DatasetGeneralization, GpsRule
from streamtune_anonymizer.kanonymity import KAnonymityRule, enforce_k_anonymity
from streamtune_shared.schemas import ValidEvent

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures"
KEY = b"benchmark-key-0123456789abcdefghijklmnopqrstuvwxyz"
RULES = DatasetGeneralization(ts="minute", gps=GpsRule(decimals=3))


def pump_events(n: int) -> list[ValidEvent]:
    """n ValidEvents cycling through the pump fixture, with a GPS position each."""
    rows = [json.loads(line) for line in (FIXTURES / "pump_events.jsonl").read_text().splitlines()]
    now = datetime.now(UTC)
    events = []
    for i in range(n):
        row = rows[i % len(rows)]
        events.append(ValidEvent.model_validate({
            **row, "event_id": f"bench-{i}", "ts": (now + timedelta(seconds=3 * i)).isoformat(),
            "meta": {**row.get("meta", {}), "lat": 52.5 + (i % 97) * 1e-4, "lon": 13.4}, "ingested_at": now}))
    return events


def per_second(work: Callable[[], object], items: int) -> float:
    """Items per second of one run of ``work``."""
    start = time.perf_counter()
    work()
    return items / (time.perf_counter() - start)


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    events = pump_events(args.events)
    now = datetime.now(UTC)
    plain = AnonymizationPolicy(key=KEY)
    general = AnonymizationPolicy(key=KEY, generalization={events[0].dataset: RULES})
    [anonymize_event(e, plain, now) for e in events[:500]]  # warm the pseudonym memo and pydantic
    print(f"anonymize_event: {per_second(lambda: [anonymize_event(e, plain, now) for e in events], len(events)):,.0f}"
          f" events/s plain, {per_second(lambda: [anonymize_event(e, general, now) for e in events], len(events)):,.0f}"
          " events/s with generalization")
    clean = [anonymize_event(e, general, now) for e in events]
    sensors = {name: (0.0, 300.0) for name in clean[0].readings}
    for mechanism, delta in (("laplace", None), ("gaussian", 1e-6)):
        privacy = ReadingPrivacy.calibrated(DatasetDP(mechanism=mechanism, epsilon_per_event=1.0, delta=delta,
                                                      sensors=sensors, budget_epsilon=100.0))
        rate = per_second(lambda: [privacy.release_many(clean[i:i + args.batch])
                                   for i in range(0, len(clean), args.batch)], len(clean))
        print(f"DP release, {mechanism}: {rate:,.0f} events/s ({rate * len(sensors):,.0f} readings/s)")
    shard = clean[:1000]
    rule = KAnonymityRule(quasi_identifiers=("ts", "lat", "lon"), k=5)
    start = time.perf_counter()
    result = enforce_k_anonymity(shard, rule, RULES)
    print(f"k-anonymity of a {len(shard)}-row shard: {(time.perf_counter() - start) * 1000:.1f} ms "
          f"(level {result.report.generalization_level}, {result.report.suppressed_rows} rows suppressed)")


if __name__ == "__main__":
    main()
