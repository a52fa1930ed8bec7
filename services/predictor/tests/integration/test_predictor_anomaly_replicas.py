"""Three predictor replicas on one group serving a sensor-anomaly version from real Redis and S3: one prediction
per event, each device calibrated once across replicas, and scores equal to the offline windows."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import torch
from streamtune_predictor.anomaly import AnomalyModel
from streamtune_predictor.app import create_app
from streamtune_predictor.config import PredictorSettings
from streamtune_predictor.device_windows import device_key
from streamtune_shared import streams
from streamtune_shared.anomaly_net import AnomalyNet, AnomalyNetConfig, published_files
from streamtune_shared.model_card import CardAnomaly, ModelCard
from streamtune_shared.model_registry import RegistryLayout, file_checksums, write_version
from streamtune_shared.sensor_windows import Calibration, reading_matrix, sliding_windows
from streamtune_shared.testing import wait_until

VERSION = "20261201T080000Z-anomaly1"
CONFIG = AnomalyNetConfig(sensors=("Current", "Pressure"), window=8, calibration_events=10, channels=8, layers=2)
T0 = datetime(2020, 3, 9, 10, tzinfo=UTC)


@pytest.fixture
def settings(infra_settings) -> PredictorSettings:
    return PredictorSettings(infra=infra_settings, models={"pump-sensors": "pump-anomaly"}, batch_size=8,
                             max_wait_ms=10, claim_idle_ms=2_000, rescan_s=0.5, announce_block_ms=100)


def publish(store) -> AnomalyNet:
    torch.manual_seed(5)
    net = AnomalyNet(CONFIG).eval()
    files = published_files(net)
    card = ModelCard(model_name="pump-anomaly", version=VERSION, task="sensor-anomaly", dataset="pump-sensors",
                     request_id="req-anomaly", files=file_checksums(files), created_at=datetime.now(UTC),
                     anomaly=CardAnomaly(threshold=0.5, false_alarm_cap=0.1))
    write_version(store, RegistryLayout(), card, files)
    return net


def event(device: str, i: int) -> dict:
    rng = np.random.default_rng(hash((device, i)) % 2**32)
    now = datetime.now(UTC).isoformat()
    return {"schema_version": 1, "event_id": f"{device}-{i:03d}", "device_id": device, "dataset": "pump-sensors",
            "ts": (T0 + timedelta(seconds=i)).isoformat(), "readings": {
                "Current": float(2 + rng.normal(0, 0.1) + (i > 30)), "Pressure": float(1 + rng.normal(0, 0.05))},
            "text": None, "label": None, "meta": {}, "notes": [], "ingested_at": now, "redactions": {},
            "anonymized_at": now}


async def predictions(redis) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for _, fields in await redis.xrange(streams.PREDICTIONS):
        p = json.loads(fields[b"payload"])
        found.setdefault(p["event_id"], []).append(p)
    return found


async def test_three_replicas_share_each_devices_window_and_calibration(redis_client, settings, object_store):
    net = await asyncio.to_thread(publish, object_store)
    devices = ("pump-1", "pump-2")
    bulk = [event(d, i) for i in range(40) for d in devices]
    tail = [event(d, i) for i in range(40, 44) for d in devices]
    async with AsyncExitStack() as stack:
        for _ in range(3):
            app = create_app(settings)
            await stack.enter_async_context(app.start_lifespan_context())
        for e in bulk:  # interleaved devices, read concurrently by three replicas
            await redis_client.xadd(streams.CLEAN, {"payload": json.dumps(e)})

        async def count(n: int) -> bool:
            return len(await predictions(redis_client)) >= n

        await wait_until(lambda: count(len(bulk)), "predictions of the bulk events")
        for n, e in enumerate(tail, start=len(bulk) + 1):  # one at a time: each window is then deterministic
            await redis_client.xadd(streams.CLEAN, {"payload": json.dumps(e)})
            await wait_until(lambda n=n: count(n), f"prediction {n}")
        await asyncio.sleep(0.5)  # a duplicate from a reclaim would have shown up by now
        found = await predictions(redis_client)
        calibrated = {d: {m.decode() for m in await redis_client.smembers(f"{device_key('pump-sensors', d)}:calids")}
                      for d in devices}
    assert sorted(found) == sorted(e["event_id"] for e in bulk + tail)
    assert all(len(ps) == 1 for ps in found.values())
    outputs = {eid: ps[0]["outputs"] for eid, ps in found.items()}
    for d in devices:
        flagged = {eid for eid, o in outputs.items() if eid.startswith(d) and o["calibrating"]}
        assert flagged == calibrated[d] and len(calibrated[d]) == CONFIG.calibration_events
        assert all(not outputs[eid]["is_anomaly"] for eid in flagged)
        recording = [event(d, i) for i in range(44)]
        rows = reading_matrix([e["readings"] for e in recording], CONFIG.sensors)
        calib_rows = [i for i, e in enumerate(recording) if e["event_id"] in calibrated[d]]
        x = Calibration.of(rows[calib_rows]).normalize(rows, CONFIG.clip)
        expected = AnomalyModel(net, 0.5).scores(sliding_windows(x, CONFIG.window)[40:])
        served = [outputs[f"{d}-{i:03d}"]["anomaly_score"] for i in range(40, 44)]
        assert served == pytest.approx(expected.tolist(), abs=1e-5)
    assert {ps[0]["task"] for ps in found.values()} == {"sensor-anomaly"}
