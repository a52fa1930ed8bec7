"""The trainer's object-store layout: base models and per-epoch checkpoints (blocking calls).

    checkpoints/<request_id>/epoch-0002/...   one folder per finished epoch, trainer_state.json written last

Model versions are written through ``streamtune_shared.model_registry``, which every reader shares.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import structlog
from streamtune_shared.hf_loading import MINILM, fetch_base  # noqa: F401 - MINILM: the benches name the base by it
from streamtune_shared.model_card import VersionRejected
from streamtune_shared.model_registry import DEFAULT_MODELS_PREFIX, RegistryLayout
from streamtune_shared.storage import ObjectStore

from .checkpoint import STATE_FILE, Checkpoint, CheckpointCorrupt, read_checkpoint
from .domain import TrainingRejected

log = structlog.get_logger(__name__)

_EPOCH_FOLDER = re.compile(r"epoch-(\d+)/")


def resolve_base_model(base_model: str, store: ObjectStore, workdir: Path,
                       models_prefix: str = DEFAULT_MODELS_PREFIX) -> Path:
    """A local folder holding the base model, named as every service reads a base (``hf_loading.fetch_base``):
    the packaged MiniLM, a registry version ``<model>/<version>``, a copy of an s3:// prefix (``TrainRequest``
    refuses one without a bucket and a prefix), or a local folder."""
    try:
        folder = fetch_base(base_model, store, RegistryLayout(models_prefix), workdir)
    except VersionRejected as exc:
        raise TrainingRejected(f"base model {base_model!r} cannot be used: {exc.reason}") from exc
    if not (folder / "config.json").is_file() or not any(folder.glob("*.safetensors")):
        raise TrainingRejected(f"base model {base_model!r} has no config.json and safetensors weights")
    return folder


def checkpoint_run_prefix(checkpoint_prefix: str, request_id: str) -> str:
    """Where one request's checkpoints live (every trainer that resumes it looks here)."""
    return f"{checkpoint_prefix}{request_id}/"


def checkpoint_folder(run_prefix: str, epoch: int) -> str:
    """Where one epoch's checkpoint lives."""
    return f"{run_prefix}epoch-{epoch:04d}/"


def save_checkpoint(store: ObjectStore, run_prefix: str, epoch: int, files: Mapping[str, bytes]) -> None:
    """Write an epoch's checkpoint (its marker last), then drop the older epochs' folders."""
    folder = checkpoint_folder(run_prefix, epoch)
    for name, data in files.items():
        if name != STATE_FILE:
            store.put_bytes(folder + name, data)
    store.put_bytes(folder + STATE_FILE, files[STATE_FILE], content_type="application/json")
    for key in store.list_keys(run_prefix):
        if not key.startswith(folder):
            store.delete(key)


def _committed_checkpoints(keys: list[str], run_prefix: str) -> list[tuple[int, dict[str, str]]]:
    """The epochs under ``run_prefix`` whose marker is written, newest first, each with {file name: key}."""
    folders: dict[str, dict[str, str]] = {}
    for key in keys:
        match = _EPOCH_FOLDER.match(key, len(run_prefix))
        if match:
            folders.setdefault(match.group(1), {})[key[match.end():]] = key
    committed = [(int(epoch), names) for epoch, names in folders.items() if STATE_FILE in names]
    return sorted(committed, key=lambda item: item[0], reverse=True)


def load_latest_checkpoint(store: ObjectStore, run_prefix: str) -> Checkpoint | None:
    """The newest checkpoint whose files match their marker, or None (the run's prefix is listed once)."""
    for epoch, names in _committed_checkpoints(store.list_keys(run_prefix), run_prefix):
        files = {name: store.get_bytes(key) for name, key in names.items()}
        try:
            return read_checkpoint(files)
        except CheckpointCorrupt as exc:
            log.warning("checkpoint.unusable", epoch=epoch, reason=str(exc))
    return None


def delete_prefix(store: ObjectStore, prefix: str) -> int:
    """Delete every object under a prefix; returns how many."""
    keys = store.list_keys(prefix)
    for key in keys:
        store.delete(key)
    return len(keys)
