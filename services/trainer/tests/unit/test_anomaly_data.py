"""sensor-anomaly data: windows of one device ending at each event, per-device calibration, splits by device,
and the threshold chosen under the false-alarm cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from streamtune_shared.sensor_windows import Calibration, WindowSpec, reading_matrix, sliding_windows
from streamtune_trainer.anomaly_data import (
    UNLABELED,
    anomaly_label,
    build_windows,
    cross_fit_splits,
    recordings_from_rows,
    sensors_of,
    split_recordings,
)
from streamtune_trainer.anomaly_metrics import binary_metrics, choose_threshold
from streamtune_trainer.domain import TrainingRejected

T0 = datetime(2020, 3, 9, tzinfo=UTC)


def rows_of(device: str, values: list[float], labels: list[int | None], shuffle: bool = False) -> list[dict]:
    rows = [{"event_id": f"{device}-{i}", "device_id": device, "ts": (T0 + timedelta(seconds=i)).isoformat(),
             "readings": {"P": v, "T": 2 * v}, "label": label} for i, (v, label) in enumerate(zip(values, labels))]
    return rows[::-1] if shuffle else rows


def test_a_window_holds_one_devices_consecutive_events_and_ends_at_its_labeled_event():
    x = np.arange(10, dtype=np.float32).reshape(5, 2)
    windows = sliding_windows(x, 3)
    assert windows.shape == (5, 3, 2)
    assert windows[4].tolist() == [[4, 5], [6, 7], [8, 9]]
    assert windows[0].tolist() == [[0, 1], [0, 1], [0, 1]]  # left-padded with the first event
    assert sliding_windows(x, 3, stride=2).shape == (3, 3, 2)


def test_events_arrive_in_any_order_and_are_windowed_in_ts_order_per_device():
    rows = rows_of("a", [1.0, 2.0, 3.0], [0, 0, 1], shuffle=True) + rows_of("b", [5.0], [0])
    recordings = recordings_from_rows(rows)
    assert [r.device_id for r in recordings] == ["a", "b"]
    assert [r["P"] for r in recordings[0].readings] == [1.0, 2.0, 3.0]
    assert recordings[0].labels.tolist() == [0, 0, 1]
    assert sensors_of(recordings) == ("P", "T")


def test_each_device_is_normalized_by_its_own_first_events():
    # Two devices with different normals: the same deviation from each one's normal gives the same z-score.
    spec = WindowSpec(sensors=("P", "T"), window=2, calibration_events=4)
    quiet = rows_of("a", [10, 11, 9, 10, 13], [0, 0, 0, 0, 1])
    loud = rows_of("b", [100, 110, 90, 100, 130], [0, 0, 0, 0, 1])
    windows = build_windows(recordings_from_rows(quiet + loud), spec)
    last_a, last_b = windows.x[4, -1], windows.x[9, -1]
    assert last_a[0] == pytest.approx(last_b[0]) == pytest.approx(3 / np.std([10, 11, 9, 10]))
    assert windows.scored.tolist() == [False] * 4 + [True] + [False] * 4 + [True]
    assert windows.y.tolist() == [0, 0, 0, 0, 1] * 2


def test_a_missing_reading_is_the_calibration_mean_and_a_flat_sensor_does_not_divide_by_zero():
    rows = reading_matrix([{"P": 1.0, "T": 5.0}, {"P": 3.0, "T": 5.0}, {"T": 5.0}, {"P": None, "T": 6.0}], ("P", "T"))
    z = Calibration.of(rows[:2]).normalize(rows, clip=10.0)
    assert z[2, 0] == 0.0 and z[3, 0] == 0.0
    assert z[3, 1] == 10.0  # T never moved during calibration: a change of 1 is clipped, not infinite


def test_running_sums_give_the_same_calibration_as_the_rows():
    rows = np.array([[1.0, 2.0], [3.0, 2.5], [8.0, 1.0]])
    direct = Calibration.of(rows)
    summed = Calibration.from_sums(3, rows.sum(0), (rows ** 2).sum(0))
    assert np.allclose(direct.mean, summed.mean) and np.allclose(direct.std, summed.std)


def test_splits_are_whole_devices_and_unlabeled_recordings_only_train():
    rows = [r for d in range(10) for r in rows_of(f"dev-{d}", [1.0] * 5, [0, 0, 0, 1, 1])]
    rows += rows_of("anomaly-free", [1.0] * 5, [None] * 5)
    splits = split_recordings(recordings_from_rows(rows), dev_fraction=0.2, test_fraction=0.2)
    names = {k: {r.device_id for r in getattr(splits, k)} for k in ("train", "dev", "test")}
    assert (len(names["dev"]), len(names["test"])) == (2, 2)
    assert not (names["train"] & names["dev"] or names["train"] & names["test"] or names["dev"] & names["test"])
    assert "anomaly-free" in names["train"]
    again = split_recordings(recordings_from_rows(rows[::-1]), 0.2, 0.2)
    assert {r.device_id for r in again.test} == names["test"]


def test_too_few_labeled_devices_are_refused():
    rows = rows_of("a", [1.0], [0]) + rows_of("b", [1.0], [1])
    with pytest.raises(TrainingRejected, match="at least 3 devices"):
        split_recordings(recordings_from_rows(rows), 0.1, 0.1)


@pytest.mark.parametrize("value, expected", [(0, 0), (1, 1), ("1", 1), ("0.0", 0), ("anomaly", 1), (None, UNLABELED)])
def test_labels_are_read_as_zero_or_one(value, expected):
    assert anomaly_label(value) == expected


def test_other_labels_are_refused():
    with pytest.raises(TrainingRejected):
        anomaly_label("broken")


def test_far_and_mar_count_false_and_missed_alarms():
    m = binary_metrics(np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 1, 1]))
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 1)
    assert m["far"] == 0.5 and m["mar"] == pytest.approx(1 / 3) and m["f1"] == pytest.approx(2 / 3)


def test_the_threshold_is_the_best_f1_that_keeps_false_alarms_under_the_cap():
    labels = np.array([0] * 10 + [1] * 10)
    # From 0.6 up: every anomaly and 3 false alarms (F1 0.87); from 0.9 up: half the anomalies, no false alarm.
    scores = np.array([0.1] * 7 + [0.6] * 2 + [0.8] + [0.6] * 5 + [0.9] * 5)
    loose, loose_metrics = choose_threshold(scores, labels, false_alarm_cap=0.5)
    strict, strict_metrics = choose_threshold(scores, labels, false_alarm_cap=0.1)
    assert loose == 0.6 and loose_metrics["recall"] == 1.0 and loose_metrics["far"] == pytest.approx(0.3)
    assert strict == 0.9 and strict_metrics["far"] == 0.0 and strict_metrics["f1"] == pytest.approx(2 / 3)


def test_cross_fit_folds_hold_out_each_labeled_train_recording_once_and_never_touch_test():
    rows = [r for d in range(8) for r in rows_of(f"dev-{d}", [1.0] * 5, [0, 0, 0, 1, 1])]
    rows += rows_of("anomaly-free", [1.0] * 5, [None] * 5)
    splits = split_recordings(recordings_from_rows(rows), dev_fraction=0.1, test_fraction=0.1)
    folds = cross_fit_splits(splits, folds=5)
    names = lambda recordings: [r.device_id for r in recordings]  # noqa: E731
    labeled_train = [r.device_id for r in splits.train if r.labeled]
    assert len(folds) == 4 and len(labeled_train) == 6
    held = [name for fold in folds for name in names(fold.dev)]
    assert sorted(held) == sorted(labeled_train)  # each once: together with the dev split, every fitting recording
    for fold in folds:
        assert names(fold.test) == names(splits.test)
        assert not set(names(fold.dev)) & set(names(fold.train))
        assert set(names(fold.train)) | set(names(fold.dev)) == set(names(splits.train)) | set(names(splits.dev))
        assert "anomaly-free" in names(fold.train)
    assert [names(f.dev) for f in cross_fit_splits(splits, 5)] == [names(f.dev) for f in folds]  # deterministic


def test_cross_fit_folds_are_at_most_one_per_labeled_train_recording():
    rows = [r for d in range(4) for r in rows_of(f"dev-{d}", [1.0] * 5, [0, 0, 0, 1, 1])]
    splits = split_recordings(recordings_from_rows(rows), 0.1, 0.1)
    assert [len(f.dev) for f in cross_fit_splits(splits, folds=5)] == [1, 1]
    assert cross_fit_splits(splits, folds=1) == []
