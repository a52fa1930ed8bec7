"""A sensor-anomaly run through the trainer app on real Redis + S3: devices' readings in, a published version with
its dev-calibrated threshold out, detecting faults far better than the same network untrained."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import torch
from streamtune_shared import streams
from streamtune_shared.anomaly_net import AnomalyNet, load_network
from streamtune_shared.schemas import CleanEvent, TrainRequest
from streamtune_shared.testing import wait_until
from streamtune_trainer.anomaly_data import build_windows, recordings_from_rows, split_recordings
from streamtune_trainer.anomaly_metrics import binary_metrics, choose_threshold
from streamtune_trainer.anomaly_training import AnomalyHyperparameters, score_windows
from streamtune_trainer.app import create_app
from streamtune_trainer.config import TrainerSettings

DATASET = "pump-sensors"
T0 = datetime(2020, 3, 9, 10, tzinfo=UTC)


def device_events(device: int, n: int = 160, calibration: int = 40) -> list[CleanEvent]:
    """A pump with its own normal levels; from a random point after calibration a fault shifts two sensors."""
    rng = np.random.default_rng(device)
    level = rng.normal([2.0, 1.0, 70.0], [0.3, 0.2, 5.0])
    start = int(rng.integers(calibration + 20, n - 40))
    events = []
    for i in range(n):
        fault = start <= i < start + 35
        values = level + rng.normal(0, [0.05, 0.03, 0.5]) + (np.array([0.3, -0.15, 0.0]) if fault else 0.0)
        events.append(CleanEvent(
            schema_version=1, event_id=f"pump-{device}-{i:04d}", device_id=f"ps_pump{device}", dataset=DATASET,
            ts=T0 + timedelta(seconds=i), readings=dict(zip(("Current", "Pressure", "Temperature"), values.tolist())),
            label=int(fault), ingested_at=T0, anonymized_at=T0))
    return events


async def _published(redis) -> list[dict]:
    return [json.loads(f[b"payload"]) for _, f in await redis.xrange(streams.MODELS_PUBLISHED)]


async def test_a_sensor_anomaly_run_publishes_a_calibrated_version_that_beats_the_untrained_network(
        redis_client, infra_settings, object_store, write_shards):
    events = [e for d in range(10) for e in device_events(d)]
    write_shards(object_store, DATASET, events)
    request = TrainRequest(request_id="it-pump-anomaly", model_name="pump-anomaly", task="sensor-anomaly",
                           dataset=DATASET, calibration_events=40, window=16, stride=2, epochs=6,
                           dev_fraction=0.2, test_fraction=0.2)
    await redis_client.xadd(streams.TRAIN_REQUESTS, {"payload": request.model_dump_json()})
    async with create_app(TrainerSettings(infra=infra_settings)).start_lifespan_context():
        async def announced() -> bool:
            return len(await _published(redis_client)) == 1
        await wait_until(announced, "the announcement", 600)

    [message] = await _published(redis_client)
    card = json.loads(object_store.get_bytes(message["card_key"]))
    assert message["task"] == card["task"] == "sensor-anomaly"
    assert 0 < card["anomaly"]["threshold"] < 1 and card["anomaly"]["false_alarm_cap"] == 0.12
    assert card["hyperparameters"]["learning_rate"] == AnomalyHyperparameters().learning_rate
    assert set(card["files"]) == {"config.json", "model.safetensors", "labels.json", "report.json", "report.png"}
    prefix = message["prefix"]
    net = load_network(object_store.get_bytes(prefix + "config.json"), object_store.get_bytes(prefix + "model.safetensors"))

    # The same splits and windows, scored by the published network and by an untrained one.
    rows = [e.model_dump() for e in events]
    splits = split_recordings(recordings_from_rows(rows), 0.2, 0.2)
    spec = net.config.spec()
    dev, test = (build_windows(s, spec).labeled_scored() for s in (splits.dev, splits.test))
    cpu = torch.device("cpu")
    trained = binary_metrics(score_windows(net, test.x, cpu) >= card["anomaly"]["threshold"], test.y)
    torch.manual_seed(0)
    untrained_net = AnomalyNet(net.config)
    threshold, _ = choose_threshold(score_windows(untrained_net, dev.x, cpu), dev.y, 0.1)
    untrained = binary_metrics(score_windows(untrained_net, test.x, cpu) >= threshold, test.y)
    assert trained["f1"] == card["metrics"]["test"]["f1"]
    assert trained["f1"] >= 0.7 and trained["f1"] > untrained["f1"] + 0.3, (trained, untrained)
