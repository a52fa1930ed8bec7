"""Rows for models, datasets and pacing: what the tables and the rate limit show."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from streamtune_cli.dataset_rows import dataset_summary, manifest_keys, manifests_prefix, source_from_path
from streamtune_cli.model_rows import headline_f1, model_row, row_cells
from streamtune_cli.pacing import batch_size, seconds_to_wait
from streamtune_shared.datasets import manifest_key
from streamtune_shared.schemas import ShardManifest


def test_the_headline_f1_is_entity_f1_or_macro_f1() -> None:
    assert headline_f1({"f1": 0.8, "macro_f1": 0.5}) == 0.8
    assert headline_f1({"macro_f1": 0.5, "accuracy": 0.9}) == 0.5
    assert headline_f1({"report": {}}) is None


def test_a_model_whose_card_is_refused_still_shows_with_the_reason() -> None:
    row = model_row("ner", ["v1", "v2"], None, "sha256 mismatch for model.safetensors")
    assert row_cells(row) == ("ner", "2", "v2", "(card refused: sha256 mismatch for model.safetensors)", "-", "-", "-")


def test_datasets_are_named_by_their_manifest_keys_only() -> None:
    keys = [manifest_key("notes", "s1"), manifest_key("notes", "s2"), "datasets/pumps/shards/s1.parquet",
            manifest_key("pumps", "s1"), "datasets/stray.json", "datasets/x/manifests/deep/s.json"]
    assert manifest_keys(keys) == {"notes": [manifest_key("notes", "s1"), manifest_key("notes", "s2")],
                                   "pumps": [manifest_key("pumps", "s1")]}
    assert manifest_key("notes", "s1").startswith(manifests_prefix("notes"))


def test_a_summary_adds_up_the_shards() -> None:
    def manifest(rows: int, day: int, writer: str) -> ShardManifest:
        ts = datetime(2026, 1, day, tzinfo=UTC)
        return ShardManifest(dataset="notes", shard_key=f"k{day}", rows=rows, size_bytes=100, sha256="0" * 64,
                             min_ts=ts, max_ts=ts, columns={}, writer=writer)

    summary = dataset_summary("notes", [manifest(3, 1, "anonymizer"), manifest(4, 5, "import:synthetic")])
    assert (summary["shards"], summary["rows"], summary["size_bytes"]) == (2, 7, 200)
    assert summary["min_ts"].startswith("2026-01-01") and summary["max_ts"].startswith("2026-01-05")
    assert summary["writers"] == ["anonymizer", "import:synthetic"]


def test_an_import_source_comes_from_the_file_name() -> None:
    assert source_from_path(Path("data/PII Synthetic v2.jsonl")) == "pii-synthetic-v2"
    assert source_from_path(Path("___.csv")) == "import"


def test_pacing_spreads_events_over_time() -> None:
    assert batch_size(None) == 500 and batch_size(50.0) == 5 and batch_size(2.0) == 1 and batch_size(1e6) == 500
    assert seconds_to_wait(100, 50.0, elapsed_s=1.5) == 0.5  # 100 events at 50/s take 2 s
    assert seconds_to_wait(100, 50.0, elapsed_s=3.0) == 0.0
    assert seconds_to_wait(100, None, elapsed_s=0.0) == 0.0
