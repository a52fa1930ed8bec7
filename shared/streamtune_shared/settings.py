"""Settings every service shares: where Redis and the object store are, how to log."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class InfraSettings(BaseSettings):
    """Read from ``STREAMTUNE_*``; the object-store keys have no defaults on purpose."""

    model_config = SettingsConfigDict(env_prefix="STREAMTUNE_", extra="ignore")

    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    s3_endpoint: str = "127.0.0.1:8333"
    s3_access_key: SecretStr
    s3_secret_key: SecretStr
    s3_secure: bool = False
    s3_region: str | None = None
    s3_bucket: str = "streamtune"
    models_prefix: str = Field(
        default="models/", pattern=r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*/)+$",
        description="Object-store prefix of model versions; every service reads it (model_registry.RegistryLayout).")
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
