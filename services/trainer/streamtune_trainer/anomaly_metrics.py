"""Scoring anomaly decisions the SKAB way (F1, false-alarm rate, missed-alarm rate) and choosing the threshold.

    threshold, dev = choose_threshold(scores, labels, false_alarm_cap=0.10)   # best F1 with FAR <= 10 %
    test = binary_metrics(test_scores >= threshold, test_labels)

Pure numpy.
"""

from __future__ import annotations

import numpy as np

MAX_CANDIDATES = 512


def binary_metrics(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """F1, precision, recall, FAR (FP / negatives) and MAR (FN / positives) of 0/1 decisions, with counts."""
    predicted, labels = np.asarray(predicted, bool), np.asarray(labels) == 1
    tp = int((predicted & labels).sum())
    fp = int((predicted & ~labels).sum())
    fn = int((~predicted & labels).sum())
    tn = int((~predicted & ~labels).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall,
            "far": fp / (fp + tn) if fp + tn else 0.0, "mar": fn / (fn + tp) if fn + tp else 0.0,
            "tp": tp, "fp": fp, "fn": fn, "tn": tn, "support": int(labels.sum())}


def choose_threshold(scores: np.ndarray, labels: np.ndarray, false_alarm_cap: float) -> tuple[float, dict[str, float]]:
    """The score threshold with the best F1 among those whose FAR is at most the cap, and its metrics.

    When no candidate meets the cap, the one with the lowest FAR (then best F1) is taken.
    """
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels)
    if len(scores) == 0:
        return 0.5, binary_metrics(np.zeros(0, bool), np.zeros(0))
    candidates = np.unique(np.quantile(scores, np.linspace(0, 1, MAX_CANDIDATES), method="lower"))  # seen scores
    best: tuple[tuple[bool, float, float], float, dict[str, float]] | None = None
    for threshold in candidates:
        metrics = binary_metrics(scores >= threshold, labels)
        within = metrics["far"] <= false_alarm_cap
        key = (within, metrics["f1"] if within else -metrics["far"], metrics["f1"])
        if best is None or key > best[0]:
            best = (key, float(threshold), metrics)
    assert best is not None  # noqa: S101 - at least one candidate
    return best[1], best[2]
