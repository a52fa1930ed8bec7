"""The data phase of ``sensor-anomaly``: rows -> one recording per device -> calibrated windows, split by device.

    recordings = recordings_from_rows(rows)                    # per device, ordered by ts, labels 0/1 or -1
    splits = split_recordings(recordings, dev_fraction=0.2, test_fraction=0.2)
    folds = cross_fit_splits(splits, folds=5)                  # the dev split and 4 more held-out groups of train
    data = build_windows(splits.train, spec, stride=1)         # WindowSet: x (m, W, S), y, scored

A window is ``spec.window`` consecutive events of one device; its label is its last event's label. Each
device is normalized by its own first ``spec.calibration_events`` events; only windows ending after that
period are scored (SKAB's protocol). Splits are whole devices: windows overlap, so a window split leaks.
Pure: numpy only.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from streamtune_shared.sensor_windows import Calibration, WindowSpec, reading_matrix, sliding_windows

from .domain import TrainingRejected

UNLABELED = -1


@dataclass(frozen=True)
class Recording:
    """One device's events in ts order: readings, labels (0/1, or -1 where an event has none)."""

    device_id: str
    readings: tuple[Mapping[str, float | None], ...]
    labels: np.ndarray

    @property
    def labeled(self) -> bool:
        """Whether any event of the recording has a label (the anomaly-free run may have none)."""
        return bool((self.labels != UNLABELED).any())


@dataclass(frozen=True)
class RecordingSplits:
    """Whole recordings per split; unlabeled recordings only ever feed pretraining (train)."""

    train: tuple[Recording, ...]
    dev: tuple[Recording, ...]
    test: tuple[Recording, ...]

    def sizes(self) -> dict[str, int]:
        """Events per split (the card's lineage rows)."""
        return {name: sum(len(r.labels) for r in getattr(self, name)) for name in ("train", "dev", "test")}


@dataclass(frozen=True)
class WindowSet:
    """Windows (m, W, S) float32, their labels (m,) and whether each is scored (ends after calibration)."""

    x: np.ndarray
    y: np.ndarray
    scored: np.ndarray

    def labeled_scored(self) -> WindowSet:
        """Only the windows that have a label and end after calibration (what metrics count)."""
        keep = self.scored & (self.y != UNLABELED)
        return WindowSet(self.x[keep], self.y[keep], self.scored[keep])


def anomaly_label(value: Any) -> int:
    """0/1 from an event's label (0, 1, '0', '1', 'normal', 'anomaly'); -1 when it has none."""
    if value is None:
        return UNLABELED
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    text = str(value).strip().lower()
    if text in ("0", "1", "0.0", "1.0"):
        return int(float(text))
    if text in ("normal", "anomaly"):
        return int(text == "anomaly")
    raise TrainingRejected("a sensor-anomaly label must be 0 or 1 (or 'normal' / 'anomaly')")


def recordings_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[Recording]:
    """One recording per device of the rows that carry readings, each ordered by (ts, event_id)."""
    by_device: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("readings"):
            by_device[str(row["device_id"])].append(row)
    recordings = []
    for device_id in sorted(by_device):
        events = sorted(by_device[device_id], key=lambda r: (_ts(r["ts"]), str(r["event_id"])))
        labels = np.array([anomaly_label(r.get("label")) for r in events], dtype=np.int64)
        recordings.append(Recording(device_id, tuple(r["readings"] for r in events), labels))
    return recordings


def _ts(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else datetime.fromisoformat(str(value)).timestamp()


def sensors_of(recordings: Iterable[Recording]) -> tuple[str, ...]:
    """Every sensor any event of the recordings has, sorted (the model's input order)."""
    return tuple(sorted({s for r in recordings for readings in r.readings for s in readings}))


def split_recordings(recordings: Sequence[Recording], dev_fraction: float, test_fraction: float) -> RecordingSplits:
    """Deterministic split of whole labeled recordings by a hash of the device id; at least one per split."""
    labeled = sorted((r for r in recordings if r.labeled), key=lambda r: _rank(r.device_id))
    if len(labeled) < 3:
        raise TrainingRejected(f"sensor-anomaly needs labeled recordings of at least 3 devices, got {len(labeled)}")
    n_test = max(1, round(len(labeled) * test_fraction))
    n_dev = max(1, round(len(labeled) * dev_fraction))
    if n_test + n_dev >= len(labeled):
        n_test, n_dev = 1, 1
    unlabeled = tuple(r for r in recordings if not r.labeled)
    return RecordingSplits(train=tuple(labeled[n_test + n_dev:]) + unlabeled,
                           dev=tuple(labeled[n_test:n_test + n_dev]), test=tuple(labeled[:n_test]))


def cross_fit_splits(splits: RecordingSplits, folds: int) -> list[RecordingSplits]:
    """The ``folds - 1`` other folds of a cross-fitted threshold (``splits`` itself is the first): the labeled train
    recordings dealt in turn into held-out groups, each group a dev split with every other recording to train on.

    Whole recordings, deterministic (the train split's order), the test recordings never held out nor trained on.
    """
    labeled = [r for r in splits.train if r.labeled]
    unlabeled = tuple(r for r in splits.train if not r.labeled)
    groups = [range(i, len(labeled), folds - 1) for i in range(min(folds - 1, len(labeled)))]
    return [RecordingSplits(train=tuple(r for j, r in enumerate(labeled) if j not in group) + splits.dev + unlabeled,
                            dev=tuple(labeled[j] for j in group), test=splits.test) for group in groups]


def _rank(device_id: str) -> str:
    return hashlib.sha256(device_id.encode()).hexdigest()


def recording_windows(recording: Recording, spec: WindowSpec, stride: int = 1) -> WindowSet:
    """The recording's windows normalized by its own calibration period, every ``stride``-th end."""
    rows = reading_matrix(recording.readings, spec.sensors)
    x = Calibration.of(rows[:spec.calibration_events]).normalize(rows, spec.clip)
    windows = sliding_windows(x, spec.window, stride)
    ends = np.arange(0, len(rows), stride)
    return WindowSet(windows, recording.labels[ends], ends >= spec.calibration_events)


def build_windows(recordings: Iterable[Recording], spec: WindowSpec, stride: int = 1) -> WindowSet:
    """Every recording's windows, concatenated."""
    sets = [recording_windows(r, spec, stride) for r in recordings]
    if not sets:
        return WindowSet(np.zeros((0, spec.window, len(spec.sensors)), np.float32), np.zeros(0, np.int64),
                         np.zeros(0, bool))
    return WindowSet(np.concatenate([s.x for s in sets]), np.concatenate([s.y for s in sets]),
                     np.concatenate([s.scored for s in sets]))
