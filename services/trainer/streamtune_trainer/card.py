"""The model card of a trained version, built from the run (pure logic; the card's type is shared).

``streamtune_shared.model_card.ModelCard`` is the contract every reader checks; this module only
fills it in from a training run: what was asked, what came out, from which shards, with which libraries.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from streamtune_shared.model_card import (
    CardAdapter,
    CardLineage,
    CardMetrics,
    CardPrivacy,
    CardTraining,
    ModelCard,
    ShardLineage,
)
from streamtune_shared.model_registry import file_checksums
from streamtune_shared.schemas import ShardManifest, TrainRequest

from .checkpoint import RunState

LIBRARIES = ("torch", "transformers", "safetensors", "tokenizers", "seqeval", "peft", "opacus",
             "streamtune-trainer", "streamtune-shared")


def library_versions() -> dict[str, str]:
    """Versions of python and the libraries that shaped the weights."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def lineage(manifests: Sequence[ShardManifest], split_rows: Mapping[str, int]) -> CardLineage:
    """Which shards, with which sha256, fed the run, and how many rows each split had."""
    shards = [ShardLineage(key=m.shard_key, sha256=m.sha256, rows=m.rows) for m in manifests]
    return CardLineage(shards=shards, rows=dict(split_rows))


def build_card(*, request: TrainRequest, version_id: str, state: RunState, test: Mapping[str, Any],
               samples_per_s: float, device: str, lineage_info: CardLineage, files: Mapping[str, bytes],
               created_at: datetime, resumed_from_epoch: int = 0, adapter: CardAdapter | None = None,
               privacy: CardPrivacy | None = None) -> ModelCard:
    """The model card of a version: what was asked, what came out, from which data, and every file's sha256."""
    best = next(h for h in state.history if h["epoch"] == state.best_epoch)
    return ModelCard(
        model_name=request.model_name,
        version=version_id,
        task=request.task,
        dataset=request.dataset,
        base_model=request.base_model,
        request_id=request.request_id,
        hyperparameters=request.model_dump(mode="json"),
        device=device,
        metrics=CardMetrics(dev_by_epoch=state.history, best_epoch=state.best_epoch, dev=best["dev"], test=dict(test)),
        training=CardTraining(samples_per_s=samples_per_s, epochs_run=state.epoch,
                              resumed_from_epoch=resumed_from_epoch, global_steps=state.global_step),
        lineage=lineage_info,
        files=file_checksums(files),
        created_at=created_at.astimezone(UTC),
        libraries=library_versions(),
        adapter=adapter,
        privacy=privacy,
    )
