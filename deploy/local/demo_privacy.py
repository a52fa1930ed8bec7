"""The demo's privacy pillar: PII recall by type before and after streamtune trains its own PII model.

1. a probe of 298 PII texts the project never trained or tuned on (tests/fixtures/pii_validation.jsonl, the
   template-disjoint validation split of presidio-research's dev texts) goes through ingestion and the
   anonymizer, which has only its pattern recognizers and spaCy's small NER yet; recall by type is read
   from events.clean against the gold spans;
2. a synthetic PII training set (Faker, several locales, the repository's templates; plus presidio's training
   templates when ../shared/data is there; plus clinical sentences with no PII as negatives) is imported with `streamtune datasets import` (trusted data: it
   bypasses ingestion and the anonymizer), the trainer fine-tunes `pii-ner`, the anonymizer hot-reloads it;
3. the same probe, with new event ids, goes through again: recall by type after.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from redis.asyncio import Redis
from streamtune_shared import streams
from training_status import entity_f1_line, follow_training

ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "tests" / "fixtures" / "pii_validation.jsonl"
PRESIDIO_DEV = ROOT.parent / "shared" / "data" / "pii_presidio_synth" / "dev.jsonl"
PII_MODEL, PII_DATASET, PROBE_DATASET = "pii-ner", "pii-synthetic", "pii-probe"
SYNTHETIC_ROWS = 2000
TRAIN_REQUEST = {"schema_version": 1, "model_name": PII_MODEL, "task": "token-classification", "dataset": PII_DATASET,
                 "base_model": "minilm", "base_layers": 3, "epochs": 2, "batch_size": 16, "learning_rate": 3e-4,
                 "max_length": 128, "early_stopping_patience": None}
Say = Callable[[str], None]


def probe_records() -> list[dict]:
    """The probe texts with their gold spans."""
    return [json.loads(line) for line in PROBE.read_text().splitlines()]


def probe_events(records: list[dict], prefix: str) -> list[dict]:
    """One unlabeled event per probe text (a dataset the predictor does not serve)."""
    now = datetime.now(UTC).isoformat()
    return [{"schema_version": 1, "event_id": f"{prefix}-{i}", "device_id": "support-desk", "dataset": PROBE_DATASET,
             "ts": now, "text": r["text"]} for i, r in enumerate(records)]


def recall_by_type(records: list[dict], clean_texts: dict[int, str]) -> dict[str, tuple[int, int]]:
    """Per gold type: (whitespace tokens of gold values that were replaced, all of them).

    Redaction keeps the token count, so token i of the clean text stands where token i of the original did.
    """
    caught, total = Counter[str](), Counter[str]()
    for i, record in enumerate(records):
        clean = clean_texts.get(i)
        if clean is None:
            continue
        raw_tokens, clean_tokens, offsets = record["text"].split(), clean.split(), _token_offsets(record["text"])
        for span in record["spans"]:
            for t, (start, end) in enumerate(offsets):
                if start < span["end_position"] and span["start_position"] < end:
                    total[span["entity_type"]] += 1
                    caught[span["entity_type"]] += len(clean_tokens) == len(raw_tokens) and \
                        clean_tokens[t] != raw_tokens[t]
    return {t: (caught[t], total[t]) for t in sorted(total)}


def _token_offsets(text: str) -> list[tuple[int, int]]:
    offsets, cursor = [], 0
    for token in text.split():
        start = text.index(token, cursor)
        offsets.append((start, start + len(token)))
        cursor = start + len(token)
    return offsets


async def run_probe(redis: Redis, records: list[dict], prefix: str, xadd: Callable[[Redis, list], Awaitable[None]],
                    wait_until: Callable) -> dict[str, tuple[int, int]]:
    """Send the probe through the pipeline; recall by type read from events.clean."""
    await xadd(redis, probe_events(records, prefix))

    async def clean_probe() -> dict[int, str]:
        found = {}
        for _, fields in await redis.xrange(streams.CLEAN):
            event = json.loads(fields[streams.PAYLOAD_FIELD.encode()])
            if event["event_id"].startswith(f"{prefix}-"):
                found[int(event["event_id"].rsplit("-", 1)[1])] = event["text"]
        return found

    async def all_clean() -> bool:
        return len(await clean_probe()) >= len(records)
    await wait_until(all_clean, 180, f"the {prefix} probe in events.clean")
    return recall_by_type(records, await clean_probe())


def import_training_set(env: dict[str, str], say: Say) -> int:
    """Generate the synthetic PII set (+ presidio's training templates when present) and import it with the CLI."""
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="streamtune-demo-pii-") as tmp:
        rows = Path(tmp) / "pii-training.jsonl"
        # Some Faker locales (it_IT's cities) draw from hash-ordered data: a fixed hash seed makes the rows repeatable.
        subprocess.run([python, "-m", "streamtune_anonymizer.synthetic", "--rows", str(SYNTHETIC_ROWS), "--seed", "1",
                        "--out", str(rows)], check=True, cwd=ROOT, env={**env, "PYTHONHASHSEED": "0"},
                       capture_output=True)
        if PRESIDIO_DEV.is_file():
            presidio = Path(tmp) / "presidio-train.jsonl"
            subprocess.run([python, "-m", "streamtune_anonymizer.synthetic", "--from-presidio", str(PRESIDIO_DEV),
                            "--out", str(presidio)], check=True, cwd=ROOT, env=env, capture_output=True)
            rows.write_text(rows.read_text() + presidio.read_text())
        with rows.open("a") as out:
            for row in clinical_negatives():
                out.write(json.dumps(row) + "\n")
        count = len(rows.read_text().splitlines())
        cli = Path(python).with_name("streamtune")
        result = subprocess.run([str(cli), "datasets", "import", str(rows), "--dataset", PII_DATASET, "--json"],
                                cwd=ROOT, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"demo: streamtune datasets import failed: {result.stderr.strip()}")
    say(f"  streamtune datasets import: {count} labeled rows into dataset {PII_DATASET} "
        "(trusted synthetic data: bypasses ingestion and the anonymizer)")
    return count


def clinical_negatives() -> list[dict]:
    """The clinical-note fixture's sentences with every token O: disease and gene names are not organisations.

    Without them the PII model tags terms such as "adenomatous polyposis coli" as ORGANIZATION, and the
    redaction destroys what the disease-NER data is for. (Their appended contact sentences hold only
    pattern types, which the PII model is not taught to tag anyway.)
    """
    notes = ROOT / "tests" / "fixtures" / "clinical_notes.jsonl"
    rows = []
    for i, line in enumerate(notes.read_text().splitlines()):
        text = json.loads(line)["text"]
        rows.append({"event_id": f"clinical-negative-{i}", "text": text, "label": ["O"] * len(text.split())})
    return rows


def wait_pii_model(anonymizer_metrics_url: str, version: str, timeout_s: float) -> None:
    """Until the anonymizer's /metrics says it uses ``version`` of the PII model."""
    wanted = f'streamtune_anonymizer_pii_model_info{{version="{version}"}} 1.0'
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(anonymizer_metrics_url, timeout=5) as response:
            if wanted in response.read().decode():
                return
        time.sleep(0.5)
    raise SystemExit(f"demo: the anonymizer did not load {PII_MODEL} {version} (see .stack/logs/anonymizer.log)")


def print_recall(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> None:
    """A before/after table of token recall by gold type."""
    print("PII token recall on 298 texts never trained on (gold type: before -> after the pii-ner model)")
    for pii_type in sorted(set(before) | set(after)):
        b, a = before.get(pii_type, (0, 0)), after.get(pii_type, (0, 0))
        print(f"  {pii_type:<18} {_ratio(b)} -> {_ratio(a)}   ({a[1]} tokens)")
    total_b = tuple(map(sum, zip(*before.values(), strict=True))) if before else (0, 0)
    total_a = tuple(map(sum, zip(*after.values(), strict=True))) if after else (0, 0)
    print(f"  {'all PII':<18} {_ratio(total_b)} -> {_ratio(total_a)}")


def _ratio(pair: tuple[int, int]) -> str:
    caught, total = pair
    return f"{caught / total:.3f}" if total else "  -  "


async def privacy_pillar(redis: Redis, env: dict[str, str], anonymizer_metrics_url: str, say: Say,
                         xadd: Callable, wait_until: Callable) -> dict:
    """Probe, train and publish pii-ner, probe again; returns what the summary prints."""
    records = probe_records()
    say(f"PII probe: {len(records)} texts (names, addresses, places, organisations, dates, cards...) never "
        "trained on, through ingestion and the anonymizer (patterns + spaCy's small NER, no PII model yet)")
    before = await run_probe(redis, records, "probe-before", xadd, wait_until)
    await asyncio.to_thread(import_training_set, env, say)
    request = {**TRAIN_REQUEST, "request_id": f"demo-pii-{int(time.time())}"}
    await redis.xadd(streams.TRAIN_REQUESTS, {streams.PAYLOAD_FIELD: json.dumps(request)})
    say(f"train request sent: fine-tune MiniLM (first {request['base_layers']} layers, {request['epochs']} epochs) "
        f"as {PII_MODEL}")
    status, _ = await follow_training(redis, request["request_id"], 900, say, entity_f1_line)
    if status["state"] == "failed":
        raise SystemExit(f"demo: training {PII_MODEL} failed: {status.get('message')}")
    await asyncio.to_thread(wait_pii_model, anonymizer_metrics_url, status["version"], 120)
    say(f"published {PII_MODEL} {status['version']}; the anonymizer hot-reloaded it")
    after = await run_probe(redis, records, "probe-after", xadd, wait_until)
    return {"before": before, "after": after, "version": status["version"]}
