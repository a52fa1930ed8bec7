"""Trainer settings, read from ``TRAINER_*`` (infrastructure from ``STREAMTUNE_*``)."""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from streamtune_shared.settings import InfraSettings


class TrainerSettings(BaseSettings):
    """How the trainer consumes requests, where it stores checkpoints and models, how it trains."""

    model_config = SettingsConfigDict(env_prefix="TRAINER_", extra="ignore")

    infra: InfraSettings = Field(default_factory=InfraSettings)
    http_host: str = "0.0.0.0"
    http_port: int = 8083
    claim_idle_ms: int = Field(
        default=60_000, ge=100,
        description="A request idle this long is taken over by another trainer; live runs heartbeat at a quarter of it.",
    )
    max_deliveries: int = Field(default=3, ge=1, description="Deliveries of one request before it is dead-lettered.")
    checkpoint_prefix: str = Field(default="checkpoints/", description="Object-store prefix of per-epoch checkpoints.")
    num_threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1,
                             description="torch intra-op threads.")
    status_interval_s: float = Field(default=2.0, ge=0, description="At most one 'running' status per interval.")
