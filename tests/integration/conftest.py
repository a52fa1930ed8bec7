"""Cross-service integration fixtures: an uploader, clinical-notes shards (the tiny base model is the root conftest's)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from streamtune_shared.datasets import build_manifest, events_to_parquet, manifest_key, new_shard_id, shard_key
from streamtune_shared.schemas import CleanEvent, utcnow
from streamtune_shared.storage import ObjectStore

REPO = Path(__file__).resolve().parents[2]
CLINICAL_NOTES = REPO / "tests" / "fixtures" / "clinical_notes.jsonl"


@pytest.fixture
def upload_folder() -> Callable[[ObjectStore, Path, str], None]:
    """``upload_folder(store, folder, prefix)``: every file of a folder under an object-store prefix."""

    def upload(store: ObjectStore, folder: Path, prefix: str) -> None:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                store.put_bytes(prefix + path.relative_to(folder).as_posix(), path.read_bytes())

    return upload


@pytest.fixture
def write_notes() -> Callable[[ObjectStore, str, int], None]:
    """``write_notes(store, dataset, rows)``: the first rows of the clinical-notes fixture as dataset shards."""

    def write(store: ObjectStore, dataset: str, rows: int) -> None:
        now = utcnow()
        lines = CLINICAL_NOTES.read_text().splitlines()[:rows]
        events = [CleanEvent(**json.loads(line), ingested_at=now, anonymized_at=now) for line in lines]
        for start in range(0, len(events), 100):
            chunk = events[start:start + 100]
            shard_id = new_shard_id(f"1-{start}", "integration-tests")
            data = events_to_parquet(chunk)
            store.put_bytes(shard_key(dataset, shard_id), data)
            manifest = build_manifest(dataset, shard_id, chunk, data, "integration-tests")
            store.put_bytes(manifest_key(dataset, shard_id), manifest.model_dump_json().encode())

    return write

