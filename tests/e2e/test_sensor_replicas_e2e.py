"""Three predictor processes in one consumer group serve a sensor-anomaly version on a real Redis and S3; one is
killed with SIGKILL mid-stream while it holds entries.

Every clean event gets exactly one prediction (the dead replica's entries are reclaimed by the others), each
device's first ``calibration_events`` events are the calibrating ones and no later event is, and every
prediction whose window was complete when it was served equals the offline window's score.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import torch
from streamtune_predictor.anomaly import AnomalyModel
from streamtune_shared import streams
from streamtune_shared.anomaly_net import AnomalyNet, AnomalyNetConfig, published_files
from streamtune_shared.model_card import CardAnomaly, ModelCard
from streamtune_shared.model_registry import RegistryLayout, file_checksums, write_version
from streamtune_shared.sensor_windows import Calibration, reading_matrix, sliding_windows
from streamtune_shared.testing import wait_until

import processes  # deploy/local, put on sys.path by the root conftest

SENSORS = ("Current", "Pressure", "Temperature")
CONFIG = AnomalyNetConfig(sensors=SENSORS, window=8, calibration_events=12, channels=8, layers=2)
WINDOW = CONFIG.spec().window  # the events the predictor windows per score (window + smoothing - 1)
DEVICES = ("pump-a", "pump-b", "pump-c", "pump-d")
EVENTS_PER_DEVICE = 60
CHUNK_PAUSE_S = 0.1  # one event per device per chunk
GROUP = "predictor"
T0 = datetime(2020, 3, 9, 10, tzinfo=UTC)


def publish(store) -> AnomalyNet:
    """A randomly initialised network stored as version 1 of pump-anomaly, the way the trainer writes one."""
    torch.manual_seed(11)
    net = AnomalyNet(CONFIG).eval()
    files = published_files(net)
    card = ModelCard(model_name="pump-anomaly", version="20261201T090000Z-replica1", task="sensor-anomaly",
                     dataset="pump-sensors", request_id="req-replicas", files=file_checksums(files),
                     created_at=datetime.now(UTC), anomaly=CardAnomaly(threshold=0.5, false_alarm_cap=0.1))
    write_version(store, RegistryLayout(), card, files)
    return net


def clean_event(device: str, i: int) -> dict:
    rng = np.random.default_rng([DEVICES.index(device), i])
    now = datetime.now(UTC).isoformat()
    return {"schema_version": 1, "event_id": f"{device}-{i:03d}", "device_id": device, "dataset": "pump-sensors",
            "ts": (T0 + timedelta(seconds=i)).isoformat(), "readings": {
                "Current": float(2 + rng.normal(0, 0.1) + (i > 40)), "Pressure": float(1 + rng.normal(0, 0.05)),
                "Temperature": float(70 + rng.normal(0, 0.5))},
            "text": None, "label": None, "meta": {}, "notes": [], "ingested_at": now, "redactions": {},
            "anonymized_at": now}


def _ms(entry_id: bytes | str) -> int:
    return int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])


@pytest.fixture
def predictor_env(infra_env, infra_settings) -> dict[str, str]:
    return {**infra_env, "STREAMTUNE_S3_BUCKET": infra_settings.s3_bucket,
            "PREDICTOR_MODELS": json.dumps({"pump-sensors": "pump-anomaly"}), "PREDICTOR_BATCH_SIZE": "8",
            "PREDICTOR_MAX_WAIT_MS": "10", "PREDICTOR_CLAIM_IDLE_MS": "1500", "PREDICTOR_RESCAN_S": "0.5",
            "PREDICTOR_NUM_THREADS": "1"}


async def kill_while_holding(redis, victim: processes.ServiceProcess, sent: asyncio.Event) -> list[str]:
    """Once ``sent`` is set: freeze the victim until it holds entries (SIGSTOP, look, SIGCONT), then SIGKILL it.

    Returns the entry ids it held, which only a reclaim by another replica can finish.
    """
    await sent.wait()
    consumer = f"{socket.gethostname()}-{victim.proc.pid}"
    for _ in range(200):
        victim.signal(signal.SIGSTOP)
        await asyncio.sleep(0.15)  # entries XADDed meanwhile may be handed to its blocked XREADGROUP
        held = await redis.xpending_range(streams.CLEAN, GROUP, min="-", max="+", count=1000, consumername=consumer)
        if held:
            victim.signal(signal.SIGKILL)
            await asyncio.to_thread(victim.proc.wait, 10)
            return [entry["message_id"].decode() for entry in held]
        victim.signal(signal.SIGCONT)
        await asyncio.sleep(0.02)
    raise AssertionError("the victim never held an entry")


async def test_three_predictor_processes_one_killed_mid_stream(redis_client, predictor_env, object_store, tmp_path):
    net = await asyncio.to_thread(publish, object_store)
    replicas = [processes.ServiceProcess("predictor", predictor_env, processes.free_port(),
                                         tmp_path / f"predictor-{n}.log").start() for n in range(3)]
    clean_ids: dict[str, int] = {}
    try:
        for replica in replicas:
            await asyncio.to_thread(replica.wait_until, "/readyz", 120)
        calibration = [clean_event(d, i) for i in range(CONFIG.calibration_events) for d in DEVICES]
        for e in calibration:
            clean_ids[e["event_id"]] = _ms(await redis_client.xadd(streams.CLEAN, {"payload": json.dumps(e)}))
        await wait_until(lambda: _count(redis_client, len(calibration)), "the calibration events' predictions")

        third = asyncio.Event()
        killer = asyncio.create_task(kill_while_holding(redis_client, replicas[0], third))
        rest = range(CONFIG.calibration_events, EVENTS_PER_DEVICE)
        for n, i in enumerate(rest):
            for d in DEVICES:
                e = clean_event(d, i)
                clean_ids[e["event_id"]] = _ms(await redis_client.xadd(streams.CLEAN, {"payload": json.dumps(e)}))
            if n == len(rest) // 3:
                third.set()
            await asyncio.sleep(CHUNK_PAUSE_S)
        held = await asyncio.wait_for(killer, 60)

        async def drained() -> bool:
            pending = (await redis_client.xpending(streams.CLEAN, GROUP))["pending"]
            return pending == 0 and len(await _predictions(redis_client)) == len(clean_ids)

        await wait_until(drained, "a prediction for every event and nothing pending", 45,
                         on_timeout=lambda: "\n".join(r.log_tail(10) for r in replicas[1:]))
        found = await _predictions(redis_client)
    finally:
        for replica in replicas:
            replica.stop()
    assert held, "the killed replica held entries"
    assert sorted(found) == sorted(clean_ids)
    assert {eid: len(ps) for eid, ps in found.items() if len(ps) != 1} == {}
    comparable = 0
    for d in DEVICES:
        ids = [f"{d}-{i:03d}" for i in range(EVENTS_PER_DEVICE)]
        outputs = [found[eid][0][1]["outputs"] for eid in ids]
        assert [o["calibrating"] for o in outputs] == [i < CONFIG.calibration_events for i in range(len(ids))]
        assert not any(o["is_anomaly"] for o in outputs[:CONFIG.calibration_events])
        recording = [clean_event(d, i) for i in range(EVENTS_PER_DEVICE)]
        rows = reading_matrix([e["readings"] for e in recording], SENSORS)
        x = Calibration.of(rows[:CONFIG.calibration_events]).normalize(rows, CONFIG.clip)
        expected = AnomalyModel(net, 0.5).scores(sliding_windows(x, WINDOW))
        served_at = [found[eid][0][0] for eid in ids]
        for i in range(CONFIG.calibration_events, len(ids)):
            if _window_was_complete(i, ids, served_at, clean_ids):
                assert outputs[i]["anomaly_score"] == pytest.approx(float(expected[i]), abs=1e-4), ids[i]
                comparable += 1
    scored = len(DEVICES) * (EVENTS_PER_DEVICE - CONFIG.calibration_events)
    assert comparable >= 0.4 * scored, f"only {comparable} of {scored} predictions had a complete window"


def _window_was_complete(i: int, ids: list[str], served_at: list[int], clean_ids: dict[str, int]) -> bool:
    """Whether event i's window held its predecessors and was not yet trimmed when it was served.

    Its ``window - 1`` predecessors were predicted (so stored) before event i was even written, and fewer than
    ``3 * window`` newer events of its device could have been stored when it was served (the store keeps the
    newest ``4 * window``). Times are the Redis stream ids' milliseconds, compared strictly.
    """
    window = WINDOW
    before = range(max(0, i - window + 1), i)
    if any(served_at[p] >= clean_ids[ids[i]] for p in before):
        return False
    newer = sum(1 for later in ids[i + 1:] if clean_ids[later] <= served_at[i])
    return newer < 3 * window


async def _predictions(redis) -> dict[str, list[tuple[int, dict]]]:
    found: dict[str, list[tuple[int, dict]]] = {}
    for entry_id, fields in await redis.xrange(streams.PREDICTIONS):
        prediction = json.loads(fields[b"payload"])
        found.setdefault(prediction["event_id"], []).append((_ms(entry_id), prediction))
    return found


async def _count(redis, n: int) -> bool:
    return await redis.xlen(streams.PREDICTIONS) >= n
