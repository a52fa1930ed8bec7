"""Ingestion settings from the environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from streamtune_ingestion.config import IngestionSettings


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("STREAMTUNE_S3_ACCESS_KEY", "k")
    monkeypatch.setenv("STREAMTUNE_S3_SECRET_KEY", "s")
    return monkeypatch


def test_defaults(env):
    settings = IngestionSettings()
    assert (settings.http_port, settings.batch_size, settings.dedupe_ttl_s) == (8081, 512, 86_400)
    assert (settings.max_payload_bytes, settings.max_future_skew_s, settings.max_age_s) == (65_536, 300, 2_592_000)
    assert settings.sensor_limits == {}


def test_sensor_limits_are_read_as_json_and_reach_the_policy(env):
    env.setenv("INGESTION_SENSOR_LIMITS", '{"pressure": [0, 16], "temp": [-50, 200]}')
    env.setenv("INGESTION_MAX_AGE_S", "3600")
    policy = IngestionSettings().policy()
    assert policy.sensor_limits == {"pressure": (0.0, 16.0), "temp": (-50.0, 200.0)}
    assert policy.max_age_s == 3600


@pytest.mark.parametrize("limits", ['{"temp": [200, -50]}', '{"temp": [1]}', '{"temp": "hot"}'])
def test_nonsensical_sensor_limits_are_refused_at_startup(env, limits):
    env.setenv("INGESTION_SENSOR_LIMITS", limits)
    with pytest.raises(ValidationError, match="sensor_limits"):
        IngestionSettings()


def test_object_store_keys_have_no_defaults(monkeypatch):
    monkeypatch.delenv("STREAMTUNE_S3_ACCESS_KEY", raising=False)
    monkeypatch.delenv("STREAMTUNE_S3_SECRET_KEY", raising=False)
    with pytest.raises(ValidationError):
        IngestionSettings()


def test_the_sensor_catalogue_and_replay_ages_are_read_as_json(env):
    env.setenv("INGESTION_SENSOR_CATALOGUE",
               '{"pump-sensors": {"Temperature": {"unit": "degC", "range": [-20, 150], "accepts": ["degF"]}}}')
    env.setenv("INGESTION_DATASET_MAX_AGE_S", '{"pump-sensors": 315360000}')
    policy = IngestionSettings().policy()
    assert policy.catalogues["pump-sensors"].sensors["Temperature"].valid_range == (-20.0, 150.0)
    assert policy.max_age_for("pump-sensors") == 315_360_000
    assert policy.max_age_for("clinical-notes") == 2_592_000


@pytest.mark.parametrize("name, value", [
    ("INGESTION_SENSOR_CATALOGUE", '{"d": {"T": {"unit": "degC", "accepts": ["bar"]}}}'),
    ("INGESTION_DATASET_MAX_AGE_S", '{"d": 0}'),
])
def test_an_unusable_catalogue_or_age_is_refused_at_startup(env, name, value):
    env.setenv(name, value)
    with pytest.raises(ValidationError):
        IngestionSettings()
