"""Benchmark: pure anonymization throughput (no Redis, no S3), events/s on the committed fixtures.

    .venv/bin/python services/anonymizer/benchmarks/anonymize_throughput.py [--events 20000]

Three figures: redact_text alone on the clinical notes, anonymize_event on decoded ValidEvents
(notes and pump events mixed), and the whole per-entry path of the consumer: decode JSON ->
anonymize -> encode JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from streamtune_anonymizer.domain import AnonymizationPolicy, anonymize_event, decode_valid_event
from streamtune_anonymizer.redaction import redact_text
from streamtune_shared.bus import encode

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures"
POLICY = AnonymizationPolicy(key=b"benchmark-key-0123456789abcdefghijklmnopqrstuvwxyz")


def payloads(n: int) -> list[bytes]:
    """n ValidEvent payloads cycling through the clinical notes and pump events."""
    now = datetime.now(UTC).isoformat()
    rows = [json.loads(line) for name in ("clinical_notes.jsonl", "pump_events.jsonl")
            for line in (FIXTURES / name).read_text().splitlines()]
    return [json.dumps({**rows[i % len(rows)], "ingested_at": now}).encode() for i in range(n)]


def rate(n: int, seconds: float) -> float:
    """Events per second."""
    return n / seconds if seconds else float("inf")


def main(events: int) -> dict[str, float]:
    """Run the three measurements and return events/s for each."""
    raw = payloads(events)
    decoded = [decode_valid_event(p) for p in raw]
    texts = [e.text for e in decoded if e.text]
    now = datetime.now(UTC)
    start = time.perf_counter()
    for text in texts:
        redact_text(text)
    redact_only = rate(len(texts), time.perf_counter() - start)
    start = time.perf_counter()
    for event in decoded:
        anonymize_event(event, POLICY, now)
    domain = rate(len(decoded), time.perf_counter() - start)
    start = time.perf_counter()
    for payload in raw:
        encode(anonymize_event(decode_valid_event(payload), POLICY, now))
    full = rate(len(raw), time.perf_counter() - start)
    return {"redact_text_notes_per_s": round(redact_only), "anonymize_event_per_s": round(domain),
            "decode_anonymize_encode_per_s": round(full)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    print(json.dumps(main(parser.parse_args().events), indent=2))
