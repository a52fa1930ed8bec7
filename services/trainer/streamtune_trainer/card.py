"""Model versions: their names, their files, and the model card that commits them (pure logic).

    models/<model_name>/<version>/model.safetensors, config.json, tokenizer files, labels.json
    models/<model_name>/<version>/card.json     written last: a version without it is incomplete
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from streamtune_shared.schemas import ModelPublished, ShardManifest, TrainRequest
from streamtune_shared.storage import sha256_hex

if TYPE_CHECKING:  # checkpoint.py uses this module's checksum helpers
    from .checkpoint import RunState

CARD_FILE = "card.json"
LABELS_FILE = "labels.json"
CARD_FORMAT = 1
LIBRARIES = ("torch", "transformers", "safetensors", "tokenizers", "seqeval", "streamtune-trainer",
             "streamtune-shared")
SUMMARY_KEYS = ("f1", "precision", "recall", "accuracy", "macro_f1", "loss")


def version_name(now: datetime, request_id: str) -> str:
    """A sortable version name: UTC time of publishing, then the request id's first 8 characters."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}{version_suffix(request_id)}"


def version_suffix(request_id: str) -> str:
    """How the names of the versions trained for a request end."""
    return f"-{request_id[:8]}"


def version_prefix(models_prefix: str, model_name: str, version_id: str) -> str:
    """The object-store prefix of one version."""
    return f"{models_prefix}{model_name}/{version_id}/"


def file_checksums(files: Mapping[str, bytes]) -> dict[str, str]:
    """sha256 hex of every file, by relative name (a card's or a checkpoint marker's ``files``)."""
    return {name: sha256_hex(data) for name, data in sorted(files.items())}


def mismatched_files(checksums: Mapping[str, str], files: Mapping[str, bytes]) -> list[str]:
    """Names in ``checksums`` whose file is missing or does not match its sha256 (empty when all match)."""
    return [name for name, digest in checksums.items()
            if name not in files or sha256_hex(files[name]) != digest]


def library_versions() -> dict[str, str]:
    """Versions of python and the libraries that shaped the weights."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def metric_summary(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The headline numbers of a metrics dict, without the per-label report."""
    return {key: float(metrics[key]) for key in SUMMARY_KEYS if key in metrics}


def lineage(manifests: Sequence[ShardManifest], split_rows: Mapping[str, int]) -> dict[str, Any]:
    """Which shards, with which sha256, fed the run, and how many rows each split had."""
    shards = [{"key": m.shard_key, "sha256": m.sha256, "rows": m.rows} for m in manifests]
    return {"shards": shards, "rows": dict(split_rows)}


def build_card(*, request: TrainRequest, version_id: str, state: RunState, test: Mapping[str, Any],
               samples_per_s: float, device: str, lineage_info: Mapping[str, Any], files: Mapping[str, bytes],
               created_at: datetime, resumed_from_epoch: int = 0) -> dict[str, Any]:
    """The model card of a version: what was asked, what came out, from which data, and every file's sha256."""
    best = next(h for h in state.history if h["epoch"] == state.best_epoch)
    return {
        "card_format": CARD_FORMAT,
        "model_name": request.model_name,
        "version": version_id,
        "task": request.task,
        "dataset": request.dataset,
        "base_model": request.base_model,
        "request_id": request.request_id,
        "hyperparameters": request.model_dump(mode="json"),
        "device": device,
        "metrics": {
            "dev_by_epoch": state.history,
            "best_epoch": state.best_epoch,
            "dev": best["dev"],
            "test": dict(test),
        },
        "training": {"samples_per_s": samples_per_s, "epochs_run": state.epoch,
                     "resumed_from_epoch": resumed_from_epoch, "global_steps": state.global_step},
        "lineage": dict(lineage_info),
        "files": file_checksums(files),
        "created_at": created_at.astimezone(UTC).isoformat(),
        "libraries": library_versions(),
    }


def card_bytes(card: Mapping[str, Any]) -> bytes:
    """The card as stored: indented JSON."""
    return json.dumps(card, indent=2, sort_keys=False).encode()


def announcement(card: Mapping[str, Any], models_prefix: str) -> ModelPublished:
    """The ``models.published`` message of a complete version, from its card."""
    prefix = version_prefix(models_prefix, card["model_name"], card["version"])
    return ModelPublished(
        model_name=card["model_name"], version=card["version"], task=card["task"], dataset=card["dataset"],
        prefix=prefix, card_key=f"{prefix}{CARD_FILE}", request_id=card["request_id"],
        metrics={"dev": metric_summary(card["metrics"]["dev"]), "test": metric_summary(card["metrics"]["test"]),
                 "best_epoch": card["metrics"]["best_epoch"]},
    )
