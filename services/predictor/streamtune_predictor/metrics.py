"""Prometheus metrics of the predictor; labels are model names, versions and fixed outcomes only."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PREDICTIONS = Counter("streamtune_predictor_predictions_total", "Predictions published, by model version and rollout role",
                      ["model", "version", "role"])  # role: primary | canary | shadow
EVENTS = Counter("streamtune_predictor_events_total", "Clean events handled, by outcome",
                 ["outcome"])  # predicted | skipped | dead_lettered
HTTP_TEXTS = Counter("streamtune_predictor_http_texts_total", "Texts predicted through POST /predict", ["model"])
BATCH_SIZE = Histogram("streamtune_predictor_batch_size", "Entries per micro-batch read from events.clean",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
LATENCY = Histogram("streamtune_predictor_latency_seconds", "From reading a batch to publishing its predictions",
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
MODEL_INFO = Gauge("streamtune_predictor_model_info", "1 for the primary version serving each dataset",
                   ["dataset", "model", "version"])
RELOADS = Counter("streamtune_predictor_reloads_total", "Model version loads, by outcome",
                  ["outcome"])  # loaded | rejected
SHADOW_COMPARED = Counter("streamtune_predictor_shadow_compared_total",
                          "Events predicted by both the primary and a shadow version", ["dataset", "version"])
SHADOW_AGREEMENT = Counter("streamtune_predictor_shadow_agreement_sum",
                           "Sum over compared events of the shadow's agreement with the primary (label match, or "
                           "entity-span F1): divide by streamtune_predictor_shadow_compared_total for the mean",
                           ["dataset", "version"])


def serving_changed(dataset: str, model: str, version: str | None, previous: str | None) -> None:
    """Point the version info gauge of a dataset at its new primary."""
    if previous is not None and previous != version:
        try:
            MODEL_INFO.remove(dataset, model, previous)
        except KeyError:
            pass  # another app instance in this process already removed it
    if version is not None:
        MODEL_INFO.labels(dataset, model, version).set(1)


def _expose_zeros() -> None:
    # Outcomes show as 0 from the start, so dashboards and alerts see the series before the first event.
    for outcome in ("loaded", "rejected"):
        RELOADS.labels(outcome)
    for outcome in ("predicted", "skipped", "dead_lettered"):
        EVENTS.labels(outcome)


_expose_zeros()
