"""The registry: configured models, what serves, and swaps that leave running batches alone."""

from __future__ import annotations

from datetime import UTC, datetime

from streamtune_predictor.config import PredictorSettings
from streamtune_predictor.registry import ModelRegistry, Route, ServingModel
from streamtune_shared.rollout import Canary, ServingState
from streamtune_shared.settings import InfraSettings


NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _serving(name: str, version: str) -> ServingModel:
    return ServingModel(name=name, version=version, task="token-classification", predict=lambda texts: [])


def _route(dataset: str, model: str, version: str | None, canary: str | None = None, share: float = 0.5) -> Route:
    state = ServingState(dataset=dataset, model=model, version=version, updated_at=NOW,
                         canary=Canary(version=canary, share=share) if canary else None)
    return Route(state=state, primary=_serving(model, version) if version else None,
                 canary=_serving(model, canary) if canary else None)


def test_ready_only_when_every_seeded_dataset_has_its_primary_loaded():
    registry = ModelRegistry({"clinical-notes": "disease-ner", "pump": "fault-cls"}, {})
    assert registry.missing() == ["clinical-notes", "pump"] and not registry.ready()
    registry.install(_route("clinical-notes", "disease-ner", "v1"))
    registry.install(_route("pump", "fault-cls", None))  # a state, but no version exists yet
    assert registry.missing() == ["pump"] and not registry.ready()
    registry.install(_route("pump", "fault-cls", "v1"))
    assert registry.ready()
    assert registry.serves("clinical-notes") and not registry.serves("unknown")
    registry.install(_route("added-at-run-time", "fault-cls", "v1"))
    assert registry.serves("added-at-run-time") and registry.by_model("fault-cls").version == "v1"


def test_a_snapshot_keeps_the_versions_it_was_taken_with():
    registry = ModelRegistry({"clinical-notes": "disease-ner"}, {})
    registry.install(_route("clinical-notes", "disease-ner", "v1"))
    batch_view = registry.snapshot()
    previous = registry.install(_route("clinical-notes", "disease-ner", "v2"))
    assert previous is not None and previous.primary.version == "v1"
    assert batch_view["clinical-notes"].primary.version == "v1"
    assert registry.route("clinical-notes").primary.version == "v2"


def test_a_canary_takes_a_stable_share_of_events_by_id():
    route = _route("clinical-notes", "disease-ner", "v1", canary="v2", share=0.3)
    roles = [route.model_for(f"event-{i}")[1] for i in range(2000)]
    assert 0.25 < roles.count("canary") / len(roles) < 0.35
    assert [route.model_for(f"event-{i}")[1] for i in range(2000)] == roles  # the same side every time
    versions = {route.model_for(f"event-{i}")[0].version for i in range(2000)}
    assert versions == {"v1", "v2"}


def test_settings_read_the_model_maps_as_json(monkeypatch):
    monkeypatch.setenv("PREDICTOR_MODELS", '{"clinical-notes": "disease-ner"}')
    monkeypatch.setenv("PREDICTOR_PINNED", '{"disease-ner": "20261128T120000Z-ab12cd34"}')
    monkeypatch.setenv("PREDICTOR_BATCH_SIZE", "16")
    settings = PredictorSettings(infra=InfraSettings(s3_access_key="k", s3_secret_key="s"))
    assert settings.models == {"clinical-notes": "disease-ner"}
    assert settings.pinned == {"disease-ner": "20261128T120000Z-ab12cd34"}
    assert (settings.batch_size, settings.max_wait_ms, settings.http_port) == (16, 50, 8084)
