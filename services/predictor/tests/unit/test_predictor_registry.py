"""The registry: configured models, what serves, and swaps that leave running batches alone."""

from __future__ import annotations

from streamtune_predictor.config import PredictorSettings
from streamtune_predictor.registry import ModelRegistry, ServingModel
from streamtune_shared.settings import InfraSettings


def _serving(name: str, version: str) -> ServingModel:
    return ServingModel(name=name, version=version, task="token-classification", predict=lambda texts: [])


def test_ready_only_when_every_configured_model_is_loaded():
    registry = ModelRegistry({"clinical-notes": "disease-ner", "pump": "fault-cls"}, {})
    assert registry.missing() == ["disease-ner", "fault-cls"] and not registry.ready()
    registry.install(_serving("disease-ner", "v1"))
    assert registry.missing() == ["fault-cls"] and not registry.ready()
    registry.install(_serving("fault-cls", "v1"))
    assert registry.ready()
    assert registry.model_for("clinical-notes") == "disease-ner"
    assert registry.model_for("unknown") is None


def test_a_snapshot_keeps_the_versions_it_was_taken_with():
    registry = ModelRegistry({"clinical-notes": "disease-ner"}, {})
    registry.install(_serving("disease-ner", "v1"))
    batch_view = registry.snapshot()
    previous = registry.install(_serving("disease-ner", "v2"))
    assert previous is not None and previous.version == "v1"
    assert batch_view["disease-ner"].version == "v1"
    assert registry.get("disease-ner").version == "v2"


def test_settings_read_the_model_maps_as_json(monkeypatch):
    monkeypatch.setenv("PREDICTOR_MODELS", '{"clinical-notes": "disease-ner"}')
    monkeypatch.setenv("PREDICTOR_PINNED", '{"disease-ner": "20261128T120000Z-ab12cd34"}')
    monkeypatch.setenv("PREDICTOR_BATCH_SIZE", "16")
    settings = PredictorSettings(infra=InfraSettings(s3_access_key="k", s3_secret_key="s"))
    assert settings.models == {"clinical-notes": "disease-ner"}
    assert settings.pinned == {"disease-ner": "20261128T120000Z-ab12cd34"}
    assert (settings.batch_size, settings.max_wait_ms, settings.http_port) == (16, 50, 8084)
