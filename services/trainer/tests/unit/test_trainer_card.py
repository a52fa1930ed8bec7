"""The card of a trained version: the best epoch, lineage, and the sha256 of every file of the version."""

from __future__ import annotations

from datetime import UTC, datetime

from streamtune_shared.model_card import ModelCard
from streamtune_shared.model_registry import RegistryLayout, mismatched_files
from streamtune_shared.schemas import ShardManifest, TrainRequest
from streamtune_shared.storage import sha256_hex
from streamtune_trainer.card import build_card, lineage
from streamtune_trainer.checkpoint import RunState

REQUEST = TrainRequest(request_id="0123456789abcdef", model_name="ner", task="token-classification",
                       dataset="clinical-notes", epochs=2)


def _state() -> RunState:
    dev1 = {"f1": 0.4, "precision": 0.5, "recall": 0.33, "report": {}}
    dev2 = {"f1": 0.3, "precision": 0.3, "recall": 0.3, "report": {}}
    return RunState(seed=42, epoch=2, global_step=20, best_metric=0.4, best_epoch=1, epochs_without_improvement=1,
                    history=[{"epoch": 1, "samples_per_s": 10.0, "dev": dev1},
                             {"epoch": 2, "samples_per_s": 12.0, "dev": dev2}])


def _card(files: dict[str, bytes]) -> ModelCard:
    manifest = ShardManifest(dataset="clinical-notes", shard_key="datasets/clinical-notes/shards/a.parquet", rows=3,
                             size_bytes=10, sha256="ab" * 32, min_ts=datetime.now(UTC), max_ts=datetime.now(UTC),
                             columns={}, writer="w")
    return build_card(request=REQUEST, version_id="v1", state=_state(), test={"f1": 0.35, "report": {}},
                      samples_per_s=11.0, device="cpu", lineage_info=lineage([manifest], {"train": 3, "dev": 1, "test": 1}),
                      files=files, created_at=datetime(2026, 11, 28, 12, 0, tzinfo=UTC))


def test_card_lists_the_sha256_of_every_file_and_catches_a_changed_one():
    files = {"model.safetensors": b"weights", "config.json": b"{}", "labels.json": b'{"task": "x"}'}
    card = _card(files)
    assert card.files == {name: sha256_hex(data) for name, data in files.items()}
    assert mismatched_files(card.files, files) == []
    assert mismatched_files(card.files, {**files, "config.json": b'{"x": 1}'}) == ["config.json"]


def test_card_reports_the_best_epoch_its_dev_metrics_and_lineage():
    card = _card({"model.safetensors": b"w"})
    assert card.metrics.best_epoch == 1 and card.metrics.dev["f1"] == 0.4
    assert [h["epoch"] for h in card.metrics.dev_by_epoch] == [1, 2]
    assert card.hyperparameters["epochs"] == 2 and card.request_id == REQUEST.request_id
    assert card.lineage.shards[0].rows == 3 and card.lineage.rows["train"] == 3
    assert {"torch", "transformers", "python"} <= set(card.libraries)


def test_the_stored_card_reads_back_as_the_same_typed_card():
    card = _card({"model.safetensors": b"w"})
    assert ModelCard.model_validate_json(card.to_bytes()) == card


def test_announcement_points_at_the_card_and_carries_the_summary():
    message = RegistryLayout().announcement(_card({"model.safetensors": b"w"}))
    assert message.prefix == "models/ner/v1/" and message.card_key == "models/ner/v1/card.json"
    assert message.metrics["test"] == {"f1": 0.35} and message.request_id == REQUEST.request_id
