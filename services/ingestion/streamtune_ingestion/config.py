"""Ingestion settings, read from ``INGESTION_*`` (and ``STREAMTUNE_*`` for the shared infrastructure)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from streamtune_shared.settings import InfraSettings

from .catalogue import CatalogueError, parse_catalogue
from .domain import IngestionPolicy


class IngestionSettings(BaseSettings):
    """Everything the ingestion service can be told; the environment is read only in ``__main__``."""

    model_config = SettingsConfigDict(env_prefix="INGESTION_", extra="ignore")

    infra: InfraSettings = Field(default_factory=InfraSettings)
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8081, ge=1, le=65535)

    batch_size: int = Field(default=512, ge=1, le=10_000, description="Entries read per XREADGROUP (max_records).")
    block_ms: int = Field(default=200, ge=1, description="How long one read waits for new entries.")
    claim_idle_ms: int = Field(default=30_000, ge=0, description="Pending this long, an entry is reclaimed.")
    max_deliveries: int = Field(default=5, ge=1, description="Deliveries before an entry goes to events.dlq.")
    dedupe_ttl_s: int = Field(default=86_400, ge=1, description="How long an event_id is remembered.")
    max_payload_bytes: int = Field(default=64 * 1024, ge=1, description="Largest accepted payload.")
    max_future_skew_s: int = Field(default=300, ge=0, description="How far ahead of our clock a ts may be.")
    max_age_s: int = Field(default=30 * 86_400, ge=1, description="How old a ts may be.")
    sensor_limits: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description='Inclusive [low, high] per sensor name (exact, case-sensitive), e.g. {"pressure": [0, 16]}.',
    )
    sensor_catalogue: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='Per dataset, per sensor: unit, inclusive range (in that unit) and accepted input units, e.g. '
                    '{"pump-sensors": {"Temperature": {"unit": "degC", "range": [-20, 150], "accepts": ["degF"]}}}.',
    )
    dataset_max_age_s: dict[str, int] = Field(
        default_factory=dict,
        description='Per-dataset max age of ts, for replays of recorded data, e.g. {"pump-sensors": 315360000}.',
    )
    device_stats: bool = Field(default=True, description="Keep running per-device, per-sensor statistics in Redis.")
    http_max_items: int = Field(default=1000, ge=1, description="Most events in one POST /events body.")
    http_max_body_bytes: int = Field(default=1024 * 1024, ge=1, description="Largest POST /events body.")

    @field_validator("sensor_limits")
    @classmethod
    def _limits_are_ordered(cls, limits: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for sensor, (low, high) in limits.items():
            if not low <= high:
                raise ValueError(f"sensor {sensor!r}: low {low} is above high {high}")
        return limits

    @field_validator("sensor_catalogue")
    @classmethod
    def _catalogue_is_usable(cls, document: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        try:
            parse_catalogue(document)
        except (CatalogueError, TypeError, ValueError) as exc:
            raise ValueError(f"sensor_catalogue: {exc}") from None
        return document

    @field_validator("dataset_max_age_s")
    @classmethod
    def _max_ages_are_positive(cls, ages: dict[str, int]) -> dict[str, int]:
        bad = [dataset for dataset, age in ages.items() if age < 1]
        if bad:
            raise ValueError(f"max age must be at least 1 s (datasets {', '.join(bad)})")
        return ages

    def policy(self) -> IngestionPolicy:
        """The validation and cleaning rules these settings describe."""
        return IngestionPolicy(
            max_payload_bytes=self.max_payload_bytes,
            max_future_skew_s=self.max_future_skew_s,
            max_age_s=self.max_age_s,
            sensor_limits=dict(self.sensor_limits),
            catalogues=parse_catalogue(self.sensor_catalogue),
            dataset_max_age_s=dict(self.dataset_max_age_s),
        )
