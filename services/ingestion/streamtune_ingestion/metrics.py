"""Prometheus metrics of the ingestion service: fixed labels, never event content."""

from __future__ import annotations

from prometheus_client import Counter

EVENTS = Counter("streamtune_ingestion_events", "Stream entries by outcome", ["outcome"])
READINGS_DROPPED = Counter("streamtune_ingestion_readings_dropped", "Readings dropped while cleaning", ["reason"])
REJECTIONS = Counter("streamtune_ingestion_rejections", "Rejected inputs by kind of problem", ["source", "code"])
HTTP_ITEMS = Counter("streamtune_ingestion_http_items", "POST /events items by status", ["status"])
STATS_FAILURES = Counter("streamtune_ingestion_device_stats_failures", "Batches whose device statistics update failed")
