"""Predictor settings, read from ``PREDICTOR_*`` (JSON for the maps) plus the shared ``STREAMTUNE_*``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from streamtune_shared.batching import DEFAULT_TOKENS_PER_FORWARD
from streamtune_shared.schemas import DatasetName, ModelName
from streamtune_shared.settings import InfraSettings


class PredictorSettings(BaseSettings):
    """Which model serves which dataset, micro-batching, delivery policy and the HTTP endpoint."""

    model_config = SettingsConfigDict(env_prefix="PREDICTOR_", extra="ignore")

    infra: InfraSettings = Field(default_factory=InfraSettings)
    models: dict[DatasetName, ModelName] = Field(
        default_factory=dict, description='dataset -> model name, e.g. {"clinical-notes": "disease-ner"}')
    pinned: dict[ModelName, str] = Field(
        default_factory=dict, description="model name -> version; a pinned model is never hot-reloaded")
    batch_size: int = Field(default=64, ge=1, le=1024, description="Most events per micro-batch and per forward pass")
    tokens_per_forward: int | None = Field(
        default=DEFAULT_TOKENS_PER_FORWARD, ge=16, le=65_536,
        description="Padded tokens per forward of a text model: texts are grouped shortest first until the next "
                    "would pass this (None: batch_size texts a forward). A forward that stays in the CPU's cache "
                    "is faster than a wide one.")
    max_wait_ms: int = Field(default=50, ge=1, le=60_000, description="Longest wait for a micro-batch to fill")
    claim_idle_ms: int = Field(default=60_000, ge=100, description="Idle time after which another worker reclaims")
    max_deliveries: int = Field(default=5, ge=1, description="Deliveries before an entry goes to events.dlq")
    max_length: int = Field(default=256, ge=8, le=512, description="Tokens per text; longer texts are truncated")
    num_threads: int | None = Field(default=None, ge=1, description="torch intra-op threads (default: torch's)")
    rescan_s: float = Field(default=10.0, gt=0, description="How often models still missing are looked for")
    announce_block_ms: int = Field(default=1_000, ge=10, description="XREAD BLOCK on models.published")
    http_host: str = "0.0.0.0"
    http_port: int = 8084
