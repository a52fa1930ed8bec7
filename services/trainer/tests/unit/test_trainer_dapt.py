"""Domain-adaptive pretraining on a tiny BERT: the masked-LM loss falls, the adapted base is a reusable version."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import torch
from streamtune_shared.adaptation import DaptOptions
from streamtune_shared.hf_loading import load_verified_version
from streamtune_shared.model_card import VersionRejected
from streamtune_shared.model_registry import RegistryLayout, fetch_card, list_versions
from streamtune_shared.schemas import TrainRequest
from streamtune_shared.settings import InfraSettings
from streamtune_shared.testing import InMemoryObjectStore
from streamtune_trainer.artifacts import resolve_base_model
from streamtune_trainer.config import TrainerSettings
from streamtune_trainer.dapt import dapt_texts, dev_batches, load_mlm, mlm_loss, train_mlm, with_adapted_base
from streamtune_trainer.domain import TOKEN_CLASSIFICATION, LabelMap
from streamtune_trainer.pipeline import RunContext, read_rows, run_training
from streamtune_trainer.training import load_model, load_tokenizer, seed_everything

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LAYOUT = RegistryLayout()


def test_masked_lm_training_lowers_the_dev_loss_of_a_tiny_bert(tiny_base_model: Path, clinical_events):
    seed_everything(0)
    texts = [e.text for e in clinical_events[:64]]
    dev = [e.text for e in clinical_events[64:80]]
    tokenizer = load_tokenizer(tiny_base_model)
    model, head_initialized = load_mlm(tiny_base_model, None)
    options = DaptOptions(epochs=3, learning_rate=1e-2)
    device = torch.device("cpu")
    dev_masked = dev_batches(tokenizer, dev, 32, options)
    before = mlm_loss(model, dev_masked, device)

    history = train_mlm(model, tokenizer, texts, dev_masked, options, 32, seed=0, device=device)

    assert head_initialized  # the tiny base is a bare BertModel, like the packaged MiniLM
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["dev"]["loss"] < before - 0.5
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_the_texts_are_the_training_split_and_the_unlabeled_rows():
    rows = [{"text": "labeled", "label": ["O"]}, {"text": "unlabeled note", "label": None}, {"text": " ", "label": None}]
    assert dapt_texts(rows, ["a train note", ""], None) == ["a train note", "unlabeled note"]
    assert dapt_texts(rows, ["a train note"], 1) == ["a train note"]


@pytest.fixture
def run_context():
    statuses: list[dict] = []
    settings = TrainerSettings(infra=InfraSettings(s3_access_key="k", s3_secret_key="s"), num_threads=1)
    ctx = RunContext(store=InMemoryObjectStore(), settings=settings, report=lambda **f: statuses.append(f),
                     clock=lambda: NOW)
    ctx.statuses = statuses  # type: ignore[attr-defined]
    return ctx


def test_the_adapted_base_is_a_version_that_names_its_base_is_reused_and_is_never_served(
        run_context, tiny_base_model: Path, clinical_events, write_shards, tmp_path: Path):
    store = run_context.store
    write_shards(store, "notes", clinical_events[:60])
    request = TrainRequest(request_id="dapt-1", model_name="ner", task=TOKEN_CLASSIFICATION, dataset="notes",
                           base_model=str(tiny_base_model), max_length=32,
                           dapt={"epochs": 2, "learning_rate": 1e-2})

    adapted = with_adapted_base(request, run_context, read_rows(request, store))

    [version] = list_versions(store, LAYOUT, "ner-dapt")
    assert adapted.base_model == f"ner-dapt/{version}" and adapted.dapt is None
    card = fetch_card(store, LAYOUT, "ner-dapt", version)  # the shared checks pass: sha256s, no pickle, no labels
    assert card.task == "fill-mask" and card.base_model == str(tiny_base_model) and card.request_id == "dapt-1"
    assert card.hyperparameters["mlm_head"] == "initialized"
    assert card.metrics.dev["loss"] < card.metrics.dev["loss_before"]
    assert card.lineage.rows["texts"] > 0 and "model.safetensors" in card.files and "labels.json" not in card.files
    assert any("domain-adapted base published" in (s.get("message") or "") for s in run_context.statuses)

    # A second delivery of the same request reuses the version instead of training again.
    assert with_adapted_base(request, run_context, read_rows(request, store)).base_model == adapted.base_model
    assert list_versions(store, LAYOUT, "ner-dapt") == [version]

    # A later request naming it as its base fine-tunes from its weights.
    folder = resolve_base_model(adapted.base_model, store, tmp_path)
    labels = LabelMap(TOKEN_CLASSIFICATION, ("O", "B-Disease", "I-Disease"))
    tuned = load_model(folder, labels)
    stored = json.loads((folder / "config.json").read_text())
    assert stored["architectures"] == ["BertForMaskedLM"] and tuned.num_labels == 3

    with pytest.raises(VersionRejected, match="not serving"):
        load_verified_version(store, LAYOUT, card, tmp_path / "serve")


def test_a_dapt_run_reads_its_dataset_once_for_the_masked_lm_and_the_fine_tune(
        run_context, tiny_base_model: Path, clinical_events, write_shards, monkeypatch):
    import streamtune_trainer.pipeline as pipeline

    write_shards(run_context.store, "notes", clinical_events[:40])
    reads: list[str] = []
    real_read = pipeline.read_dataset
    monkeypatch.setattr(pipeline, "read_dataset", lambda store, name: reads.append(name) or real_read(store, name))
    request = TrainRequest(request_id="dapt-2", model_name="ner", task=TOKEN_CLASSIFICATION, dataset="notes",
                           base_model=str(tiny_base_model), max_length=32, epochs=1, dapt={"epochs": 1})

    card = run_training(request, run_context)

    assert card.base_model.startswith("ner-dapt/") and reads == ["notes"]
