"""Serving sensor-anomaly: each event scored on its device's window exactly as the trainer windows a recording,
calibrating events flagged, redeliveries idempotent, out-of-order events placed by ts."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
import torch
from streamtune_predictor.anomaly import AnomalyModel
from streamtune_predictor.device_windows import InMemoryDeviceWindows, SensorEvent
from streamtune_shared.anomaly_net import AnomalyNet, AnomalyNetConfig, load_network, version_files
from streamtune_shared.sensor_windows import Calibration, reading_matrix, sliding_windows

SENSORS = ("Pressure", "Temperature")
CONFIG = AnomalyNetConfig(sensors=SENSORS, window=4, calibration_events=5, channels=8, layers=2)


@pytest.fixture
def model() -> AnomalyModel:
    torch.manual_seed(0)
    return AnomalyModel(AnomalyNet(CONFIG).eval(), threshold=0.5)


def events(n: int, device: str = "d1") -> list[SensorEvent]:
    rng = np.random.default_rng(3)
    return [SensorEvent(f"{device}-{i}", device, 1000.0 + i,
                        {"Pressure": float(1 + rng.normal(0, 0.1) + (i > 8)), "Temperature": float(70 + rng.normal())})
            for i in range(n)]


def offline_scores(model: AnomalyModel, stream: list[SensorEvent]) -> np.ndarray:
    rows = reading_matrix([e.readings for e in stream], SENSORS)
    x = Calibration.of(rows[:CONFIG.calibration_events]).normalize(rows, CONFIG.clip)
    return model.scores(sliding_windows(x, CONFIG.window))


async def test_scores_match_the_trainers_windows_and_calibration_is_flagged(model):
    store, stream = InMemoryDeviceWindows(), events(12)
    outputs = []
    for batch in (stream[:3], stream[3:7], stream[7:]):
        outputs += model.outputs(await store.append("pump-sensors", batch, CONFIG.window, CONFIG.calibration_events))
    assert [o.calibrating for o in outputs] == [True] * 5 + [False] * 7
    assert all(o.is_anomaly is False and o.anomaly_score == 0.0 for o in outputs[:5])
    expected = offline_scores(model, stream)[5:]
    assert [o.anomaly_score for o in outputs[5:]] == pytest.approx(expected.tolist(), abs=1e-5)
    assert all(o.is_anomaly == (o.anomaly_score >= 0.5) and o.threshold == 0.5 for o in outputs)


async def test_a_redelivered_batch_gets_the_same_outputs_and_counts_once(model):
    store, stream = InMemoryDeviceWindows(), events(8)
    first = model.outputs(await store.append("pump-sensors", stream, CONFIG.window, CONFIG.calibration_events))
    again = model.outputs(await store.append("pump-sensors", stream, CONFIG.window, CONFIG.calibration_events))
    assert again == first
    assert store.calibration[("pump-sensors", "d1")]["n"] == CONFIG.calibration_events


async def test_a_late_event_is_windowed_by_its_ts_and_devices_do_not_mix(model):
    store, stream = InMemoryDeviceWindows(), events(10)
    other = events(10, device="d2")
    late = stream[7]
    await store.append("pump-sensors", stream[:7] + stream[8:] + other, CONFIG.window, CONFIG.calibration_events)
    (view,) = await store.append("pump-sensors", [late], CONFIG.window, CONFIG.calibration_events)
    assert [r["Pressure"] for r in view.rows] == [e.readings["Pressure"] for e in stream[4:8]]


def test_a_version_round_trips_through_its_safetensors_files(model):
    files = version_files(model.net)
    loaded = load_network(files["config.json"], files["model.safetensors"])
    x = np.random.default_rng(1).normal(size=(3, 4, 2)).astype(np.float32)
    assert AnomalyModel(loaded, 0.5).scores(x) == pytest.approx(model.scores(x), abs=1e-6)
    assert loaded.config == CONFIG


async def test_post_predict_refuses_a_sensor_anomaly_model_with_the_reason(model):
    import httpx
    from streamtune_predictor.api import create_http_app
    from streamtune_predictor.registry import ModelRegistry, Route, ServingModel
    from streamtune_shared.rollout import ServingState

    registry = ModelRegistry({"pump-sensors": "pump-anomaly"}, {})
    serving = ServingModel("pump-anomaly", "v1", "sensor-anomaly", predict=lambda texts: [], anomaly=model)
    state = ServingState(dataset="pump-sensors", model="pump-anomaly", version="v1", updated_at=datetime.now(UTC))
    registry.install(Route(state, serving))
    app = create_http_app(registry)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://predictor") as client:
        response = await client.post("/predict", json={"dataset": "pump-sensors", "text": "x"})
    assert response.status_code == 422 and "per-device windows" in response.json()["detail"]


async def test_a_reclaimed_old_event_batched_with_a_new_one_keeps_its_own_window(model):
    store, stream = InMemoryDeviceWindows(), events(20)
    await store.append("pump-sensors", stream[:9] + stream[10:16], CONFIG.window, CONFIG.calibration_events)
    old, _ = await store.append("pump-sensors", [stream[9], stream[16]], CONFIG.window, CONFIG.calibration_events)
    assert [r["Pressure"] for r in old.rows] == [e.readings["Pressure"] for e in stream[6:10]]
    (output,) = model.outputs([old])
    assert output.calibrating is False
    assert output.anomaly_score == pytest.approx(float(offline_scores(model, stream[:17])[9]), abs=1e-5)


async def test_windows_of_a_batch_that_shares_rows_across_devices_match_each_devices_own_windows(model):
    store, first, second = InMemoryDeviceWindows(), events(12), events(12, device="d2")
    for e in second:  # another device with other readings, so a mixed-up row would show
        e.readings["Pressure"] += 5.0
    batch = [e for pair in zip(first, second, strict=True) for e in pair]
    views = await store.append("pump-sensors", batch, CONFIG.window, CONFIG.calibration_events)
    together = model.windows(views)
    for device, stream in (("d1", first), ("d2", second)):
        rows = reading_matrix([e.readings for e in stream], SENSORS)
        x = Calibration.of(rows[:CONFIG.calibration_events]).normalize(rows, CONFIG.clip)
        mine = [i for i, e in enumerate(batch) if e.device_id == device]
        assert together[mine] == pytest.approx(sliding_windows(x, CONFIG.window), abs=1e-6)
    again = model.windows(views[::-1])  # the second call reuses the converted rows
    assert again[::-1] == pytest.approx(together, abs=0)
