"""A service's main refuses invalid settings with one line per field and never prints a value."""

from __future__ import annotations

import pytest
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from streamtune_shared.settings import InfraSettings
from streamtune_shared.web import run_service


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_")

    infra: InfraSettings = Field(default_factory=lambda: InfraSettings(s3_access_key="a", s3_secret_key="b"))
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    key: SecretStr = Field(min_length=32)


def test_invalid_settings_stop_the_process_naming_fields_without_values(monkeypatch):
    monkeypatch.setenv("DEMO_KEY", "sw0rdfish-too-short")
    monkeypatch.setenv("DEMO_HTTP_PORT", "99999")

    def never_built(_: _Settings):
        raise AssertionError("no app is built from invalid settings")

    with pytest.raises(SystemExit) as stopped:
        run_service("demo", _Settings, never_built)
    message = str(stopped.value.code)
    assert message.startswith("demo: refusing to start, invalid settings:")
    assert "  key: " in message and "  http_port: " in message
    assert "sw0rdfish" not in message and "99999" not in message
