"""Serving a sensor-anomaly version: each event's window, normalized by its device's calibration, scored in one batch.

    model = AnomalyModel(net, threshold=0.42)
    outputs = model.outputs(views)   # one PredictionOutputs per event view: score, decision, threshold, calibrating

While a device is inside its calibration period its events get ``calibrating: true``, ``is_anomaly: false``
and score 0: the device's normal is not known yet.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from streamtune_shared.anomaly_net import AnomalyNet
from streamtune_shared.schemas import PredictionOutputs
from streamtune_shared.sensor_windows import Calibration, reading_matrix, sliding_windows

from .device_windows import EventView

SCORE_DIGITS = 6
VECTOR_CACHE_ROWS = 50_000


def calibration_of(sums: Mapping[str, float], sensors: Sequence[str]) -> Calibration:
    """The calibration from the stored sums (``n``, ``s|<sensor>``, ``q|<sensor>``, ``c|<sensor>``)."""
    n = sums.get("n", 0.0)
    pick = lambda prefix: np.array([sums.get(prefix + s, 0.0) for s in sensors])  # noqa: E731
    return Calibration.from_sums(n, pick("s|"), pick("q|"), pick("c|"))


class AnomalyModel:
    """A loaded sensor-anomaly network and the card's threshold."""

    def __init__(self, net: AnomalyNet, threshold: float, batch_size: int = 1024) -> None:
        self.net = net.eval()
        self.threshold = threshold
        self.batch_size = batch_size
        self.spec = net.config.spec()
        self._vectors: dict[int, tuple[Mapping[str, float], np.ndarray]] = {}
        self._lock = threading.Lock()  # one forward at a time: torch already uses every core

    def windows(self, views: Sequence[EventView]) -> np.ndarray:
        """The views' windows, (m, window, sensors) float32; a row or calibration shared by views is converted once."""
        sensors, spec = self.spec.sensors, self.spec
        index: dict[int, int] = {}  # row -> its line in `matrix`, by id(): every view holds its rows meanwhile
        lines: list[np.ndarray] = []
        for view in views:
            for row in view.rows:
                if id(row) not in index:
                    index[id(row)] = len(lines)
                    lines.append(self._vector(row))
        matrix = np.stack(lines) if lines else np.zeros((0, len(sensors)))
        calibrations: dict[int, Calibration] = {}
        out = np.empty((len(views), spec.window, len(sensors)), dtype=np.float32)
        for k, view in enumerate(views):
            if (calibration := calibrations.get(id(view.calibration))) is None:
                calibration = calibrations[id(view.calibration)] = calibration_of(view.calibration, sensors)
            x = calibration.normalize(matrix[[index[id(row)] for row in view.rows]], spec.clip)
            out[k] = sliding_windows(x, spec.window, start=len(x) - 1)[0]
        return out

    def _vector(self, row: Mapping[str, float]) -> np.ndarray:
        """A row's readings in sensor order, remembered with the row: the device window stores hand the same row
        object to every batch that windows it (``RowCache``), so each event is converted once."""
        found = self._vectors.get(id(row))
        if found is None:  # the cache holds the row itself, so its id cannot be reused while it is cached
            if len(self._vectors) >= VECTOR_CACHE_ROWS:
                self._vectors.clear()
            found = self._vectors[id(row)] = (row, reading_matrix([row], self.spec.sensors)[0])
        return found[1]

    def scores(self, windows: np.ndarray) -> np.ndarray:
        """Anomaly probabilities of windows (m, window, sensors); blocking."""
        out = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(windows), self.batch_size):
                logits = self.net(torch.from_numpy(windows[start:start + self.batch_size]))
                out.append(torch.sigmoid(logits.float()).numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def outputs(self, views: Sequence[EventView]) -> list[PredictionOutputs]:
        """One output per view, in order; blocking (call it through ``asyncio.to_thread``)."""
        scored = [i for i, v in enumerate(views) if not v.calibrating and v.rows]
        scores = self.scores(self.windows([views[i] for i in scored])) if scored else np.zeros(0)
        by_index = dict(zip(scored, scores.tolist(), strict=True))
        results = []
        for i in range(len(views)):
            score = by_index.get(i)
            results.append(PredictionOutputs(
                anomaly_score=round(score, SCORE_DIGITS) if score is not None else 0.0,
                is_anomaly=score is not None and score >= self.threshold,
                threshold=self.threshold, calibrating=score is None))
        return results
