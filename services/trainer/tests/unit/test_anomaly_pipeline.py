"""The sensor-anomaly calibrate phase: with few dev recordings the threshold comes from every fold's held-out
scores, each scored by a network that never trained on it (networks and windows faked: the wiring is tested)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from streamtune_shared.sensor_windows import WindowSpec
from streamtune_trainer import anomaly_pipeline
from streamtune_trainer.anomaly_data import Recording, RecordingSplits, WindowSet
from streamtune_trainer.anomaly_training import AnomalyHyperparameters

SPEC = WindowSpec(sensors=("score", "device"), window=1, calibration_events=0)
CPU = torch.device("cpu")


def recording(device: int, normal: float, anomaly: float) -> Recording:
    """Ten events whose reading is the score the fake network gives them: 6 normal, then 4 anomalous."""
    scores = [normal] * 6 + [anomaly] * 4
    return Recording(f"d{device}", tuple({"score": s, "device": device} for s in scores), np.array([0] * 6 + [1] * 4))


def fake_windows(recordings, spec, stride=1) -> WindowSet:
    """One window per event holding its (score, device) readings."""
    recordings = list(recordings)
    rows = [[[r["score"], r["device"]]] for rec in recordings for r in rec.readings]
    x = np.array(rows, np.float32).reshape(-1, 1, 2)
    y = np.concatenate([rec.labels for rec in recordings]) if recordings else np.zeros(0, np.int64)
    return WindowSet(x, y, np.ones(len(y), bool))


def network(trained_on: set[str]) -> SimpleNamespace:
    return SimpleNamespace(config=SimpleNamespace(spec=lambda: SPEC), trained_on=trained_on)


@pytest.fixture
def fakes(monkeypatch):
    trained: list[RecordingSplits] = []

    def train_network(hp, sensors, splits, ctx, device, augmentation=None, report=True):
        assert not report  # a fold's epochs are not the run's progress
        trained.append(splits)
        return network({r.device_id for r in splits.train}), None

    def score_windows(net, x, device):
        assert not {f"d{int(d)}" for d in x[:, -1, 1]} & net.trained_on  # held-out scores only
        return x[:, -1, 0].astype(np.float64)

    monkeypatch.setattr(anomaly_pipeline, "build_windows", fake_windows)
    monkeypatch.setattr(anomaly_pipeline, "score_windows", score_windows)
    monkeypatch.setattr(anomaly_pipeline, "train_network", train_network)
    return trained


def test_one_dev_recording_does_not_set_the_threshold_alone(fakes):
    # The dev recording's normals score 0.1 and its faults 0.4: alone it would pick 0.4, which flags every normal
    # event of the other recordings (0.5); pooled with their held-out scores the threshold is 0.9.
    dev = recording(0, normal=0.1, anomaly=0.4)
    others = tuple(recording(d, normal=0.5, anomaly=0.9) for d in range(1, 5))
    splits = RecordingSplits(train=others, dev=(dev,), test=(recording(9, 0.5, 0.9),))
    net = network({r.device_id for r in others})
    threshold, metrics = anomaly_pipeline.calibrate_threshold(AnomalyHyperparameters(), ("score", "device"), splits,
                                                              net, SimpleNamespace(should_stop=lambda: False), CPU)
    assert threshold == pytest.approx(0.9)
    assert metrics["far"] == 0.0 and metrics["recall"] == pytest.approx(16 / 20)
    assert sorted(r.device_id for fold in fakes for r in fold.dev) == ["d1", "d2", "d3", "d4"]
    assert all(fold.test == splits.test for fold in fakes)


def test_enough_dev_recordings_calibrate_on_dev_alone(fakes):
    dev = tuple(recording(d, normal=0.1, anomaly=0.4) for d in range(anomaly_pipeline.CALIBRATION_FOLDS))
    splits = RecordingSplits(train=(recording(7, 0.5, 0.9),), dev=dev, test=(recording(9, 0.5, 0.9),))
    threshold, _ = anomaly_pipeline.calibrate_threshold(AnomalyHyperparameters(), ("score", "device"), splits,
                                                        network({"d7"}), SimpleNamespace(should_stop=lambda: False),
                                                        CPU)
    assert threshold == pytest.approx(0.4) and fakes == []
