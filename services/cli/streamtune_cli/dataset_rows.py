"""Datasets in the object store as the CLI shows them: names from manifest keys, summaries of manifests. Pure.

Keys follow ``streamtune_shared.datasets`` (``datasets/<dataset>/manifests/<shard_id>.json``); a key
counts only when ``manifest_key`` gives it back, so a change of that layout cannot be misread here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from streamtune_shared.datasets import DATASETS_ROOT, IMPORT_SOURCE, manifest_key, manifests_prefix
from streamtune_shared.schemas import ShardManifest

__all__ = ["DATASETS_ROOT", "dataset_summary", "manifest_keys", "manifest_row", "manifests_prefix", "source_from_path"]
_MANIFEST_SUFFIX = ".json"


def manifest_keys(keys: Iterable[str]) -> dict[str, list[str]]:
    """The manifest keys among ``keys``, by dataset (sorted by name; keys keep their order)."""
    found: dict[str, list[str]] = {}
    for key in keys:
        parts = key.split("/")
        if len(parts) == 4 and parts[3].endswith(_MANIFEST_SUFFIX):
            name, shard_id = parts[1], parts[3].removesuffix(_MANIFEST_SUFFIX)
            if manifest_key(name, shard_id) == key:
                found.setdefault(name, []).append(key)
    return dict(sorted(found.items()))


def dataset_summary(dataset: str, manifests: Sequence[ShardManifest]) -> dict[str, Any]:
    """Shards, stored rows (before deduplication by event_id), bytes, time range and writers of a dataset."""
    return {
        "dataset": dataset,
        "shards": len(manifests),
        "rows": sum(m.rows for m in manifests),
        "size_bytes": sum(m.size_bytes for m in manifests),
        "min_ts": min(m.min_ts for m in manifests).isoformat() if manifests else None,
        "max_ts": max(m.max_ts for m in manifests).isoformat() if manifests else None,
        "last_written": max(m.created_at for m in manifests).isoformat() if manifests else None,
        "writers": sorted({m.writer for m in manifests}),
    }


def manifest_row(manifest: ShardManifest) -> dict[str, Any]:
    """One shard of ``datasets show``."""
    k = manifest.k_anonymity
    return {"shard_key": manifest.shard_key, "rows": manifest.rows, "size_bytes": manifest.size_bytes,
            "min_ts": manifest.min_ts.isoformat(), "max_ts": manifest.max_ts.isoformat(), "writer": manifest.writer,
            "created_at": manifest.created_at.isoformat(), "k": k.k if k else None,
            "suppressed_rows": k.suppressed_rows if k else None}


def source_from_path(path: Path) -> str:
    """An import source name from a file name: lower case, other characters as '-', at most 41 characters."""
    name = re.sub(r"[^a-z0-9._-]+", "-", path.stem.lower()).strip("-._")[:41]
    return name if IMPORT_SOURCE.match(name) else "import"
