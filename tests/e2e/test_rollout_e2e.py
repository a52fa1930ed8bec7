"""Run-time rollout end to end: two versions trained by the trainer process, then pinned, canaried, shadowed,
promoted and rolled back through the `streamtune` CLI while events stream into two predictor processes.

Each phase's events are written only after the CLI's ``--wait`` saw every live predictor acknowledge the
change, so each of them must be predicted by exactly the version that change made live; events streamed
in the background throughout must each get exactly one prediction too.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import processes  # deploy/local, put on sys.path by the root conftest
from streamtune_cli.app import app
from streamtune_shared import streams
from streamtune_shared.datasets import import_rows
from streamtune_shared.rollout import canary_bucket
from streamtune_shared.testing import wait_until
from typer.testing import CliRunner

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MODEL, DATASET = "disease-ner", "clinical-notes"
SHARE = 0.3
PHASE_EVENTS = 40


def _notes() -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / "clinical_notes.jsonl").read_text().splitlines()]


def _clean_event(event_id: str, text: str) -> bytes:
    now = datetime.now(UTC).isoformat()
    return json.dumps({"schema_version": 1, "event_id": event_id, "device_id": "ps_rollout", "dataset": DATASET,
                       "ts": now, "text": text, "ingested_at": now, "anonymized_at": now}).encode()


async def _payloads(redis, stream: str) -> list[dict]:
    return [json.loads(fields[b"payload"]) for _, fields in await redis.xrange(stream)]


async def _cli(env: dict[str, str], *args: str) -> dict:
    """`streamtune ARGS --json`, in a thread (the CLI runs its own event loop) while events keep streaming."""
    result = await asyncio.to_thread(CliRunner().invoke, app, [*args, "--json"], env=env)
    assert result.exit_code == 0, f"streamtune {' '.join(args)} failed: {result.output}"
    return json.loads(result.stdout.strip().splitlines()[-1])


async def _train(redis, env_procs, request_id: str, seed: int, base: Path) -> str:
    request = {"schema_version": 1, "request_id": request_id, "model_name": MODEL, "task": "token-classification",
               "dataset": DATASET, "base_model": str(base), "epochs": 1, "batch_size": 32, "learning_rate": 5e-3,
               "seed": seed, "max_length": 64}
    await redis.xadd(streams.TRAIN_REQUESTS, {"payload": json.dumps(request)})

    async def published() -> bool:
        return any(p["request_id"] == request_id for p in await _payloads(redis, streams.MODELS_PUBLISHED))
    await wait_until(published, f"version of {request_id}", 300, interval_s=0.5, on_timeout=env_procs)
    return next(p["version"] for p in await _payloads(redis, streams.MODELS_PUBLISHED) if p["request_id"] == request_id)


async def test_promote_canary_shadow_rollback_while_events_stream(redis_client, infra_env, infra_settings, tmp_path,
                                                                  tiny_bert_folder):
    from streamtune_shared.storage import minio_store

    env = processes.service_env({**infra_env, "STREAMTUNE_S3_BUCKET": infra_settings.s3_bucket,
                                 "PREDICTOR_RESCAN_S": "2", "PREDICTOR_MAX_WAIT_MS": "20"}, {DATASET: MODEL})
    notes = _notes()
    await asyncio.to_thread(import_rows, minio_store(infra_settings), DATASET,
                            [{"text": n["text"], "label": n["label"]} for n in notes], "rollout-e2e")
    procs = {"trainer": processes.ServiceProcess("trainer", env, processes.free_port(), tmp_path / "trainer.log"),
             **{f"predictor-{i}": processes.ServiceProcess("predictor", env, processes.free_port(),
                                                           tmp_path / f"predictor-{i}.log") for i in (1, 2)}}
    for proc in procs.values():
        proc.start()
    tails = lambda: "\n".join(f"--- {n}\n{p.log_tail(12)}" for n, p in procs.items())  # noqa: E731
    streaming = True
    sent: dict[str, str] = {}  # event id -> phase

    async def background() -> None:
        i = 0
        while streaming:
            await redis_client.xadd(streams.CLEAN, {"payload": _clean_event(f"bg-{i}", notes[i % len(notes)]["text"])})
            sent[f"bg-{i}"] = "background"
            i += 1
            await asyncio.sleep(0.05)

    async def phase(name: str) -> None:
        for i in range(PHASE_EVENTS):
            await redis_client.xadd(streams.CLEAN, {"payload": _clean_event(f"{name}-{i}", notes[i]["text"])})
            sent[f"{name}-{i}"] = name

    try:
        for proc in procs.values():
            proc.wait_until("/healthz")
        v1 = await _train(redis_client, tails, "rollout-v1", 1, tiny_bert_folder)

        async def v1_serves_everywhere() -> bool:  # the first version of an unpinned model auto-promotes
            (document,) = await _cli(env, "models", "rollout")
            return document["version"] == v1 and document["all_applied"] and len(document["predictors"]) == 2
        await wait_until(v1_serves_everywhere, "v1 to serve in both predictors", 60, interval_s=0.5, on_timeout=tails)
        state = await _cli(env, "models", "pin", MODEL, "--wait", "60")  # so that v2 does not auto-promote
        assert (state["version"], state["pinned"]) == (v1, True)
        producer = asyncio.create_task(background())
        v2 = await _train(redis_client, tails, "rollout-v2", 2, tiny_bert_folder)
        await phase("pinned")
        canary = await _cli(env, "models", "canary", MODEL, v2, "--share", str(SHARE), "--wait", "60")
        assert canary["canary"]["version"] == v2
        await phase("canary")
        await _cli(env, "models", "canary", MODEL, "--abort", "--wait", "60")
        assert (await _cli(env, "models", "shadow", MODEL, v2, "--wait", "60"))["shadow"]["version"] == v2
        await phase("shadow")
        assert (await _cli(env, "models", "promote", MODEL, v2, "--wait", "60"))["version"] == v2
        await phase("promoted")
        assert (await _cli(env, "models", "rollback", MODEL, "--wait", "60"))["version"] == v1
        await phase("rolled-back")
        streaming = False
        await producer

        async def all_predicted() -> bool:
            return await redis_client.xlen(streams.PREDICTIONS) >= len(sent)
        await wait_until(all_predicted, "a prediction for every event", 120, interval_s=0.5, on_timeout=tails)
        await asyncio.sleep(1.5)  # a duplicate would show up now
        predictions = await _payloads(redis_client, streams.PREDICTIONS)
        by_event = {p["event_id"]: p for p in predictions}
        assert len(predictions) == len(by_event) == len(sent), "an event got no prediction, or two"
        assert {(p["version"], p["rollout"]) for p in predictions if sent[p["event_id"]] == "background"} <= {
            (v1, "primary"), (v2, "primary"), (v2, "canary")}
        expected = {"pinned": lambda e: (v1, "primary"), "shadow": lambda e: (v1, "primary"),
                    "canary": lambda e: (v2, "canary") if canary_bucket(e) < SHARE else (v1, "primary"),
                    "promoted": lambda e: (v2, "primary"), "rolled-back": lambda e: (v1, "primary")}
        for event_id, name in sent.items():
            if name in expected:
                got = (by_event[event_id]["version"], by_event[event_id]["rollout"])
                assert got == expected[name](event_id), f"{event_id} ({name}) predicted by {got}"
        canaried = [e for e, n in sent.items() if n == "canary" and by_event[e]["rollout"] == "canary"]
        assert 0 < len(canaried) < PHASE_EVENTS
        shadow = [p for p in await _payloads(redis_client, streams.PREDICTIONS_SHADOW) if sent[p["event_id"]] == "shadow"]
        assert sorted(p["event_id"] for p in shadow) == sorted(e for e, n in sent.items() if n == "shadow")
        assert {(p["version"], p["rollout"]) for p in shadow} == {(v2, "shadow")}

        status = await _cli(env, "status")
        (rollout,) = [d for d in status["rollout"] if d["dataset"] == DATASET]
        assert rollout["version"] == v1 and rollout["pinned"] and rollout["all_applied"]
        assert len(rollout["predictors"]) == 2
    finally:
        streaming = False
        for proc in procs.values():
            proc.stop()
