"""Ingestion test fixtures: the committed example events with their timestamps moved to just before now."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures"


def _recent(name: str, now: datetime) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]
    for age_s, event in zip(range(len(events), 0, -1), events, strict=True):
        event["ts"] = (now - timedelta(seconds=age_s)).isoformat()
    return events


@pytest.fixture
def now() -> datetime:
    """The ingestion clock of a test."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def pump_events(now: datetime) -> list[dict[str, Any]]:
    """300 SKAB pump events (8 readings, label 0/1), all within the last five minutes."""
    return _recent("pump_events.jsonl", now)


@pytest.fixture
def clinical_events(now: datetime) -> list[dict[str, Any]]:
    """400 NCBI-disease notes (text + BIO tags), all within the last seven minutes."""
    return _recent("clinical_notes.jsonl", now)


@pytest.fixture
def settings():
    """Ingestion settings for tests with fakes: limits for 'temp' and 'pressure', no server behind the infra."""
    from streamtune_ingestion.config import IngestionSettings
    from streamtune_shared.settings import InfraSettings

    infra = InfraSettings(s3_access_key="unused", s3_secret_key="unused")
    return IngestionSettings(infra=infra, sensor_limits={"temp": (-50, 200), "pressure": (0, 16)},
                             http_max_items=50, http_max_body_bytes=64 * 1024)
