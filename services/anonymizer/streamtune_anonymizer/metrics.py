"""Prometheus metrics of the anonymizer: fixed labels, never a value from an event."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS = Counter("streamtune_anonymizer_events_total",
                 "events.valid entries handled, by outcome (anonymized, duplicate, dead_lettered)", ["outcome"])
REDACTIONS = Counter("streamtune_anonymizer_redactions_total", "PII values replaced in text, by type", ["pii_type"])
SHARDS_WRITTEN = Counter("streamtune_anonymizer_shards_written_total", "Dataset shards stored and announced")
SHARD_ROWS = Counter("streamtune_anonymizer_shard_rows_total", "Rows written to dataset shards")
SHARD_ENTRIES = Counter("streamtune_anonymizer_shard_entries_total",
                        "events.clean entries seen by the shard writer, by outcome "
                        "(buffered, unlabeled, redelivered, dead_lettered, held_back)", ["outcome"])
SHARD_FLUSH_FAILURES = Counter("streamtune_anonymizer_shard_flush_failures_total",
                               "Shard flushes that failed (store or Redis down) and will be retried")
BUFFERED_ROWS = Gauge("streamtune_anonymizer_shard_buffered_rows", "Rows buffered and not yet in a stored shard")
DP_EPSILON_SPENT = Gauge("streamtune_anonymizer_dp_epsilon_spent",
                         "Epsilon a device (pseudonym) spent in a dataset's current budget window, as last seen here; "
                         "the first ANONYMIZER_DP_METRIC_DEVICES devices only", ["dataset", "device"])
DP_READINGS = Counter("streamtune_anonymizer_dp_readings_total",
                      "Readings of DP datasets, by outcome (noised, suppressed_budget, suppressed_no_bounds)",
                      ["outcome"])
K_ANONYMITY_SUPPRESSED = Counter("streamtune_anonymizer_k_anonymity_suppressed_rows_total",
                                 "Rows left out of shards because their class stayed smaller than k")
PII_MODEL_INFO = Gauge("streamtune_anonymizer_pii_model_info", "1 for the version of the PII model in use",
                       ["version"])
PII_MODEL_LOADS = Counter("streamtune_anonymizer_pii_model_loads_total", "PII model version loads, by outcome",
                          ["outcome"])  # loaded | rejected
DETECTION_FAILURES = Counter("streamtune_anonymizer_detection_failures_total",
                             "Texts whose PII detection failed (the event is dead-lettered, never passed on)")
